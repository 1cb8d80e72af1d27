"""eval.py --predictions (no torch), metrics.json / metrics.md layout, predictions-file recovery."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mprm.eval.predictions import PredictionsError, order_rows, read_predictions, recover
from mprm.eval.tables import paper_columns, render_metrics_md

# Same hand-computed case as test_metrics.py, with the real source names:
#   MMMU_DEV_VAL at 0.5: TP 2, FN 1, FP 1, TN 1 -> F1+ 2/3, F1- 1/2, macro 7/12 = 58.33 %
#   WeMath at 0.5 (ties): TP 1, FP 1, TN 1 -> macro 2/3 = 66.67 %
#   overall = (5 * 7/12 + 3 * 2/3) / 8 = 59/96 = 61.46 %
TEST_ROWS = [
    {"id": "a1", "data_source": "MMMU_DEV_VAL", "labels": [1, 1, 0, -1], "scores": [0.9, 0.3, 0.6, 0.99]},
    {"id": "a2", "data_source": "MMMU_DEV_VAL", "labels": [1, 0], "scores": [0.8, 0.2]},
    {"id": "b1", "data_source": "WeMath", "labels": [1, 0, 0], "scores": [0.5, 0.5, 0.1]},
]
# dev: labels [1, 0, 1], scores [0.8, 0.4, 0.3] -> best threshold 0.8 (see test_oracle_sweep_hand_computed)
DEV_ROWS = [{"id": "x", "data_source": "S", "labels": [1, 0, 1], "scores": [0.8, 0.4, 0.3]}]


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
    assert set(m) == {"thresholds", "results"}
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


def test_recover_drops_truncated_last_line_and_rewrites(tmp_path):
    p = tmp_path / "predictions.jsonl"
    full = "".join(json.dumps(r) + "\n" for r in TEST_ROWS)
    p.write_text(full[: len(full) - 15])  # killed in the middle of the last row
    rows = recover(p)
    assert [r["id"] for r in rows] == ["a1", "a2"]
    assert p.read_text() == "".join(json.dumps(r) + "\n" for r in TEST_ROWS[:2])
    p.write_text(full.rstrip("\n"))  # complete last row, newline lost: kept
    assert [r["id"] for r in recover(p)] == ["a1", "a2", "b1"] and p.read_text() == full


def test_bad_line_in_the_middle_is_an_error(tmp_path):
    p = tmp_path / "predictions.jsonl"
    p.write_text(json.dumps(TEST_ROWS[0]) + "\n{broken\n" + json.dumps(TEST_ROWS[1]) + "\n")
    with pytest.raises(PredictionsError, match=r"predictions.jsonl:2: not valid JSON"):
        recover(p)
    p.write_text(json.dumps({"id": 1, "labels": [1], "scores": [0.5]}) + "\n")
    with pytest.raises(PredictionsError, match=r"predictions.jsonl:1: missing field\(s\) data_source"):
        read_predictions(p)


def test_order_rows_dedupes_and_rejects_foreign_ids():
    rows = [TEST_ROWS[2], TEST_ROWS[0], TEST_ROWS[2]]
    assert [r["id"] for r in order_rows(rows, ["a1", "a2", "b1"], origin="f")] == ["a1", "b1"]
    with pytest.raises(PredictionsError, match="'zz' is not an item"):
        order_rows([{**TEST_ROWS[0], "id": "zz"}], ["a1"], origin="f")


def test_cli_rejects_inconsistent_flags(tmp_path, repo_root):
    from mprm.eval.cli import main

    assert main(["--predictions", "p.jsonl", "--bon", "b.jsonl", "--output", str(tmp_path)]) == 2
    assert main(["--benchmark", "t.jsonl", "--image-root", ".", "--output", str(tmp_path)]) == 2  # no --model
    assert main(["--predictions", "p.jsonl", "--threshold", "1.5", "--output", str(tmp_path)]) == 2


def test_dev_benchmark_without_model_is_an_error(tmp_path):
    from mprm.eval.pipeline import evaluate_predictions

    preds = write_jsonl(tmp_path / "p.jsonl", TEST_ROWS)
    bench = write_jsonl(tmp_path / "dev.jsonl", [{"id": "q", "question": "?", "response": {"steps": ["s"]}}])
    with pytest.raises(ValueError, match="a benchmark file .* needs --model"):
        evaluate_predictions(preds, tmp_path / "out", dev=bench)
