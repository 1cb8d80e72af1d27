"""mprm report against a hand-made table: fixture eval outputs with chosen numbers, differences
against the published numbers (METHOD.md 8) worked out by hand."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mprm.cli import main as mprm_main
from mprm.repro.write import write_report

IVL = ["model.backbone=internvl"]
QWEN = ["model.backbone=qwen2_5_vl"]
GPU4 = {"device_type": "cuda", "device_count": 4, "world_size": 4, "num_processes": 4, "mode": "zero3"}


@pytest.fixture
def runs_dir(make_run, metrics_factory):
    metrics_json = metrics_factory
    make_run(
        "internvl2_5_8b/full_hard0", IVL,
        metrics=metrics_json({"fixed": 0.6012, "dev": None, "oracle": 0.653},
                             {"MathVision": 0.66, "MathVerse": 0.65, "MMMU": 0.62, "DynaMath": 0.67, "WeMath": 0.6352}),
        summary={"optimizer_steps": 1100, "samples": 563200, "tokens": 1126400000, "wall_s": 36000.0, **GPU4},
    )
    make_run(
        "internvl2_5_8b/bis_10_a0.2", IVL + ["selection.strategy=bis", "selection.fraction=0.1", "selection.alpha=0.2"],
        metrics=metrics_json({"fixed": 0.62, "dev": None, "oracle": 0.6601},
                             {"MathVision": 0.665, "MathVerse": 0.6533, "MMMU": 0.63, "DynaMath": 0.6612, "WeMath": 0.6488}),
        summary={"optimizer_steps": 110, "samples": 56320, "tokens": 112640000, "wall_s": 3600.0, **GPU4},
        curve={"points": [
            {"name": "step-000050", "step": 50, "final": False, "overall": {"fixed": 0.6, "dev": None, "oracle": 0.652}},
            {"name": "step-000100", "step": 100, "final": False, "overall": {"fixed": 0.61, "dev": None, "oracle": 0.661}},
            {"name": "final", "step": 110, "final": True, "overall": {"fixed": 0.62, "dev": None, "oracle": 0.6601}},
        ], "final": {"name": "final", "step": 110, "final": True,
                     "overall": {"fixed": 0.62, "dev": None, "oracle": 0.6601}}},
    )
    make_run(
        "internvl2_5_8b/random_10", IVL + ["selection.strategy=random", "selection.fraction=0.1"],
        metrics=metrics_json({"fixed": 0.6, "dev": None, "oracle": 0.62}, {"MathVision": 0.61}),
        # train.py's wall_s runs on across a resume (rows past the checkpoint are replayed), so the
        # last complete row holds the whole run: 5400 s = 1.50 h
        train_rows=[{"step": 60, "samples": 30720, "tokens": 54000000, "wall_s": 3000.0},
                    {"step": 100, "samples": 51200, "tokens": 90000000, "wall_s": 5000.0},
                    {"step": 100, "dev/macro_f1": 0.6},
                    {"step": 110, "samples": 56320, "tokens": 100000000, "wall_s": 5400.0}],
    )
    # a kill while writing the last metrics row leaves a truncated line: it is ignored
    with (make_run.runs_dir / "internvl2_5_8b/random_10/metrics.jsonl").open("a") as fh:
        fh.write('{"step": 111, "samp')
    make_run("internvl2_5_8b/random_5", IVL + ["selection.strategy=random", "selection.fraction=0.05"],
             final=False, checkpoints=(50,))
    make_run(
        "qwen2_5_vl_7b/mixed_25", QWEN + ["selection.strategy=mixed", "selection.fraction=0.25"],
        metrics=metrics_json({"fixed": 0.6, "dev": None, "oracle": 0.61}),
        summary={"optimizer_steps": 275, "samples": 140800, "tokens": 281600000, "wall_s": 7200.0,
                 "device_type": "cpu", "device_count": 0, "world_size": 2, "num_processes": 2, "mode": "ddp"},
    )
    broken = make_run.runs_dir / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text("model:\n  backbone: internvl\n")
    return make_run.runs_dir


def _lines(text: str) -> list[str]:
    return text.splitlines()


IVL_HEADER = "| Setting | Run | Overall (oracle) | MathVision | MathVerse | MMMU | DynaMath | WeMath |"
FULL_ROW = ("| Full, hard tau=0 | internvl2_5_8b/full_hard0 | 65.30 (65.12, +0.18) | 66.00 (65.77, +0.23) | "
            "65.00 (65.43, -0.43) | 62.00 (61.84, +0.16) | 67.00 (66.17, +0.83) | 63.52 (63.56, -0.04) |")
RANDOM_ROW = "| Random-10% | internvl2_5_8b/random_10 | 62.00 (62.86, -0.86) | 61.00 | - | - | - | - |"
BIS_ROW = ("| BIS-10% (alpha 0.2) | internvl2_5_8b/bis_10_a0.2 | 66.01 (65.46, +0.55) | 66.50 (66.90, -0.40) | "
           "65.33 (65.07, +0.26) | 63.00 (63.35, -0.35) | 66.12 (65.56, +0.56) | 64.88 (65.10, -0.22) |")
QWEN_ROW = "| Mixed-25% | qwen2_5_vl_7b/mixed_25 | 61.00 | - | - | - | - | - |"


def test_table_matches_hand_made_rows(runs_dir, tmp_path):
    report = write_report(runs_dir, tmp_path / "out", only_runs=True, plot=False)
    md = _lines((tmp_path / "out" / "report.md").read_text())
    i = md.index("## InternVL2.5-8B (`model.backbone: internvl`)")
    assert md[i + 2] == "Model path(s): `/models/base`"
    assert md[i + 4: i + 9] == [IVL_HEADER, "|---|---|---|---|---|---|---|---|", FULL_ROW, RANDOM_ROW, BIS_ROW]
    assert md[i + 9] == ""
    j = md.index("## Qwen2.5-VL-7B (`model.backbone: qwen2_5_vl`)")
    assert md[j + 6] == QWEN_ROW and md[j + 7] == ""
    assert report["families"][0]["rows"][0]["ours"]["Overall"] == pytest.approx(65.30)
    assert report["families"][0]["rows"][2]["published"]["MathVision"] == 66.90
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r["run"] for r in on_disk["families"][0]["rows"]] == [
        "internvl2_5_8b/full_hard0", "internvl2_5_8b/random_10", "internvl2_5_8b/bis_10_a0.2"]


def test_compute_and_saving_against_full(runs_dir, tmp_path):
    write_report(runs_dir, tmp_path / "out", only_runs=True, plot=False)
    md = _lines((tmp_path / "out" / "report.md").read_text())
    assert ("| internvl2_5_8b/full_hard0 | Full, hard tau=0 | 1,100 | 563,200 | 1,126,400,000 | 10.00 | "
            "40.00 GPU-h (4 x GPU) | 100.0% | 100.0% |") in md
    # no run_summary.json: steps, samples, tokens, wall-clock from the last complete metrics.jsonl row
    assert "| internvl2_5_8b/random_10 | Random-10% | 110 | 56,320 | 100,000,000 | 1.50 | - | 10.0% | - |" in md
    assert ("| internvl2_5_8b/bis_10_a0.2 | BIS-10% (alpha 0.2) | 110 | 56,320 | 112,640,000 | 1.00 | "
            "4.00 GPU-h (4 x GPU) | 10.0% | 10.0% |") in md
    # CPU runs are reported in CPU-hours, and Qwen has no Full run to compare against
    assert "| qwen2_5_vl_7b/mixed_25 | Mixed-25% | 275 | 140,800 | 281,600,000 | 2.00 | 4.00 CPU-process-h (2 x cpu process) | - | - |" in md


def test_checkpoint_curve_headline(runs_dir, tmp_path):
    report = write_report(runs_dir, tmp_path / "out", only_runs=True, plot=False)
    md = _lines((tmp_path / "out" / "report.md").read_text())
    # best 66.10 at step 100, final 66.01 at 110; Full's oracle level 65.30 is first reached at step 100,
    # 1 - 100 / 1100 = 90.9% fewer optimiser steps than the Full run
    assert "| internvl2_5_8b/bis_10_a0.2 | oracle | 110 | 66.01 | 100 | 66.10 | 65.30 | 100 | 90.9% |" in md
    row = report["families"][0]["curves"][0]
    assert row["steps_saved_vs_full"] == pytest.approx(1 - 100 / 1100)


def test_incomplete_runs_are_listed(runs_dir, tmp_path):
    write_report(runs_dir, tmp_path / "out", only_runs=True, plot=False)
    md = _lines((tmp_path / "out" / "report.md").read_text())
    i = md.index("## Incomplete runs")
    listed = md[i + 2:]
    assert listed[0].startswith("- `broken`: ") and "key 'selection.strategy' is missing" in listed[0]
    assert "broken/config.yaml" in listed[0]
    assert listed[1] == ("- `internvl2_5_8b/random_10`: no run_summary.json")
    assert listed[2] == ("- `internvl2_5_8b/random_5`: training not finished (no final/); "
                         "no eval/final/metrics.json; no run_summary.json")
    assert len(listed) == 3


def test_published_rows_without_runs_and_other_threshold_kinds(runs_dir, tmp_path):
    write_report(runs_dir, tmp_path / "all", plot=False)
    md = _lines((tmp_path / "all" / "report.md").read_text())
    assert "| Base | - | - (52.28) | - | - | - | - | - |" in md
    assert "| Random-5% | - | - (63.34) | - | - | - | - | - |" in md
    assert "| Base | - | - (49.68) | - | - | - | - | - |" in md
    assert FULL_ROW in md and BIS_ROW in md
    write_report(runs_dir, tmp_path / "fixed", threshold_kind="fixed", only_runs=True, plot=False)
    md = _lines((tmp_path / "fixed" / "report.md").read_text())
    assert "| Setting | Run | Overall (fixed) | MathVision | MathVerse | MMMU | DynaMath | WeMath |" in md
    assert ("| Full, hard tau=0 | internvl2_5_8b/full_hard0 | 60.12 (65.12, -5.00) | 66.00 (65.77, +0.23) | "
            "65.00 (65.43, -0.43) | 62.00 (61.84, +0.16) | 67.00 (66.17, +0.83) | 63.52 (63.56, -0.04) |") in md
    report = write_report(runs_dir, tmp_path / "dev", threshold_kind="dev", only_runs=True, plot=False)
    assert all(not f["rows"] for f in report["families"])
    missing_dev = [i["run"] for i in report["incomplete"] if any("no 'dev' result" in p for p in i["problems"])]
    assert missing_dev == ["internvl2_5_8b/bis_10_a0.2", "internvl2_5_8b/full_hard0", "internvl2_5_8b/random_10",
                           "qwen2_5_vl_7b/mixed_25"]


def test_plot_is_written(runs_dir, tmp_path):
    report = write_report(runs_dir, tmp_path / "out")
    png = tmp_path / "out" / "data_efficiency.png"
    assert report["paths"]["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_cli(runs_dir, tmp_path, capsys):
    assert mprm_main(["report", str(runs_dir), "--output", str(tmp_path / "cli"), "--only-runs", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "report: 6 run folder(s), 3 incomplete; threshold kind oracle" in out
    assert not (tmp_path / "cli" / "data_efficiency.png").exists()
    assert BIS_ROW in (tmp_path / "cli" / "report.md").read_text()
    assert mprm_main(["report", str(tmp_path / "nowhere"), "--output", str(tmp_path / "x")]) == 2


def test_no_torch_import(runs_dir, tmp_path):
    code = ("import sys; from mprm.cli import main; "
            f"rc = main(['report', {str(runs_dir)!r}, '--output', {str(tmp_path / 'o')!r}]); "
            "import mprm.repro.commands, mprm.repro.configs; "
            "assert rc == 0; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
