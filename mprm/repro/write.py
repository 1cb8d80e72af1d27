"""Writing ``mprm report``'s outputs: report.json, report.md and data_efficiency.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mprm.files import atomic_write_text, prepare_output_dir
from mprm.repro.plot import plot_data_efficiency
from mprm.repro.render import render_markdown
from mprm.repro.report import build_report
from mprm.repro.runs import load_runs

PLOT_FILE = "data_efficiency.png"


def write_report(runs_dir: str | Path, output: str | Path, *, threshold_kind: str = "oracle",
                 only_runs: bool = False, plot: bool = True) -> dict[str, Any]:
    """Read every run below ``runs_dir`` and write OUT/report.json, OUT/report.md and the plot.

    Returns the report dict (with ``paths`` added: the files written).
    """
    runs = load_runs(runs_dir)
    out = prepare_output_dir(output)
    report = build_report(runs, runs_dir, threshold_kind=threshold_kind, only_runs=only_runs)
    paths = {"json": str(out / "report.json"), "markdown": str(out / "report.md")}
    if plot:
        plot_data_efficiency(runs, report["families"], threshold_kind, out / PLOT_FILE)
        paths["plot"] = str(out / PLOT_FILE)
    report["paths"] = paths
    atomic_write_text(out / "report.md", render_markdown(report, plot_name=PLOT_FILE if plot else None))
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report
