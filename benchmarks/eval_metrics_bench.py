"""Oracle threshold sweep: vectorised (mprm.eval.thresholds.sweep) vs a per-threshold loop.

A VisualProcessBench-sized synthetic benchmark (2,866 items, ~27K steps, 5 sources, ~10% neutral)
with float scores, so every step is a distinct candidate threshold. The loop recomputes the
per-source confusion counts with boolean masks at every threshold, the straightforward way; by
default it runs on a sample of thresholds and its full time is extrapolated (``--full`` runs all).

    .venv/bin/python benchmarks/eval_metrics_bench.py [--full] [--loop-thresholds 2000]

Figures are recorded in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mprm.eval.metrics import class_f1, step_data_from_rows
from mprm.eval.thresholds import sweep

SOURCES = ("MathVision_MINI", "MathVerse_MINI_Vision_Only", "MMMU_DEV_VAL", "DynaMath", "WeMath")


def synthetic_rows(n_items: int = 2866, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_items):
        n = int(rng.integers(4, 16))
        labels = rng.choice([1, 0, -1], size=n, p=[0.62, 0.28, 0.10])
        scores = np.clip(0.5 + 0.2 * (labels == 1) - 0.1 * (labels == 0) + rng.normal(0, 0.2, n), 0, 1)
        rows.append({"id": str(i), "data_source": SOURCES[i % 5], "labels": labels.tolist(),
                     "scores": scores.tolist()})
    return rows


def loop_overall(scores: np.ndarray, labels: np.ndarray, source: np.ndarray, n_src: int, t: float) -> float:
    num = den = 0.0
    for s in range(n_src):
        mine = source == s
        pred = scores[mine] >= t
        y = labels[mine]
        tp, fp = np.sum(pred & y), np.sum(pred & ~y)
        fn, tn = np.sum(~pred & y), np.sum(~pred & ~y)
        n = tp + fp + fn + tn
        macro = 0.5 * (class_f1(tp, fp, fn) + class_f1(tn, fn, fp))
        num += n * float(macro)
        den += n
    return num / den


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="run the loop over every threshold")
    ap.add_argument("--loop-thresholds", type=int, default=2000, help="thresholds the loop samples")
    args = ap.parse_args()

    rows = synthetic_rows()
    t0 = time.perf_counter()
    data = step_data_from_rows(rows)
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    sw = sweep(data)
    t_sweep = time.perf_counter() - t0
    k = sw.thresholds.size
    print(f"steps (non-neutral) {data.n_steps}, candidate thresholds {k}")
    print(f"flatten rows        {t_read:8.3f} s")
    print(f"vectorised sweep    {t_sweep:8.3f} s  (best overall {sw.best()[1]:.4f} at t={sw.best()[0]:.4f})")

    idx = np.arange(k) if args.full else np.linspace(0, k - 1, min(args.loop_thresholds, k)).astype(int)
    t0 = time.perf_counter()
    looped = [loop_overall(data.scores, data.labels, data.source, len(data.sources), sw.thresholds[i]) for i in idx]
    t_loop = time.perf_counter() - t0
    assert np.allclose(looped, sw.overall[idx], atol=1e-12), "loop and sweep disagree"
    full = t_loop * k / idx.size
    label = "per-threshold loop " if args.full else f"loop ({idx.size} thr)  "
    print(f"{label}  {t_loop:8.3f} s  -> all {k} thresholds: {full:.1f} s ({full / t_sweep:.0f}x slower)")


if __name__ == "__main__":
    main()
