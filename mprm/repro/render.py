"""Markdown rendering of the report built by :func:`mprm.repro.report.build_report` (no torch)."""

from __future__ import annotations

from typing import Any

from mprm.repro.report import KIND_NOTES


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100.0 * x:.{digits}f}%"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def render_markdown(report: dict[str, Any], *, plot_name: str | None = "data_efficiency.png") -> str:
    """report.md: one Table 2 per backbone family, compute, checkpoint curves, plot, incomplete runs."""
    kind = report["threshold_kind"]
    lines = [
        "# Reproduction report",
        "",
        f"Runs: `{report['runs_dir']}` ({report['n_runs']} run folder(s)). "
        f"Threshold kind shown: **{kind}** ({KIND_NOTES[kind]}).",
        "",
        "VisualProcessBench step macro-F1 in percent. Each cell reads `ours (published, ours - published)`; "
        "`-` means no run or no published number. Published numbers: the paper (METHOD.md 8).",
        "",
    ]
    for fam in report["families"]:
        lines += [f"## {fam['title']} (`model.backbone: {fam['family']}`)", ""]
        if fam["model_paths"]:
            lines += ["Model path(s): " + ", ".join(f"`{p}`" for p in fam["model_paths"]), ""]
        label = f"Overall ({kind})"
        header = ["Setting", "Run", label] + report["columns"][1:]
        lines += _table(header, [[r["title"], r["run"] or "-"] + r["cells"] for r in fam["rows"]])
        lines.append("")
        if fam["compute"]:
            lines += ["### Compute", ""]
            rows = [[
                c["run"], c["title"], f"{c['steps']:,}", f"{c['samples']:,}", f"{c['tokens']:,}",
                f"{c['wall_h']:.2f}",
                "-" if c["device_hours"] is None else f"{c['device_hours']:.2f} {c['unit']} ({c['devices']})",
                _pct(c["steps_vs_full"]), _pct(c["hours_vs_full"]),
            ] for c in fam["compute"]]
            lines += _table(["Run", "Setting", "Optimiser steps", "Samples", "Tokens", "Wall-clock (h)",
                             "Device-hours", "Steps vs Full", "Device-hours vs Full"], rows)
            lines += ["", "Device-hours = wall-clock x device count from run_summary.json; "
                      "'vs Full' = share of the Full (hard tau=0) run of the same backbone.", ""]
        if fam["curves"]:
            lines += ["### Checkpoint curves (best vs final, METHOD.md 10.7)", ""]
            rows = [[
                c["run"], c["kind"], str(c["final_step"]), f"{c['final']:.2f}", str(c["best_step"]),
                f"{c['best']:.2f}", _num(c["full_level"], ".2f"),
                "-" if c["reach_step"] is None else str(c["reach_step"]), _pct(c["steps_saved_vs_full"]),
            ] for c in fam["curves"]]
            lines += _table(["Run", "Threshold", "Final step", "Final overall", "Best step", "Best overall",
                             "Full's overall", "First step at Full's level", "Steps saved vs Full"], rows)
            lines.append("")
    if plot_name:
        lines += ["## Data efficiency", "", f"![overall F1 against kept fraction]({plot_name})", ""]
    lines += ["## Incomplete runs", ""]
    if report["incomplete"]:
        lines += [f"- `{item['run']}`: " + "; ".join(item["problems"]) for item in report["incomplete"]]
    else:
        lines.append("None.")
    lines.append("")
    return "\n".join(lines)
