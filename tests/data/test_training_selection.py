"""Training's selection step (``mprm.train.data.resolve_training_file``) calls the library and
reuses its output; training labels come from the one labelling rule (METHOD.md 2)."""

from __future__ import annotations

import pytest

from mprm.data.settings import SelectionSettings
from mprm.data.validation import DataError

train_data = pytest.importorskip("mprm.train.data")

BIS_HALF = SelectionSettings(strategy="bis", fraction=0.5, alpha=0.05, seed=0, per_source=True, label_threshold=0.0,
                             soft_labels=False, unannotated="negative", lenient=False)


def test_selects_once_and_reuses(tmp_path, tools, monkeypatch):
    r = tools.rollout
    # BIS: .3, .05, (2/9 + .05) * .5 -> k = 1 keeps line 1
    corpus = tools.write_jsonl(tmp_path / "ann" / "src.jsonl", [r([1.0, 0.0]), r([1.0, 1.0]), r([0.5, 0.0, 0.0])])
    path = train_data.resolve_training_file(str(corpus.parent), BIS_HALF, output_dir=tmp_path / "run", is_main=True)
    assert path == tmp_path / "run" / "selection" / "selected.jsonl"
    assert [row["id"] for row in tools.read_jsonl(path)] == ["src:1"]
    assert (tmp_path / "run" / "selection" / "report.json").is_file()

    calls = []
    real = train_data.select_corpus
    monkeypatch.setattr(train_data, "select_corpus", lambda *a, **k: calls.append(a) or real(*a, **k))
    train_data.resolve_training_file(str(corpus.parent), BIS_HALF, output_dir=tmp_path / "run", is_main=True)
    assert calls == []  # same corpus and settings: the selection is reused
    soft = SelectionSettings(strategy="bis", fraction=0.5, alpha=0.05, soft_labels=True)  # other settings: select again
    train_data.resolve_training_file(str(corpus.parent), soft, output_dir=tmp_path / "run", is_main=True)
    assert len(calls) == 1 and tools.read_jsonl(path)[0]["labels"] == [1.0, 0.0]
    full = SelectionSettings(strategy="bis", fraction=1.0, alpha=0.05)  # other ranks only return the path
    assert train_data.resolve_training_file(str(corpus.parent), full, output_dir=tmp_path / "run", is_main=False) == path
    assert len(calls) == 1


def test_bad_record_raises_the_data_error(tmp_path, tools):
    corpus = tools.write_jsonl(tmp_path / "src.jsonl", [tools.rollout([1.0]), b"not json"])
    with pytest.raises(DataError, match=r"src.jsonl:2: line: invalid JSON"):
        train_data.resolve_training_file(str(corpus), BIS_HALF, output_dir=tmp_path / "run", is_main=True)


def test_training_labels_follow_the_config():
    row = {"mc_scores": [1.0, 0.0625, 0.125, 0.0], "labels": [1.0, 1.0, 1.0, 0.0]}
    assert train_data.training_labels(row, threshold=0.0, soft=False) == [1.0, 1.0, 1.0, 0.0]
    assert train_data.training_labels(row, threshold=1 / 16, soft=False) == [1.0, 0.0, 1.0, 0.0]  # 1/16 is not > 1/16
    assert train_data.training_labels(row, threshold=2 / 16, soft=False) == [1.0, 0.0, 0.0, 0.0]
    assert train_data.training_labels(row, threshold=0.0, soft=True) == [1.0, 0.0625, 0.125, 0.0]
    assert train_data.training_labels({"labels": [1, 0]}, threshold=0.5, soft=False) == [1.0, 0.0]  # no MC scores
