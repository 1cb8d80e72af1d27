"""What training trains on: one ``SelectionSettings`` built from the config
(``mprm.train.data.selection_settings``) handed to ``resolve_training_file``; its user errors."""

from __future__ import annotations

import json

import pytest

from mprm.config import Config, checked
from mprm.data.settings import SelectionSettingsError
from mprm.data.validation import InputPathError
from mprm.errors import UserError
from mprm.train.data import resolve_training_file, selection_settings


def _config(**sections) -> Config:
    cfg = Config()
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(cfg, section), key, value)
    return checked(cfg)


def test_settings_come_from_the_config():
    cfg = _config(selection={"strategy": "bis", "fraction": 0.25, "alpha": 0.2, "seed": 3, "per_source": False},
                  data={"label_threshold": 0.125, "unannotated": "truncate", "lenient": True})
    s = selection_settings(cfg)
    assert (s.strategy, s.fraction, s.alpha, s.seed, s.per_source) == ("bis", 0.25, 0.2, 3, False)
    assert (s.threshold, s.soft_labels, s.unannotated, s.lenient) == (0.125, False, "truncate", True)
    # data.label_threshold is documented as ignored under data.soft_labels: no contradiction raised
    soft = selection_settings(_config(data={"label_threshold": 0.0625, "soft_labels": True}))
    assert soft.soft_labels and soft.threshold == 0.0
    assert selection_settings(Config()).parameters()["fraction"] == 1.0  # full keeps everything


def test_selects_once_then_reuses(synth_dir, tmp_path):
    cfg = _config(selection={"strategy": "bis", "fraction": 0.5})
    settings = selection_settings(cfg)
    path = resolve_training_file(str(synth_dir / "annotations"), settings, output_dir=tmp_path, is_main=True)
    assert path == tmp_path / "selection" / "selected.jsonl" and path.is_file()
    stamp = tmp_path / "selection" / ".mprm-train-select.json"
    assert json.loads(stamp.read_text())["strategy"] == "bis"
    written = path.stat().st_mtime_ns
    assert resolve_training_file(str(synth_dir / "annotations"), settings, output_dir=tmp_path, is_main=True) == path
    assert path.stat().st_mtime_ns == written  # same corpus and settings: reused, not rewritten
    other = tmp_path / "other"
    assert resolve_training_file(str(synth_dir / "annotations"), settings, output_dir=other, is_main=False) \
        == other / "selection" / "selected.jsonl"
    assert not other.exists()  # other ranks only return the path


def test_user_errors_name_the_file_and_the_key(tmp_path):
    selected = tmp_path / "selected.jsonl"
    selected.write_text(json.dumps({"id": "a", "images": [], "question": "q", "steps": ["s"], "labels": [1.0]}) + "\n")
    bis = selection_settings(_config(selection={"strategy": "bis", "fraction": 0.5}))
    with pytest.raises(SelectionSettingsError, match=rf"{selected}: already a training selection.*selection.strategy=full"):
        resolve_training_file(str(selected), bis, output_dir=tmp_path / "run", is_main=True)
    full = selection_settings(Config())
    assert resolve_training_file(str(selected), full, output_dir=tmp_path / "run", is_main=True) == selected
    with pytest.raises(InputPathError, match=r"nope: no such file or folder \(data.train\)") as info:
        resolve_training_file(str(tmp_path / "nope"), full, output_dir=tmp_path / "run", is_main=True)
    assert isinstance(info.value, UserError)
