"""Config loading, overrides and validation (mprm/config.py); every shipped YAML validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from mprm.config import ConfigError, accumulation_steps, field_help, from_dict, load_config, to_yaml

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_papers_protocol():
    cfg = load_config(None)
    t = cfg.train
    assert (t.lr, t.weight_decay, t.adam_beta1, t.adam_beta2, t.adam_eps) == (1e-5, 0.05, 0.9, 0.999, 1e-8)
    assert (t.warmup_ratio, t.max_grad_norm, t.global_batch_size, t.micro_batch_size) == (0.05, 1.0, 512, 2)
    assert (t.epochs, t.max_steps, t.save_every, t.loss_normalization) == (1, 0, 50, "optimizer_step")
    assert cfg.model.separator == "<prm>\n\n" and cfg.model.max_length == 8192 and cfg.model.freeze_vision
    assert cfg.data.label_threshold == 0.0 and not cfg.data.soft_labels


def test_overrides_are_parsed_by_field_type():
    cfg = load_config(None, ["train.lr=2e-5", "train.micro_batch_size=4", "data.soft_labels=yes",
                             "logging.report_to=tensorboard,wandb", "model.max_tiles=null", "model.min_pixels=1_024",
                             "train.resume=none", "selection.fraction=0.1", "selection.strategy=bis"])
    assert cfg.train.lr == 2e-5 and isinstance(cfg.train.lr, float)
    assert cfg.train.micro_batch_size == 4
    assert cfg.data.soft_labels is True
    assert cfg.logging.report_to == ["tensorboard", "wandb"]
    assert cfg.model.max_tiles is None and cfg.model.min_pixels == 1024
    assert (cfg.selection.strategy, cfg.selection.fraction) == ("bis", 0.1)


def test_every_problem_is_reported_at_once_with_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  path: x\n  colour: red\ntrain:\n  lr: fast\n  micro_batch_size: 3\n"
                    "  global_batch_size: 8\ntrian:\n  seed: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["train.loss_normalization=per_token", "data.label_threshold=1.5", "nokey"])
    problems = err.value.problems
    text = "\n".join(problems)
    assert f"{path}:3: unknown key 'model.colour'" in text
    assert f"{path}:5: train.lr = 'fast': expected a number" in text
    assert f"{path}:8: unknown section 'trian'" in text and "did you mean 'train'?" in text
    assert "train.loss_normalization = 'per_token': choose one of optimizer_step, micro_batch" in text
    assert "data.label_threshold = 1.5: must be in [0, 1)" in text
    assert "override 'nokey': expected section.key=value" in text
    assert "not a multiple of train.micro_batch_size = 3" in text
    assert len(problems) == 7


def test_accumulation_is_derived_from_world_size_with_a_clear_error():
    assert accumulation_steps(512, 2, 4) == 64  # METHOD.md 6: 2 x 64 x 4
    assert accumulation_steps(8, 2, 2) == 2
    with pytest.raises(ConfigError, match=r"512 is not divisible by .* 2 x 3 = 6: .* \(e.g. 510 or 516\)"):
        accumulation_steps(512, 2, 3)


def test_resolved_config_round_trips_and_every_key_has_help(tmp_path):
    cfg = load_config(None, ["train.lr=3e-4", "model.path=/m"])
    path = tmp_path / "resolved.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(path) == cfg
    assert from_dict(cfg.to_dict()) == cfg
    helps = field_help()
    for key in ("model.path", "model.backbone", "model.head", "data.train", "data.image_root", "selection.strategy",
                "selection.fraction", "selection.alpha", "selection.seed", "train.output_dir",
                "train.global_batch_size", "train.micro_batch_size", "train.max_steps", "train.save_every",
                "train.resume", "train.seed", "train.keep_last", "train.eval_every", "eval.dev"):
        assert key in helps and helps[key]


@pytest.mark.parametrize("path", sorted((REPO / "configs").rglob("*.yaml")), ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_config_loads_and_names_its_command(path):
    cfg = load_config(path)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and "train.py --config " + str(path.relative_to(REPO)) in first
    assert cfg.model.path and cfg.data.train and cfg.train.output_dir
