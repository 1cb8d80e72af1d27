"""Markdown tables in the paper's layout (METHOD.md 7 and 8), no torch.

VisualProcessBench's ``data_source`` values are mapped to the paper's column names; sources the
paper does not have are listed after its five columns, in order of first appearance.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

PAPER_COLUMNS: tuple[str, ...] = ("MathVision", "MathVerse", "MMMU", "DynaMath", "WeMath")

# real data_source -> paper column
SOURCE_TO_PAPER: dict[str, str] = {
    "MathVision_MINI": "MathVision",
    "MathVerse_MINI_Vision_Only": "MathVerse",
    "MMMU_DEV_VAL": "MMMU",
    "DynaMath": "DynaMath",
    "WeMath": "WeMath",
}

KINDS: tuple[str, ...] = ("fixed", "dev", "oracle")


def paper_columns(sources: Sequence[str]) -> list[tuple[str, str | None]]:
    """(column title, source name or None) in the paper's order, then the other sources.

    A source already named like the paper's column (``MathVision``) maps to it too.
    """
    by_column: dict[str, str] = {}
    others: list[str] = []
    for s in sources:
        col = SOURCE_TO_PAPER.get(s, s if s in PAPER_COLUMNS else None)
        if col is not None and col not in by_column:
            by_column[col] = s
        else:
            others.append(s)
    return [(c, by_column.get(c)) for c in PAPER_COLUMNS] + [(s, s) for s in others]


def pct(x: float | None) -> str:
    """A fraction as a percentage with 2 decimals; ``-`` when undefined."""
    return "-" if x is None else f"{100.0 * x:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_metrics_md(metrics: Mapping[str, Any], *, title: str = "VisualProcessBench") -> str:
    """``metrics.md``: macro-F1 (%) per threshold kind in the paper's columns, then the extras.

    One row per threshold kind present (``dev`` is left out when no dev file was given); the oracle
    row is labelled "oracle" because its threshold was chosen on the test set itself. A zero-shot
    model (a base checkpoint, no reward training) has every row labelled "zero-shot". Steps cut by
    the token limit, left out of the metrics, are counted under the tables.
    """
    model = metrics.get("model") or {}
    zero_shot = bool(model.get("zero_shot"))
    kinds = [k for k in KINDS if metrics["results"].get(k) is not None]
    sources: list[str] = []
    for k in kinds:
        sources += [s for s in metrics["results"][k]["per_source"] if s not in sources]
    cols = paper_columns(sources)
    main_rows, extra_rows = [], []
    for k in kinds:
        m, t = metrics["results"][k], metrics["thresholds"][k]
        label = f"{k}, zero-shot" if zero_shot else k
        cells = [label, f"{t:.4f}", pct(m["overall"])]
        for _, src in cols:
            cells.append(pct(m["per_source"][src]["macro_f1"]) if src in m["per_source"] else "-")
        main_rows.append(cells)
        extra_rows.append(
            [label, pct(m["macro_f1_pooled"]), pct(m["f1_positive"]), pct(m["f1_negative"]),
             pct(m["auc"]), str(m["n_steps"])]
        )
    parts = [f"# {title}: step macro-F1 (%)", ""]
    if model:
        kind = (f"zero-shot: a base checkpoint with a fresh `<prm>` head ({model.get('head')}), no reward training"
                if zero_shot else "a saved reward model")
        parts += [f"Model: `{model['name']}` ({kind}).", ""]
    parts += [
        _table(["Threshold", "t", "Overall"] + [c for c, _ in cols], main_rows),
        "",
        "Overall = per-source macro-F1 weighted by non-neutral steps. fixed: the given threshold; "
        "dev: chosen on a separate labelled file; oracle: chosen on this benchmark itself "
        "(optimistic, as in the authors' code).",
        "",
        "## Pooled over all non-neutral steps (%)",
        "",
        _table(["Threshold", "macro-F1", "F1 correct", "F1 incorrect", "ROC-AUC", "steps"], extra_rows),
        "",
    ]
    cut = metrics.get("cut")
    if cut is not None:
        dev_cut = cut.get("dev")
        text = (f"Steps cut by the token limit, left out of the metrics: {cut['count']} "
                f"(in {len(cut['items'])} item(s))")
        if dev_cut is not None:
            text += f"; dev file: {dev_cut['count']} (in {len(dev_cut['items'])} item(s))"
        parts += [text + ".", ""]
    skipped = metrics.get("skipped")
    if skipped:
        parts += [f"Skipped for missing images: {skipped['count']} item(s).", ""]
    return "\n".join(parts)


def render_bon_md(result: Mapping[str, Any]) -> str:
    """``bon.md``: Best-of-N accuracy (%) per source next to first, random and oracle picks."""
    header = ["Source", "items", f"reranked ({result['aggregate']})", "first", "random", "oracle"]
    rows = []
    for name, r in list(result["per_source"].items()) + [("Overall", result["overall"])]:
        rows.append([name, str(r["n_items"]), pct(r["reranked"]), pct(r["first"]), pct(r["random"]),
                     pct(r["oracle"])])
    return "\n".join([
        "# Best-of-N accuracy (%)",
        "",
        _table(header, rows),
        "",
        "reranked: the candidate with the highest aggregate step score; first: the first candidate; "
        "random: expected accuracy of a uniform pick (mean correctness); oracle: any candidate correct.",
        "",
    ])
