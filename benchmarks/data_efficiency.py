"""CPU-scale data-efficiency study (issue 6): Random vs BIS at several fractions, and Full.

    python benchmarks/data_efficiency.py --output runs/data_efficiency            # 3 seeds, about 15-25 min
    python benchmarks/data_efficiency.py --output /tmp/de --seeds 1 --rollouts 300  # a quick look

For every seed the synthetic corpus is generated anew (``mprm synth`` with that seed and the default
noise of docs/synthetic_data.md: false negatives on hard items, low-MC pseudo-positives after a
wrong step, unannotated tails), then each setting is selected, trained and evaluated with the real
entry points' code (``mprm select`` inside ``train.py``, ``eval.py``), starting from one shared
caption-pretrained tiny backbone (``mprm tiny --pretrain``). Nothing here is tuned towards either
answer: the generator's defaults were set from the real corpus's statistics (METHOD.md 1) before
this study was run.

Writes OUT/results.json (every run), OUT/results.md (mean and spread per setting) and
OUT/data_efficiency.png (overall F1 against fraction; Full as a band).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--sources", type=int, default=3)
    p.add_argument("--rollouts", type=int, default=2000, help="rollouts per source (default 2000)")
    p.add_argument("--benchmark-items", type=int, default=300)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.10, 0.25])
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--pretrain-steps", type=int, default=800)
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "mprm"))
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    return p.parse_args(argv)


def subset_noise(selection_dir: Path) -> dict[str, float]:
    """Label noise of a selected subset, measured against the generator's true step correctness."""
    pos_wrong = wrong = neg_right = right = 0
    with (selection_dir / "selected.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            truth = row["extra"]["synth_step_correct"]
            for label, ok in zip(row["labels"], truth):
                if ok:
                    right += 1
                    neg_right += label == 0
                else:
                    wrong += 1
                    pos_wrong += label == 1
    return {"pseudo_positive_rate": pos_wrong / max(wrong, 1), "false_negative_rate": neg_right / max(right, 1),
            "true_error_share": wrong / max(wrong + right, 1)}


def summarise(runs: list[dict]) -> dict[str, dict]:
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(r["setting"], []).append(r)
    out = {}
    for name, rs in by.items():
        row = {"fraction": rs[0]["fraction"], "strategy": rs[0]["strategy"], "n": len(rs)}
        for key in ("dev", "oracle", "fixed"):
            vals = [r["overall"][key] for r in rs]
            row[key] = {"mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0}
        row["steps"] = statistics.fmean(r["optimizer_steps"] for r in rs)
        row["pseudo_positive_rate"] = statistics.fmean(r["noise"]["pseudo_positive_rate"] for r in rs)
        out[name] = row
    return out


def render(summary: dict[str, dict], args: argparse.Namespace) -> str:
    lines = [f"Overall macro-F1 (%) on the synthetic benchmark, mean ± sd over {args.seeds} seeds "
             f"({args.sources} sources x {args.rollouts} rollouts; alpha {args.alpha}).", "",
             "| setting | optimiser steps | dev-tuned t | oracle t | fixed 0.5 | pseudo-positive rate of the subset |",
             "|---|---|---|---|---|---|"]
    order = sorted(summary, key=lambda k: (summary[k]["fraction"], summary[k]["strategy"]))
    for k in order:
        r = summary[k]
        cells = [f"{100 * r[t]['mean']:.2f} ± {100 * r[t]['sd']:.2f}" for t in ("dev", "oracle", "fixed")]
        lines.append(f"| {k} | {r['steps']:.0f} | " + " | ".join(cells) + f" | {100 * r['pseudo_positive_rate']:.1f}% |")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, colour in (("bis", "tab:blue"), ("random", "tab:orange")):
        rows = sorted((r for r in summary.values() if r["strategy"] == strategy), key=lambda r: r["fraction"])
        ax.errorbar([100 * r["fraction"] for r in rows], [100 * r["dev"]["mean"] for r in rows],
                    yerr=[100 * r["dev"]["sd"] for r in rows], marker="o", capsize=3, color=colour,
                    label=strategy.upper() if strategy == "bis" else "Random")
    full = next((r for r in summary.values() if r["strategy"] == "full"), None)
    if full is not None:
        m, s = 100 * full["dev"]["mean"], 100 * full["dev"]["sd"]
        ax.axhline(m, color="black", linestyle="--", label="Full")
        ax.axhspan(m - s, m + s, color="black", alpha=0.1)
    ax.set_xlabel("kept fraction per source (%)")
    ax.set_ylabel("overall macro-F1 (%), dev-tuned threshold")
    ax.set_title("CPU-scale data efficiency (synthetic)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from mprm.experiments.synthetic import evaluate, prepare_synth, train_config, train_reward_model
    from mprm.experiments.pretrain import PretrainSettings, pretrain_tiny

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    settings = PretrainSettings(steps=args.pretrain_steps)
    backbone = pretrain_tiny(Path(args.cache) / f"pretrained-{settings.backbone}-s{settings.steps}-seed0", settings)
    plan = [("full", 1.0)] + [(s, f) for f in args.fractions for s in ("random", "bis")]
    results_path = out / "results.json"
    runs = json.loads(results_path.read_text())["runs"] if results_path.is_file() else []
    done = {(r["seed"], r["setting"]) for r in runs}
    t0 = time.time()
    for seed in range(args.seeds):
        data, dev, test, _, _ = prepare_synth(out / f"seed{seed}" / "synth", sources=args.sources,
                                              rollouts=args.rollouts, benchmark_items=args.benchmark_items, seed=seed)
        for strategy, fraction in plan:
            name = "full" if strategy == "full" else f"{strategy}-{round(100 * fraction)}%"
            if (seed, name) in done:
                continue
            run_dir = out / f"seed{seed}" / name.replace("%", "")
            summary = train_reward_model(train_config(
                backbone_dir=backbone, backbone=settings.backbone, data=data, output_dir=run_dir,
                strategy=strategy, fraction=fraction, alpha=args.alpha, seed=seed, batch_size=args.batch_size,
                lr=args.lr))
            metrics = evaluate(run_dir / "final", test, data, run_dir / "eval" / "final", dev)
            runs.append({"seed": seed, "setting": name, "strategy": strategy, "fraction": fraction,
                         "optimizer_steps": summary.get("optimizer_steps"),
                         "overall": {k: metrics["results"][k]["overall"] for k in ("fixed", "dev", "oracle")},
                         "noise": subset_noise(run_dir / "selection")})
            results_path.write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2) + "\n")
            print(f"[{time.time() - t0:.0f} s] seed {seed} {name}: overall F1 (dev t) "
                  f"{runs[-1]['overall']['dev']:.4f}", file=sys.stderr, flush=True)
    summary = summarise(runs)
    table = render(summary, args)
    (out / "results.md").write_text(table)
    results_path.write_text(json.dumps({"args": vars(args), "runs": runs, "summary": summary}, indent=2) + "\n")
    plot(summary, out / "data_efficiency.png")
    print(table)
    print(f"plot: {out / 'data_efficiency.png'} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
