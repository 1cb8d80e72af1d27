"""Selection reports: the paper's Table 1 columns for the corpus and the subset, per source and in
total, the parameters, reject counts by reason (``report.json``, ``report.md``) and a histogram
of ranking scores (``scores.png``).

Columns: rollouts, steps, steps per rollout, error-step ratio (share of steps whose label is 0
under the chosen threshold tau: s_j <= tau; with soft labels tau = 0), mean MC per step, share of
mixed rollouts (a positive s_j > 0 and a negative s_j = 0 step), and unannotated steps
(``num_mc_total == 0``, METHOD.md 9) found in the input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np


@dataclass
class RowStats:
    """Per-valid-rollout numbers for reporting (file order)."""

    group_ids: np.ndarray
    n_steps: np.ndarray
    n_err: np.ndarray
    sum_mc: np.ndarray
    mixed: np.ndarray
    n_unannotated: np.ndarray


def _summary(stats: RowStats, rows: np.ndarray) -> dict[str, Any]:
    n = int(len(rows))
    steps = int(stats.n_steps[rows].sum())
    return {
        "rollouts": n,
        "steps": steps,
        "steps_per_rollout": steps / n if n else 0.0,
        "error_step_ratio": int(stats.n_err[rows].sum()) / steps if steps else 0.0,
        "mean_mc": float(stats.sum_mc[rows].sum()) / steps if steps else 0.0,
        "mixed_share": int(stats.mixed[rows].sum()) / n if n else 0.0,
        "unannotated_steps": int(stats.n_unannotated[rows].sum()),
        "rollouts_with_unannotated": int((stats.n_unannotated[rows] > 0).sum()),
    }


def table_stats(stats: RowStats, names: Sequence[str], subset: np.ndarray | None = None) -> dict[str, Any]:
    """Per-source and total summaries of all rows, or of the ``subset`` rows (indices)."""
    rows = np.arange(len(stats.n_steps)) if subset is None else np.asarray(subset, np.int64)
    ids = stats.group_ids[rows]
    per_source = {name: _summary(stats, rows[ids == g]) for g, name in enumerate(names)}
    return {"per_source": per_source, "total": _summary(stats, rows)}


_COLUMNS = (
    ("rollouts", "rollouts", "{:,}"),
    ("steps", "steps", "{:,}"),
    ("steps_per_rollout", "steps/rollout", "{:.2f}"),
    ("error_step_ratio", "error steps", "{:.2%}"),
    ("mean_mc", "mean MC", "{:.4f}"),
    ("mixed_share", "mixed", "{:.2%}"),
    ("unannotated_steps", "unannotated steps", "{:,}"),
)


def _md_table(block: dict[str, Any]) -> list[str]:
    head = "| source | " + " | ".join(title for _, title, _ in _COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(_COLUMNS) + 1)]
    rows = list(block["per_source"].items()) + [("**total**", block["total"])]
    for name, values in rows:
        lines.append(f"| {name} | " + " | ".join(fmt.format(values[key]) for key, _, fmt in _COLUMNS) + " |")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: parameters, input accounting, corpus and subset tables."""
    p, inp = report["parameters"], report["input"]
    out = ["# Selection report", "", "## Parameters", ""]
    out += [f"- {key}: `{value}`" for key, value in p.items()]
    out += ["", "## Input", ""]
    out += [
        f"- files: {len(inp['files'])}",
        f"- non-empty lines: {inp['lines']:,}",
        f"- valid rollouts: {inp['valid']:,}",
        f"- rejected: {inp['rejected']:,}",
        f"- unannotated steps (num_mc_total == 0, {p['unannotated']}): {inp['unannotated_steps']:,}"
        f" in {inp['rollouts_with_unannotated']:,} rollouts",
    ]
    if inp["rejected_by_reason"]:
        out += ["", "| reject reason | count |", "|---|---|"]
        out += [f"| {reason} | {count:,} |" for reason, count in inp["rejected_by_reason"].items()]
    tau = "tau = 0 (soft labels)" if p["soft_labels"] else f"tau = {p['label_threshold']}"
    out += ["", f"Error steps: share of steps labelled 0 under {tau}, i.e. s_j <= tau.", ""]
    out += ["## Corpus (valid rollouts)", ""] + _md_table(report["corpus"])
    out += ["", f"## Subset ({report['parameters']['strategy']})", ""] + _md_table(report["subset"])
    out += ["", "## k per source", "", "| source | k |", "|---|---|"]
    out += [f"| {name} | {k:,} |" for name, k in report["k"].items()]
    return "\n".join(out) + "\n"


def write_reports(out_dir: str | Path, report: dict[str, Any]) -> None:
    out_dir = Path(out_dir)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(render_markdown(report))


def plot_scores(path: str | Path, scores: np.ndarray, kept: np.ndarray, *, label: str) -> None:
    """Histogram of ranking scores, kept vs not kept (matplotlib imported here, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    finite = scores[np.isfinite(scores)]
    bins = np.linspace(finite.min(), finite.max() if finite.max() > finite.min() else finite.min() + 1, 41) if len(finite) else 10
    ax.hist([scores[~kept], scores[kept]], bins=bins, stacked=True, label=["not kept", "kept"], color=["#bbbbbb", "#1f77b4"])
    ax.set_xlabel(label)
    ax.set_ylabel("rollouts")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
