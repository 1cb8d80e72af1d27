"""The data-efficiency figure: overall F1 against kept fraction (METHOD.md 8; issue 6 item 3).

One panel per backbone family: BIS and Random (our runs, solid; several runs of one fraction, e.g.
seeds, are averaged and drawn as points too), the paper's curves dashed, Full (hard tau=0) as a
horizontal line. BIS points use the grid's alpha for each fraction (mprm.repro.settings.main_alpha),
so the alpha ablation does not mix into the curve. matplotlib is imported lazily with Agg.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mprm.files import atomic_target
from mprm.repro.grid import setting_for_key
from mprm.repro.published import PUBLISHED
from mprm.repro.report import ours_percent
from mprm.repro.runs import Run
from mprm.repro.settings import main_alpha


def curve_points(runs: list[Run], family: str, strategy: str, kind: str) -> dict[float, list[float]]:
    """fraction (%) -> overall F1 (%) of every hard-tau=0 run of ``strategy`` in ``family``."""
    out: dict[float, list[float]] = {}
    for run in runs:
        s = run.setting
        if run.family != family or s is None or s.strategy != strategy or s.label_kind != "hard0":
            continue
        if strategy == "bis" and not math.isclose(s.alpha, main_alpha(s.fraction)):
            continue
        ours = ours_percent(run.metrics, kind)
        if ours is not None:
            out.setdefault(round(100 * s.fraction, 6), []).append(ours["Overall"])
    return dict(sorted(out.items()))


def _published_points(family: str, strategy: str) -> tuple[list[float], list[float]]:
    points = []
    for key, pub in PUBLISHED.get(family, {}).items():
        s = setting_for_key(key)
        if s is None or s.strategy != strategy or s.label_kind != "hard0":
            continue
        if strategy == "bis" and not math.isclose(s.alpha, main_alpha(s.fraction)):
            continue
        points.append((round(100 * s.fraction, 6), pub.overall))
    points.sort()
    return [x for x, _ in points], [y for _, y in points]


def plot_data_efficiency(runs: list[Run], families: list[dict[str, Any]], kind: str, path: Path) -> Path:
    """Write the figure to ``path`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = [f["family"] for f in families] or ["(none)"]
    fig, axes = plt.subplots(1, len(fams), figsize=(5.5 * len(fams), 4.2), squeeze=False)
    colours = {"bis": "tab:blue", "random": "tab:orange", "full": "tab:green"}
    for ax, fam, info in zip(axes[0], fams, families or [{"title": "no runs"}]):
        for strategy, name in (("bis", "BIS"), ("random", "Random")):
            pts = curve_points(runs, fam, strategy, kind)
            if pts:
                xs = list(pts)
                means = [sum(v) / len(v) for v in pts.values()]
                ax.plot(xs, means, "-o", color=colours[strategy], label=f"{name} (ours)")
                for x, vs in pts.items():
                    if len(vs) > 1:
                        ax.scatter([x] * len(vs), vs, s=10, color=colours[strategy], alpha=0.5)
            pxs, pys = _published_points(fam, strategy)
            if pxs:
                ax.plot(pxs, pys, "--", color=colours[strategy], alpha=0.6, label=f"{name} (paper)")
        full = [ours_percent(r.metrics, kind) for r in runs
                if r.family == fam and r.setting is not None and r.setting.key == "full_hard0"]
        full = [f["Overall"] for f in full if f is not None]
        if full:
            ax.axhline(sum(full) / len(full), color=colours["full"], label="Full (ours)")
        pub_full = PUBLISHED.get(fam, {}).get("full_hard0")
        if pub_full is not None:
            ax.axhline(pub_full.overall, color=colours["full"], linestyle="--", alpha=0.6, label="Full (paper)")
        ax.set_title(info.get("title", fam))
        ax.set_xlabel("kept fraction (%)")
        ax.set_ylabel(f"overall macro-F1 (%, {kind} threshold)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
