"""Selection reports: the paper's Table 1 columns for the corpus and the subset, per source and in
total, the parameters, reject counts by reason (``report.json``, ``report.md``) and a histogram
of ranking scores (``scores.png``).

Columns: rollouts, steps, steps per rollout, error-step ratio (share of steps whose label is 0
under the chosen threshold tau: s_j <= tau; with soft labels tau = 0), mean MC per step, share of
mixed rollouts (a positive s_j > 0 and a negative s_j = 0 step), and unannotated steps
(``num_mc_total == 0``, METHOD.md 9) found in the input. All of it is computed from per-rollout
columns (steps, positive steps, sum of MC scores, error steps, unannotated steps), never by
walking records again.
"""

from __future__ import annotations

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


_SIZE, _BOX = (600, 350), (72, 16, 584, 296)  # image; plot area (left, top, right, bottom)
_GREY, _BLUE, _INK = (187, 187, 187), (31, 119, 180), (40, 40, 40)


def _log_position(counts: np.ndarray, top_exp: int) -> np.ndarray:
    """Pixel rows of counts on a log axis from 0.5 (bottom) to 10**top_exp (top)."""
    left, top, right, bottom = _BOX
    low = np.log10(0.5)
    frac = (np.log10(np.maximum(counts, 0.5)) - low) / (top_exp - low)
    return np.round(bottom - frac * (bottom - top)).astype(int)


def plot_scores(path: str | Path, scores: np.ndarray, kept: np.ndarray, *, label: str) -> None:
    """Histogram of ranking scores (40 bins), kept stacked on not kept, log count axis, as a PNG.

    Drawn with Pillow: matplotlib's import alone takes about a second, a sizeable share of
    ``mprm select`` at VisualPRM400K scale, for one simple chart.
    """
    from PIL import Image, ImageDraw, ImageFont

    scores = np.asarray(scores, np.float64)
    kept = np.asarray(kept, bool)
    finite = np.isfinite(scores)
    low, high = (float(scores[finite].min()), float(scores[finite].max())) if finite.any() else (0.0, 1.0)
    edges = np.linspace(low, high if high > low else low + 1.0, 41)
    not_kept, _ = np.histogram(scores[finite & ~kept], edges)
    kept_counts, _ = np.histogram(scores[finite & kept], edges)
    totals = not_kept + kept_counts
    top_exp = max(1, int(np.ceil(np.log10(max(int(totals.max()), 1)))))
    image = Image.new("RGB", _SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    left, top, right, bottom = _BOX
    xs = np.round(left + (edges - edges[0]) / (edges[-1] - edges[0]) * (right - left)).astype(int)
    grey_top, blue_top = _log_position(not_kept, top_exp), _log_position(totals, top_exp)
    for i in range(40):
        if not_kept[i]:
            draw.rectangle((xs[i], grey_top[i], xs[i + 1] - 1, bottom), fill=_GREY)
        if kept_counts[i]:
            draw.rectangle((xs[i], blue_top[i], xs[i + 1] - 1, grey_top[i] if not_kept[i] else bottom), fill=_BLUE)
    draw.rectangle(_BOX, outline=_INK)
    for exp in range(0, top_exp + 1):
        y = int(_log_position(np.array([10.0**exp]), top_exp)[0])
        draw.line((left - 4, y, left, y), fill=_INK)
        draw.text((left - 6, y), f"{10**exp:,}" if exp <= 6 else f"1e{exp}", fill=_INK, font=font, anchor="rm")
    for value in np.linspace(edges[0], edges[-1], 5):
        x = int(round(left + (value - edges[0]) / (edges[-1] - edges[0]) * (right - left)))
        draw.line((x, bottom, x, bottom + 4), fill=_INK)
        draw.text((x, bottom + 6), f"{value:.3g}", fill=_INK, font=font, anchor="mt")
    draw.text(((left + right) // 2, _SIZE[1] - 8), label, fill=_INK, font=font, anchor="mb")
    rotated = Image.new("RGB", (120, 16), "white")
    ImageDraw.Draw(rotated).text((60, 8), "rollouts", fill=_INK, font=font, anchor="mm")
    image.paste(rotated.rotate(90, expand=True), (4, (top + bottom) // 2 - 60))
    for row, (name, colour) in enumerate((("not kept", _GREY), ("kept", _BLUE))):
        y = top + 8 + 18 * row
        draw.rectangle((right - 90, y, right - 78, y + 12), fill=colour)
        draw.text((right - 72, y + 6), name, fill=_INK, font=font, anchor="lm")
    image.save(path, format="PNG")
