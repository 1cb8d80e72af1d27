"""``mprm report``: our runs against the paper's published numbers (METHOD.md 8; issue 6 item 3).

The report has, per backbone family, the paper's Table 2 layout (a row per setting, columns
Overall and the five sources, macro-F1 in percent), each cell reading ``ours (published,
ours - published)``; a compute table (optimiser steps, samples, tokens, wall-clock, device-hours
and the share of the Full run's steps and device-hours); the checkpoint-curve headline where
``curve.json`` exists (METHOD.md 10.7); the data-efficiency plot; and every incomplete run with
what it lacks. No torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mprm.eval.tables import PAPER_COLUMNS, SOURCE_TO_PAPER
from mprm.repro.grid import setting_for_key
from mprm.repro.published import BACKBONE_TITLES, COLUMNS, PUBLISHED, Published
from mprm.repro.runs import EVAL_METRICS, Run

THRESHOLD_KINDS: tuple[str, ...] = ("fixed", "dev", "oracle")
KIND_NOTES = {
    "fixed": "the fixed threshold given to eval.py, 0.5 by default",
    "dev": "threshold tuned on a held-out labelled file, eval.py --dev",
    "oracle": "threshold swept on VisualProcessBench itself as in the authors' code, optimistic",
}
_FAMILY_ORDER = ("internvl", "qwen2_5_vl")


def ours_percent(metrics: dict[str, Any] | None, kind: str) -> dict[str, float] | None:
    """Overall and per-column macro-F1 in percent for one threshold kind, or None if absent."""
    result = (metrics or {}).get("results", {}).get(kind)
    if result is None or result.get("overall") is None:
        return None
    values = {"Overall": 100.0 * float(result["overall"])}
    for source, m in (result.get("per_source") or {}).items():
        column = SOURCE_TO_PAPER.get(source, source)
        if column in PAPER_COLUMNS and m.get("macro_f1") is not None:
            values[column] = 100.0 * float(m["macro_f1"])
    return values


def cell(ours: float | None, pub: float | None) -> str:
    """``ours (published, diff)``; the difference is taken from the two printed (rounded) values."""
    text = "-" if ours is None else f"{ours:.2f}"
    if pub is None:
        return text
    if ours is None:
        return f"- ({pub:.2f})"
    diff = round(float(text) - pub, 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{text} ({pub:.2f}, {diff:+.2f})"


def _family_rank(family: str) -> tuple[int, str]:
    return (_FAMILY_ORDER.index(family) if family in _FAMILY_ORDER else len(_FAMILY_ORDER), family)


def result_rows(runs: list[Run], family: str, kind: str, *, only_runs: bool = False) -> list[dict[str, Any]]:
    """Table 2 rows for one family: every run with results, plus published-only rows unless ``only_runs``."""
    table = PUBLISHED.get(family, {})
    rows: list[tuple[tuple, dict[str, Any]]] = []
    seen: set[str] = set()
    for run in runs:
        if run.family != family or run.setting is None:
            continue
        ours = ours_percent(run.metrics, kind)
        if ours is None:
            continue
        key = run.setting.key
        seen.add(key)
        pub = table.get(key)
        rows.append(((run.setting.sort_key, run.name), _row(run.setting.title, key, run.name, ours, pub)))
    if not only_runs:
        for key, pub in table.items():
            if key in seen:
                continue
            setting = setting_for_key(key)
            order = (0,) if setting is None else setting.sort_key
            rows.append(((order, ""), _row("Base" if key == "base" else setting.title, key, None, None, pub)))
    rows.sort(key=lambda r: r[0])
    return [r for _, r in rows]


def _row(title: str, key: str, run: str | None, ours: dict[str, float] | None, pub: Published | None) -> dict:
    values = {c: (ours or {}).get(c) for c in COLUMNS}
    published = {c: (None if pub is None else pub.value(c)) for c in COLUMNS}
    return {
        "setting": key, "title": title, "run": run, "ours": values, "published": published,
        "cells": [cell(values[c], published[c]) for c in COLUMNS],
    }


def run_compute(run: Run) -> dict[str, Any] | None:
    """Optimiser steps, samples, tokens, wall-clock and device-hours of one run.

    From train.py's ``run_summary.json`` (``optimizer_steps``, ``samples``, ``tokens``, ``wall_s``
    summed over resumed sessions, ``device_type``, ``device_count``, ``num_processes``). GPU-hours =
    wall-clock x GPU count; a CPU run reports wall-clock x processes as CPU-process-hours, labelled.
    Without a summary (a run still training or killed), from ``metrics.jsonl``: no device-hours.
    """
    s = run.summary
    if s is not None:
        wall = float(s["wall_s"])
        device = str(s["device_type"])
        if device == "cuda":
            count, unit, devices = int(s["device_count"]), "GPU-h", f"{int(s['device_count'])} x GPU"
        else:
            count = int(s.get("num_processes") or s.get("world_size") or 1)
            unit, devices = f"{device.upper()}-process-h", f"{count} x {device} process"
        return {
            "steps": int(s["optimizer_steps"]), "samples": int(s["samples"]), "tokens": int(s["tokens"]),
            "wall_h": wall / 3600.0, "device_hours": wall / 3600.0 * count, "unit": unit,
            "devices": devices, "source": "run_summary.json",
        }
    p = run.progress
    if p is None:
        return None
    return {"steps": p["step"], "samples": p["samples"], "tokens": p["tokens"], "wall_h": p["wall_s"] / 3600.0,
            "device_hours": None, "unit": None, "devices": None, "source": "metrics.jsonl"}


def full_reference(runs: list[Run], family: str) -> Run | None:
    """The family's Full run with hard tau=0 labels (the paper's reference), first by name."""
    for run in runs:
        if run.family == family and run.setting is not None and run.setting.key == "full_hard0":
            if run.summary is not None or run.progress is not None:
                return run
    return None


def compute_rows(runs: list[Run], family: str) -> list[dict[str, Any]]:
    """Per-run compute with the share of Full's optimiser steps and device-hours (the saving)."""
    ref = full_reference(runs, family)
    ref_c = run_compute(ref) if ref is not None else None
    rows = []
    for run in sorted((r for r in runs if r.family == family and r.setting is not None),
                      key=lambda r: (r.setting.sort_key, r.name)):
        c = run_compute(run)
        if c is None:
            continue
        steps_share = hours_share = None
        if ref_c is not None and ref_c["steps"] > 0:
            steps_share = c["steps"] / ref_c["steps"]
        if (ref_c is not None and c["device_hours"] is not None and ref_c["device_hours"]
                and c["unit"] == ref_c["unit"]):
            hours_share = c["device_hours"] / ref_c["device_hours"]
        rows.append({"run": run.name, "title": run.setting.title, **c,
                     "steps_vs_full": steps_share, "hours_vs_full": hours_share})
    return rows


def _curve_points(curve: Any, kind: str) -> tuple[list[tuple[int, float]], tuple[int, float] | None]:
    """(step, overall %) of every checkpoint with a step, sorted, and the final point (eval.py's curve.json)."""
    def value(p: dict[str, Any]) -> float | None:
        overall = p.get("overall")
        v = overall.get(kind) if isinstance(overall, dict) else overall
        return None if v is None or p.get("step") is None else 100.0 * float(v)

    points = curve.get("points", []) if isinstance(curve, dict) else (curve or [])
    out = sorted((int(p["step"]), value(p)) for p in points if value(p) is not None)
    final = curve.get("final") if isinstance(curve, dict) else None
    if isinstance(final, dict) and value(final) is not None:
        return out, (int(final["step"]), value(final))
    return out, (out[-1] if out else None)


def curve_rows(runs: list[Run], family: str, kind: str) -> list[dict[str, Any]]:
    """Best vs final checkpoint (METHOD.md 10.7) and the first checkpoint reaching Full's final level.

    Uses the curve of the chosen threshold kind; for ``dev`` when the curve has no dev values (no
    ``--dev`` file was given), the fixed one, labelled. Full's level is the Full (hard tau=0) run's
    final-model overall under the same kind; "steps saved" = 1 - that checkpoint's step / Full's steps.
    """
    ref = full_reference(runs, family)
    ref_c = run_compute(ref) if ref is not None else None
    ref_steps = None if ref_c is None else ref_c["steps"]
    rows = []
    for run in sorted((r for r in runs if r.family == family and r.curve is not None), key=lambda r: r.name):
        curve_kind = kind
        points, final = _curve_points(run.curve, kind)
        if not points and kind == "dev":
            curve_kind = "fixed"
            points, final = _curve_points(run.curve, "fixed")
        if not points or final is None:
            continue
        best = max(points, key=lambda p: (p[1], -p[0]))
        ref_level = None if ref is None else (ours_percent(ref.metrics, curve_kind) or {}).get("Overall")
        reach = None
        if ref_level is not None:
            reach = next((step for step, v in points if v >= ref_level), None)
        saved = None if reach is None or not ref_steps else 1.0 - reach / ref_steps
        rows.append({"run": run.name, "kind": curve_kind, "final_step": final[0], "final": final[1],
                     "best_step": best[0], "best": best[1], "full_level": ref_level,
                     "reach_step": reach, "steps_saved_vs_full": saved})
    return rows


def incomplete(runs: list[Run], kind: str) -> list[dict[str, Any]]:
    """Every run with a missing piece, and what is missing (never silently dropped)."""
    out = []
    for run in runs:
        problems = list(run.problems)
        if run.metrics is not None and run.metrics.get("results", {}).get(kind) is None:
            problems.append(f"{EVAL_METRICS} has no {kind!r} result")
        if problems:
            out.append({"run": run.name, "problems": problems})
    return out


def build_report(runs: list[Run], runs_dir: str | Path, *, threshold_kind: str = "oracle",
                 only_runs: bool = False) -> dict[str, Any]:
    """The report as data (report.json; rendered by :func:`mprm.repro.render.render_markdown`).

    ``runs`` comes from :func:`mprm.repro.runs.load_runs`; ``only_runs`` drops published rows that
    have no run of ours.
    """
    if threshold_kind not in THRESHOLD_KINDS:
        raise ValueError(f"--threshold-kind {threshold_kind!r}: choose from {', '.join(THRESHOLD_KINDS)}")
    families = {r.family for r in runs if r.family is not None}
    if not only_runs:
        families |= set(PUBLISHED)
    report: dict[str, Any] = {"runs_dir": str(runs_dir), "threshold_kind": threshold_kind,
                              "columns": list(COLUMNS), "families": []}
    for family in sorted(families, key=_family_rank):
        report["families"].append({
            "family": family,
            "title": BACKBONE_TITLES.get(family, family),
            "model_paths": sorted({r.model_path for r in runs if r.family == family and r.model_path}),
            "rows": result_rows(runs, family, threshold_kind, only_runs=only_runs),
            "compute": compute_rows(runs, family),
            "curves": curve_rows(runs, family, threshold_kind),
        })
    report["incomplete"] = incomplete(runs, threshold_kind)
    report["n_runs"] = len(runs)
    return report
