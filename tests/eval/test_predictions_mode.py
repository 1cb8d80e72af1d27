"""eval.py --predictions (no torch), the predictions file format, metrics.json / metrics.md layout."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mprm.eval.predictions import (
    PredictionsError,
    encode_row,
    file_fields,
    match_rows,
    read_located,
    read_predictions,
)
from mprm.eval.tables import paper_columns, render_metrics_md

# The hand-computed case of test_metrics.py as a predictions FILE holds it: labels in the
# benchmark's coding (1 correct, -1 incorrect, 0 neutral), with real source names:
#   MMMU_DEV_VAL at 0.5: TP 2, FN 1, FP 1, TN 1 -> F1+ 2/3, F1- 1/2, macro 7/12 = 58.33 %
#   WeMath at 0.5 (ties): TP 1, FP 1, TN 1 -> macro 2/3 = 66.67 %
#   overall = (5 * 7/12 + 3 * 2/3) / 8 = 59/96 = 61.46 %
PC = {"label_coding": "process_correctness"}
TEST_ROWS = [
    {"id": "a1", "data_source": "MMMU_DEV_VAL", **PC, "labels": [1, 1, -1, 0], "scores": [0.9, 0.3, 0.6, 0.99]},
    {"id": "a2", "data_source": "MMMU_DEV_VAL", **PC, "labels": [1, -1], "scores": [0.8, 0.2]},
    {"id": "b1", "data_source": "WeMath", **PC, "labels": [1, -1, -1], "scores": [0.5, 0.5, 0.1]},
]
# dev: labels correct, incorrect, correct; scores [0.8, 0.4, 0.3] -> best threshold 0.8 (test_metrics.py)
DEV_ROWS = [{"id": "x", "data_source": "S", **PC, "labels": [1, -1, 1], "scores": [0.8, 0.4, 0.3]}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_predictions_mode_writes_metrics_without_importing_torch(tmp_path, repo_root):
    preds = write_jsonl(tmp_path / "predictions.jsonl", TEST_ROWS)
    dev = write_jsonl(tmp_path / "dev.jsonl", DEV_ROWS)
    out = tmp_path / "out"
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['eval.py', '--predictions', {str(preds)!r}, '--output', {str(out)!r}, '--dev', {str(dev)!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(repo_root / 'eval.py')!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "bad = [m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "fixed (t=0.5000) 61.46" in res.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) == {"thresholds", "results", "cut"}
    assert m["cut"] == {"count": 0, "items": [], "dev": {"count": 0, "items": []}}
    assert m["thresholds"]["fixed"] == 0.5 and m["thresholds"]["dev"] == 0.8
    assert m["results"]["fixed"]["overall"] == pytest.approx(59 / 96)
    # dev threshold 0.8 on the test rows: MMMU 0.9 TP, 0.8 TP, 0.3 FN, 0.6 TN, 0.2 TN
    #   F1+ 4/5, F1- 4/5 -> 4/5; WeMath all predicted incorrect: FN 1, TN 2 -> F1+ 0, F1- 4/5 -> 2/5
    #   overall = (5 * 4/5 + 3 * 2/5) / 8 = 5.2/8 = 0.65
    assert m["results"]["dev"]["overall"] == pytest.approx(0.65)
    md = (out / "metrics.md").read_text()
    assert "| Threshold | t | Overall | MathVision | MathVerse | MMMU | DynaMath | WeMath |" in md
    assert "| fixed | 0.5000 | 61.46 | - | - | 58.33 | - | 66.67 |" in md
    assert "| dev | 0.8000 | 65.00 | - | - | 80.00 | - | 40.00 |" in md
    assert "| oracle |" in md
    assert "Steps cut by the token limit, left out of the metrics: 0 (in 0 item(s)); dev file: 0" in md
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "metrics.md"]  # no temporary file left


def test_file_coding_round_trip_and_internal_rows():
    # in memory (internal coding): correct 1, incorrect 0, neutral -1; in the file: 1, -1, 0
    row = {"id": "a1", "data_source": "S", "labels": [1, 0, -1], "scores": [0.9, 0.2, None]}
    line = encode_row(row)
    assert json.loads(line) == {"id": "a1", "data_source": "S", "label_coding": "process_correctness",
                                "labels": [1, -1, 0], "scores": [0.9, 0.2, None]}
    assert list(json.loads(line)) == ["id", "data_source", "label_coding", "labels", "scores"]
    assert file_fields(["data_source", "labels"]) == ("id", "data_source", "label_coding", "labels", "scores")


def test_read_predictions_converts_to_internal_and_metrics_match_test_metrics(tmp_path):
    from mprm.eval.metrics import metrics_at, step_data_from_rows

    rows = read_predictions(write_jsonl(tmp_path / "p.jsonl", TEST_ROWS))
    assert rows[0]["labels"] == [1, 1, 0, -1] and "label_coding" not in rows[0]
    assert metrics_at(step_data_from_rows(rows), 0.5)["overall"] == pytest.approx(59 / 96)


def test_file_in_the_old_coding_is_refused_with_the_reason(tmp_path):
    old = [{k: v for k, v in r.items() if k != "label_coding"} for r in TEST_ROWS]
    with pytest.raises(PredictionsError, match=r"p.jsonl:1: no 'label_coding' field: .*old internal coding "
                                               r"\(1 correct, 0 incorrect, -1 neutral\).*swap labels 0 and -1"):
        read_predictions(write_jsonl(tmp_path / "p.jsonl", old))
    with pytest.raises(PredictionsError, match=r"p.jsonl:1: label_coding: 'internal', expected 'process_correctness'"):
        read_predictions(write_jsonl(tmp_path / "p.jsonl", [{**TEST_ROWS[0], "label_coding": "internal"}]))


def test_metrics_md_layout_other_sources_after_paper_columns():
    cols = paper_columns(["synth_b", "DynaMath", "MathVision_MINI", "MathVerse_MINI_Vision_Only", "synth_a"])
    assert [c for c, _ in cols] == ["MathVision", "MathVerse", "MMMU", "DynaMath", "WeMath", "synth_b", "synth_a"]
    assert dict(cols)["MMMU"] is None and dict(cols)["MathVision"] == "MathVision_MINI"
    metrics = {
        "thresholds": {"fixed": 0.5, "dev": None, "oracle": 0.25},
        "results": {
            "fixed": {"overall": 0.123456, "macro_f1_pooled": 0.5, "f1_positive": 0.5, "f1_negative": 0.5,
                      "auc": None, "n_steps": 3,
                      "per_source": {"x": {"macro_f1": 0.123456, "f1_positive": 1, "f1_negative": 0, "n_steps": 3}}},
            "dev": None,
        },
    }
    metrics["results"]["oracle"] = metrics["results"]["fixed"]
    md = render_metrics_md(metrics)
    lines = md.splitlines()
    assert "| fixed | 0.5000 | 12.35 | - | - | - | - | - | 12.35 |" in lines
    assert "| oracle | 0.2500 | 12.35 | - | - | - | - | - | 12.35 |" in lines
    assert not any(line.startswith("| dev") for line in lines)
    assert "| fixed | 50.00 | 50.00 | 50.00 | - | 3 |" in lines
    # a zero-shot model labels every row; cut steps are counted under the tables
    zs = render_metrics_md({**metrics, "model": {"name": "base/ckpt", "zero_shot": True, "backbone": None,
                                                 "head": "yes_no"},
                            "cut": {"count": 3, "items": [{"id": "a", "cut": 2, "steps": 4},
                                                          {"id": "b", "cut": 1, "steps": 2}], "dev": None}})
    assert "| fixed, zero-shot | 0.5000 | 12.35 |" in zs and "| oracle, zero-shot | 0.2500 |" in zs
    assert "Model: `base/ckpt` (zero-shot: a base checkpoint with a fresh `<prm>` head (yes_no)" in zs
    assert "Steps cut by the token limit, left out of the metrics: 3 (in 2 item(s))." in zs


def test_resume_reading_drops_only_a_truncated_last_line(tmp_path):
    p = tmp_path / "predictions.jsonl"
    fields = file_fields(["data_source", "labels"])
    full = "".join(json.dumps(r) + "\n" for r in TEST_ROWS)
    p.write_text(full[: len(full) - 15])  # killed in the middle of the last row
    assert [r["id"] for _, r in read_located(p, fields=fields, tolerate_truncation=True)] == ["a1", "a2"]
    with pytest.raises(PredictionsError, match=r"predictions.jsonl:3: truncated last line .* --resume"):
        read_predictions(p)
    p.write_text(full.rstrip("\n"))  # complete last row, newline lost: kept
    assert [w for w, _ in read_located(p, fields=fields)] == [f"{p}:1", f"{p}:2", f"{p}:3"]


def test_bad_line_in_the_middle_is_an_error_even_when_resuming(tmp_path):
    p = tmp_path / "predictions.jsonl"
    p.write_text(json.dumps(TEST_ROWS[0]) + "\n{broken\n" + json.dumps(TEST_ROWS[1]) + "\n")
    with pytest.raises(PredictionsError, match=r"predictions.jsonl:2: not valid JSON"):
        read_located(p, fields=file_fields(["data_source", "labels"]), tolerate_truncation=True)
    p.write_text(json.dumps({"id": "1", **PC, "labels": [1], "scores": [0.5]}) + "\n")
    with pytest.raises(PredictionsError, match=r"predictions.jsonl:1: missing field\(s\) data_source"):
        read_predictions(p)


def test_rows_are_matched_to_the_benchmark_by_id_and_content():
    items = [{"id": "a1", "data_source": "MMMU_DEV_VAL", "labels": [1, 1, 0, -1], "steps": ["s"] * 4},
             {"id": "a2", "data_source": "MMMU_DEV_VAL", "labels": [1, 0], "steps": ["s"] * 2}]
    rows = [("f:1", {"id": "a2", "data_source": "MMMU_DEV_VAL", "labels": [1, 0], "scores": [0.1, 0.2]}),
            ("f:2", {"id": "a2", "data_source": "MMMU_DEV_VAL", "labels": [1, 0], "scores": [0.1, 0.2]})]
    assert list(match_rows(rows, items, row_fields=("data_source", "labels"), origin="b.jsonl")) == ["a2"]
    with pytest.raises(PredictionsError, match=r"f:1: row id 'zz' is not an item of b.jsonl: .*another benchmark"):
        match_rows([("f:1", {**rows[0][1], "id": "zz"})], items, row_fields=("data_source", "labels"), origin="b.jsonl")
    # same id, other labels: shown in the file coding
    with pytest.raises(PredictionsError, match=r"f:1: row id 'a2': labels = \[1, 1\], but the item in "
                                               r"b.jsonl has \[1, -1\]: it was written for another benchmark"):
        match_rows([("f:1", {**rows[0][1], "labels": [1, 1]})], items, row_fields=("data_source", "labels"),
                   origin="b.jsonl")
    with pytest.raises(PredictionsError, match=r"f:2: id 'a2' appears twice with different contents"):
        match_rows([rows[0], ("f:2", {**rows[0][1], "scores": [0.3, 0.2]})], items,
                   row_fields=("data_source", "labels"), origin="b.jsonl")


def test_cli_rejects_inconsistent_flags(tmp_path, capsys):
    from mprm.eval.cli import main

    assert main(["--predictions", "p.jsonl", "--bon", "b.jsonl", "--output", str(tmp_path)]) == 2
    assert main(["--benchmark", "t.jsonl", "--image-root", ".", "--output", str(tmp_path)]) == 2  # no --model
    assert main(["--predictions", "p.jsonl", "--threshold", "1.5", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["eval.py: error: give exactly one of --benchmark (with --model), --predictions, --checkpoints, --bon",
                   "eval.py: error: --benchmark needs --model",
                   "eval.py: error: threshold 1.5 is outside [0, 1]: scores are probabilities; pass --threshold "
                   "between 0 and 1"]


def test_dev_benchmark_without_model_is_an_error(tmp_path):
    from mprm.eval.pipeline import evaluate_predictions

    preds = write_jsonl(tmp_path / "p.jsonl", TEST_ROWS)
    bench = write_jsonl(tmp_path / "dev.jsonl", [{"id": "q", "question": "?", "response": {"steps": ["s"]}}])
    with pytest.raises(ValueError, match="a benchmark file .* needs --model"):
        evaluate_predictions(preds, tmp_path / "out", dev=bench)
