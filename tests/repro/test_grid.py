"""The paper's grid (issue 6 item 2): its cells, their names, and the configs that run them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mprm.config import load_config, to_yaml
from mprm.repro.configs import render_grid_configs, setting_overrides
from mprm.repro.grid import BACKBONES, paper_grid, setting_for_key
from mprm.repro.published import PUBLISHED
from mprm.repro.settings import Setting, main_alpha, setting_from_config

REPO = Path(__file__).resolve().parents[2]
EXPECTED_KEYS = [
    "full_hard0", "full_hard1n", "full_hard2n", "full_soft",
    "random_5", "bis_5_a0.05", "random_10", "bis_10_a0.2", "random_15", "bis_15_a0.05",
    "random_25", "bis_25_a0.05", "random_35", "bis_35_a0.05", "random_50", "bis_50_a0.05",
    "mixed_25", "reliable_25", "low_mc_25", "bis_25_a0.02", "bis_25_a0.08",
]


def test_grid_cells_and_names():
    cells = paper_grid()
    assert len(cells) == 42
    for backbone in BACKBONES:
        assert [c.setting.key for c in cells if c.backbone == backbone] == EXPECTED_KEYS
    assert cells[7].name == "internvl2_5_8b/bis_10_a0.2"
    assert cells[7].config_path == "configs/paper/internvl2_5_8b/bis_10_a0.2.yaml"
    assert [c.name for c in paper_grid(["qwen2_5_vl_7b"], "bis_25")] == [
        "qwen2_5_vl_7b/bis_25_a0.05", "qwen2_5_vl_7b/bis_25_a0.02", "qwen2_5_vl_7b/bis_25_a0.08"]
    assert len(paper_grid(pattern="internvl2_5_8b/full_*")) == 4
    with pytest.raises(ValueError, match="unknown backbone"):
        paper_grid(["llava"])


def test_setting_names_and_alpha_rule():
    assert main_alpha(0.10) == 0.2 and main_alpha(0.25) == 0.05 and main_alpha(0.05) == 0.05
    s = Setting("full", threshold=1 / 16)
    assert (s.key, s.title) == ("full_hard1n", "Full, hard tau=1/N")
    s = Setting("bis", fraction=0.125, alpha=0.05, soft=True)
    assert (s.key, s.title) == ("bis_12.5_a0.05_soft", "BIS-12.5% (alpha 0.05), soft")
    assert Setting("low_mc", fraction=0.25).title == "Low-MC-25%"
    assert Setting("random", fraction=0.1, threshold=0.3).key == "random_10_hard0.3"
    with pytest.raises(ValueError, match="fraction"):
        Setting("random", fraction=0.0)


def test_every_published_number_names_a_grid_setting():
    for family, rows in PUBLISHED.items():
        for key in rows:
            assert key == "base" or setting_for_key(key) is not None, (family, key)


@pytest.mark.parametrize("cell", paper_grid(), ids=lambda c: c.name)
def test_setting_survives_the_resolved_config(cell):
    """What the sweep sets is what the report reads back from train.py's saved config.yaml."""
    overrides = [f"model.backbone={cell.backbone.family}"]
    overrides += [f"{k}={v}" for k, v in setting_overrides(cell.setting).items()]
    saved = yaml.safe_load(to_yaml(load_config(None, overrides)))
    assert setting_from_config(saved) == (cell.backbone.family, cell.setting)


def test_grid_configs_on_disk_validate_and_match_the_generator():
    files = sorted((REPO / "configs" / "paper").rglob("*.yaml"))
    cells = paper_grid()
    assert sorted(str(f.relative_to(REPO)) for f in files) == sorted(c.config_path for c in cells), (
        "configs/paper/ is missing or incomplete: run `python launch/sweep.py --write-configs` "
        "(it needs configs/internvl2_5_8b/full.yaml and configs/qwen2_5_vl_7b/full.yaml)")
    expected = render_grid_configs(cells, REPO)
    for cell in cells:
        path = REPO / cell.config_path
        text = path.read_text()
        assert text == expected[cell.config_path], f"{path} is stale: run python launch/sweep.py --write-configs"
        assert text.splitlines()[0] == (
            f"# accelerate launch --config_file launch/zero3.yaml train.py --config {cell.config_path}")
        cfg = load_config(path)
        assert cfg.train.output_dir == f"runs/paper/{cell.name}"
        assert setting_from_config(cfg.to_dict()) == (cell.backbone.family, cell.setting)


def test_departures_from_the_paper_protocol_get_their_own_row():
    base = ["model.backbone=internvl", "selection.strategy=bis", "selection.fraction=0.1", "selection.alpha=0.2"]
    saved = yaml.safe_load(to_yaml(load_config(None, base + ["selection.per_source=false"])))
    family, setting = setting_from_config(saved)
    assert (setting.key, setting.title) == ("bis_10_a0.2_global", "BIS-10% (alpha 0.2), global ranking")
    saved = yaml.safe_load(to_yaml(load_config(None, ["data.unannotated=truncate"])))
    assert setting_from_config(saved)[1].key == "full_hard0_truncate"


def test_generator_on_a_base_config(tmp_path):
    """Independently of the repository's base configs: every generated config validates and says its command."""
    for backbone in BACKBONES:
        base = tmp_path / backbone.base_config
        base.parent.mkdir(parents=True)
        base.write_text(f"# accelerate launch ... --config {backbone.base_config}\nmodel:\n  path: models/x\n"
                        f"  backbone: {backbone.family}\ndata:\n  train: data/ann\nselection:\n  strategy: full\n"
                        "train:\n  output_dir: runs/x\n  global_batch_size: 512\n")
    from mprm.repro.configs import write_grid_configs

    written = write_grid_configs(paper_grid(), tmp_path)
    assert len(written) == 42
    for cell, path in zip(paper_grid(), written):
        assert path == tmp_path / cell.config_path
        cfg = load_config(path)
        assert (cfg.model.path, cfg.data.train, cfg.train.global_batch_size) == ("models/x", "data/ann", 512)
        assert cfg.train.output_dir == f"runs/paper/{cell.name}"
        assert setting_from_config(cfg.to_dict()) == (cell.backbone.family, cell.setting)
    first = (tmp_path / "configs/paper/qwen2_5_vl_7b/full_hard1n.yaml").read_text().splitlines()
    assert first[0] == ("# accelerate launch --config_file launch/zero3.yaml train.py --config "
                        "configs/paper/qwen2_5_vl_7b/full_hard1n.yaml")
    assert "  label_threshold: 0.0625" in first
