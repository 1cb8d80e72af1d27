"""Readers (benchmark, training format), the corpus through the real path (``scan_file``,
``select_corpus``) and the fast scan's agreement with the precise validator."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mprm.data import SelectionSettings, select_corpus
from mprm.data.jsonl import scan_file
from mprm.data.readers import read_benchmark, read_training_jsonl
from mprm.data.validation import DataError


def _messy(tools):
    """Valid lines of many shapes plus every kind of bad line."""
    r = tools.rollout
    lines = [
        r([1.0, 0.0], id=12),
        r([0.5], image=["x.png", "y.png"], question_zh="图里有几个圆？"),
        r([1.0, 1, 0.0], question_orig=""),  # falls back to the instruction-formatted question
        r([0.25, 0.0], totals=[16, 0]),
        "",
        b'{"image": "a.png", "question": "q", "steps_with_score": [{"step": "s", "score": 1.0}], "answer": 5}',
        b"not json",
        r([1.5]),
        r([0.5, 0.0]) | {"image": ""},
        b'{"image": "a.png", "question": "q", "steps_with_score": [{"step": "s", "score": Infinity}]}',
        r([1.0]) | {"steps_with_score": [{"step": "a", "score": 0.5, "num_mc_correct": 9, "num_mc_total": 8}]},
        r([1.0]) | {"question_orig": None, "question": None},
        b'{"image": "a.png", "question": "q", "steps_with_score": [{"step": "s", "score": 0.5, "num_mc_total": 16.0}]}',
        "   ",
        r([0.0, 0.0, 0.0]),
    ]
    return lines


@pytest.mark.parametrize("unannotated", ["negative", "truncate"])
def test_fast_scan_agrees_with_precise_reader(tmp_path, tools, unannotated):
    path = tools.write_jsonl(tmp_path / "src.jsonl", _messy(tools))
    results = tools.precise(path, unannotated=unannotated)
    scan = scan_file(path, source="src", lenient=True, unannotated=unannotated)
    assert scan.n_lines == len(results) == 13  # every non-empty line accounted for
    kept = [(line, c) for line, c, _ in results if c is not None]
    assert scan.line.tolist() == [line for line, _ in kept] == [1, 2, 3, 4, 6, 15]
    assert scan.ids == [c.id for _, c in kept] == ["12", None, None, None, None, None]  # own ids only
    numbers = zip(scan.n_steps.tolist(), scan.n_pos.tolist(), scan.sum_mc.tolist(), scan.n_err.tolist())
    for got, (line, c) in zip(numbers, kept, strict=True):
        scores = c.scores
        assert got == (len(scores), sum(s > 0 for s in scores), sum(scores), sum(s <= 0 for s in scores))
    assert [(line, reason) for line, _, reason, _ in scan.rejected] == [(n, why) for n, c, why in results if c is None]
    # the same lines as training rows, through the real path
    result = select_corpus(path, SelectionSettings("full", lenient=True, unannotated=unannotated), tmp_path / "o", plot=False)
    rows = tools.read_jsonl(result.selected)
    assert [r["id"] for r in rows] == ["12", "src:2", "src:3", "src:4", "src:6", "src:15"]
    assert rows[1]["images"] == ["x.png", "y.png"]
    assert rows[2]["question"].startswith("<image>") and rows[4]["answer"] == "5"
    assert rows[1]["extra"]["question_zh"] == "图里有几个圆？"
    assert len(rows[3]["steps"]) == (1 if unannotated == "truncate" else 2)


def test_strict_reader_raises_with_location(tmp_path, tools):
    path = tools.write_jsonl(tmp_path / "src.jsonl", _messy(tools))
    with pytest.raises(DataError) as err:
        select_corpus(path, SelectionSettings("full"), tmp_path / "o")
    assert str(err.value) == f"{path}:7: line: invalid JSON ('Expecting value: line 1 column 1 (char 0)')"
    assert list((tmp_path / "o").iterdir()) == []  # strict mode writes nothing


def test_jsonl_and_parquet_give_the_same_rollouts(tmp_path, tools):
    import pyarrow as pa
    import pyarrow.parquet as pq

    recs = [tools.rollout([1.0, 0.0], id="j"), tools.rollout([0.5, 0.5, 0.0], id="k"), tools.rollout([0.0625], id=None)]
    jl = tools.write_jsonl(tmp_path / "src.jsonl", recs)
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "src.parquet")
    a = tools.read_jsonl(select_corpus(jl, SelectionSettings("full"), tmp_path / "a", plot=False).selected)
    b = tools.read_jsonl(select_corpus(tmp_path / "src.parquet", SelectionSettings("full"), tmp_path / "b", plot=False).selected)
    assert a == b
    assert [r["id"] for r in b] == ["j", "k", "src:3"]
    scan = scan_file(tmp_path / "src.parquet", source="src")
    numbers = zip(scan.n_steps.tolist(), scan.n_pos.tolist(), scan.sum_mc.tolist())
    assert list(numbers) == [(2, 1, 1.0), (3, 2, 1.0), (1, 1, 0.0625)]


def test_selected_jsonl_round_trip(tmp_path, tools):
    from mprm.cli import main

    recs = [tools.rollout([1.0, 0.0]), tools.rollout([0.5, 0.5, 0.0], id="k")]
    path = tools.write_jsonl(tmp_path / "src.jsonl", recs)
    assert main(["select", "--input", str(path), "--strategy", "full", "--no-plot", "--output", str(tmp_path / "o")]) == 0
    rows = read_training_jsonl(tmp_path / "o" / "selected.jsonl")
    extra = {"question": "<image>\nHow many circles?", "response": "...", "num_mc_sequences": 16}
    common = {"source": "src", "images": ["images/a.png"], "question": "How many circles?", "answer": "3", "extra": extra}
    assert rows == [
        {"id": "src:1", **common, "steps": ["step 0", "step 1"], "mc_scores": [1.0, 0.0], "num_mc_correct": [16, 0],
         "num_mc_total": [16, 16], "labels": [1.0, 0.0]},
        {"id": "k", **common, "steps": ["step 0", "step 1", "step 2"], "mc_scores": [0.5, 0.5, 0.0],
         "num_mc_correct": [8, 8, 0], "num_mc_total": [16, 16, 16], "labels": [1.0, 1.0, 0.0]},
    ]


def test_read_benchmark(tmp_path, tools):
    item = {"image": ["images/1.png"], "question": "<image 1> q", "answer": "B",
            "response": {"steps": ["a", "b", "c"], "process_correctness": [1, -1, 0]},
            "policy_model": "gpt-4o", "data_source": "MMMU_DEV_VAL"}
    bad = dict(item, response={"steps": ["a"], "process_correctness": [2]})
    path = tools.write_jsonl(tmp_path / "test.jsonl", [item, dict(item, id="x9"), bad])
    items = read_benchmark(path, lenient=True)
    assert [i.id for i in items] == [None, "x9"]  # the record's own id, None without one (no line numbers)
    assert items[0].labels == [1, 0, -1] and items[0].data_source == "MMMU_DEV_VAL" and items[0].policy_model == "gpt-4o"
    with pytest.raises(DataError, match=r"test.jsonl:3: response.process_correctness\[0\]: not 1, 0 or -1 \(2\)"):
        read_benchmark(path)


def test_data_layer_imports_no_torch():
    code = ("import sys, mprm.data, mprm.data.readers, mprm.data.selection, mprm.data.report, mprm.data.jsonl, "
            "mprm.data.validation, mprm.data.labels, mprm.data.pipeline, mprm.data.settings, mprm.data.outputs, "
            "mprm.data.synth, mprm.cli.select; "
            "bad = [m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_select_startup_imports_nothing_heavy():
    """``mprm select`` imports numpy only to select (not to parse its flags or fail on them),
    Pillow only to draw, tqdm only on a terminal, pyarrow only for parquet (docs/selection.md)."""
    heavy = "('numpy', 'PIL', 'matplotlib', 'tqdm', 'pyarrow', 'multiprocessing.pool')"
    for modules, allowed in (("mprm.cli, mprm.cli.select, mprm.data, mprm.data.settings", ()),
                             ("mprm.data.pipeline, mprm.data.readers", ("numpy",))):
        code = (f"import sys, {modules}; bad = [m for m in {heavy} if m in sys.modules and m not in {allowed!r}]; "
                "print(bad); sys.exit(bool(bad))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
