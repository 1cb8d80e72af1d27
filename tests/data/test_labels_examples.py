"""The one labelling rule and the one reading of stored targets (``mprm.data.labels``), one record
as an example (``mprm.data.examples``: ``mprm format`` and the training dev split) and the line
reader's single-line access (``mprm.data.lines.line_at``). Expectations are computed by hand."""

from __future__ import annotations

import json

import pytest

from mprm.data.examples import read_example, training_example
from mprm.data.labels import CORRECT, INCORRECT, TARGET_CUT, mc_target, mc_targets, target_label
from mprm.data.lines import count_lines, line_at
from mprm.data.validation import DataError
from mprm.errors import UserError


def test_one_labelling_rule_for_a_step_and_a_rollout():
    scores = [1.0, 0.0625, 0.125, 0.0]
    assert mc_targets(scores) == [1.0, 1.0, 1.0, 0.0]
    assert mc_targets(scores, threshold=1 / 16) == [1.0, 0.0, 1.0, 0.0]  # 1/16 is not > 1/16
    assert mc_targets(scores, threshold=2 / 16) == [1.0, 0.0, 0.0, 0.0]
    assert mc_targets(scores, soft=True) == [1.0, 0.0625, 0.125, 0.0]
    for kw in ({}, {"threshold": 1 / 16}, {"threshold": 2 / 16}, {"soft": True}):
        assert [mc_target(s, **kw) for s in scores] == mc_targets(scores, **kw)
    assert mc_target(0.0625, threshold=1 / 16) == 0.0 and mc_target(0.125, threshold=1 / 16) == 1.0


def test_a_stored_target_reads_as_a_label_at_one_half():
    assert TARGET_CUT == 0.5
    assert [target_label(y) for y in (1.0, 0.75, 0.5, 0.4999, 0.0625, 0.0, 1, 0)] == [
        CORRECT, CORRECT, CORRECT, INCORRECT, INCORRECT, INCORRECT, CORRECT, INCORRECT]


def test_line_at_numbers_lines_as_the_line_reader(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\xef\xbb\xbfa\n\n  \r\nb\n")  # BOM skipped; empty and blank lines counted
    assert [line_at(path, n) for n in (1, 2, 3, 4, 5)] == [b"a", b"", b"  \r", b"b", None]
    assert count_lines(path) == 4
    path.write_bytes(b"a\nb")  # no final newline
    assert count_lines(path) == 2 and line_at(path, 2) == b"b"
    path.write_bytes(b"")
    assert count_lines(path) == 0 and line_at(path, 1) is None


def test_read_example_soft_labels_and_parquet(tmp_path, tools):
    import pyarrow as pa
    import pyarrow.parquet as pq

    recs = [tools.rollout([1.0, 0.0625, 0.0], id="a"), tools.rollout([0.5, 0.125])]
    jl = tools.write_jsonl(tmp_path / "src.jsonl", ["", *recs])  # line 1 empty: the rollouts are lines 2 and 3
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "src.parquet")
    kind, ex = read_example(jl, 2)
    assert kind == "corpus" and ex["id"] == "a" and ex["labels"] == [1.0, 1.0, 0.0]  # today's default: tau = 0
    assert read_example(jl, 2, label_threshold=1 / 16)[1]["labels"] == [1.0, 0.0, 0.0]
    assert read_example(jl, 2, soft=True)[1]["labels"] == [1.0, 0.0625, 0.0]
    assert read_example(jl, 3)[1]["id"] == "src:3"  # no id of its own: FILE_STEM:LINE
    with pytest.raises(DataError, match=r"src.jsonl:1: line: empty"):
        read_example(jl, 1)
    with pytest.raises(DataError, match=r"src.jsonl:4: line: the file has only 3 lines"):
        read_example(jl, 4)
    kind, ex = read_example(tmp_path / "src.parquet", 2, soft=True)  # a parquet file: the 1-based row
    assert kind == "corpus" and ex["id"] == "src:2" and ex["labels"] == [0.5, 0.125]
    assert read_example(tmp_path / "src.parquet", 1)[1]["steps"] == ["step 0", "step 1", "step 2"]
    with pytest.raises(DataError, match=r"src.parquet:3: line: the file has only 2 rows"):
        read_example(tmp_path / "src.parquet", 3)


def test_training_rows_become_examples_by_the_rule(tmp_path):
    row = {"id": "k", "images": ["a.png"], "question": "Q?", "steps": ["s1", "s2", "s3"],
           "mc_scores": [1.0, 0.0625, 0.0], "labels": [1.0, 1.0, 0.0]}
    assert training_example(row)["labels"] == [1.0, 1.0, 0.0]
    assert training_example(row, label_threshold=1 / 16)["labels"] == [1.0, 0.0, 0.0]  # recomputed from mc_scores
    assert training_example(row, soft=True)["labels"] == [1.0, 0.0625, 0.0]
    stored = dict(row, mc_scores=None, labels=[0.75, 0.5, 0.25])
    assert training_example(stored, label_threshold=1 / 16)["labels"] == [0.75, 0.5, 0.25]  # kept as stored
    path = tmp_path / "selected.jsonl"
    path.write_text(json.dumps(row) + "\n")
    kind, ex = read_example(path, 1, soft=True)
    assert kind == "training" and ex == {"id": "k", "images": ["a.png"], "question": "Q?",
                                          "steps": ["s1", "s2", "s3"], "labels": [1.0, 0.0625, 0.0]}


def test_dev_items_of_a_training_file(tmp_path):
    evaluate = pytest.importorskip("mprm.train.evaluate")
    rows = [{"id": "k", "source": "src", "images": ["a.png"], "question": "Q?", "steps": ["s1", "s2", "s3"],
             "mc_scores": [1.0, 0.0625, 0.0], "labels": [1.0, 1.0, 0.0]},
            {"images": ["b.png"], "question": "R?", "steps": ["t1", "t2", "t3"], "labels": [0.75, 0.5, 0.25]}]
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = evaluate.dev_items(path, label_threshold=1 / 16)
    assert items == [
        # labels from the MC scores under tau = 1/16: 1.0 > 1/16, 0.0625 is not, 0.0 is not
        {"id": "k", "data_source": "src", "images": ["a.png"], "question": "Q?", "steps": ["s1", "s2", "s3"],
         "labels": [1, 0, 0]},
        # no MC scores: the stored targets cut at 0.5 (0.75 and 0.5 correct, 0.25 incorrect); id = row number
        {"id": "2", "data_source": "dev", "images": ["b.png"], "question": "R?", "steps": ["t1", "t2", "t3"],
         "labels": [1, 1, 0]},
    ]


def test_synth_refuses_bad_arguments_with_a_user_error(tmp_path):
    from mprm.data.synth import NoiseSettings, generate

    with pytest.raises(UserError, match=r"^synth: rollouts must be an integer >= 1 \(got 0\)$"):
        generate(tmp_path, rollouts=0)
    with pytest.raises(UserError, match=r"^synth: step_chars must be a positive integer or None \(got 0\)$"):
        generate(tmp_path, step_chars=0)
    with pytest.raises(UserError, match=r"^NoiseSettings: early_stop must lie in \[0, 1\] \(got 2.0\)$"):
        NoiseSettings(early_stop=2.0)
    assert not (tmp_path / "synth.json").exists()
