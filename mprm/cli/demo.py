"""``mprm demo``: the whole pipeline end to end on CPU, with a tiny model (``make demo``).

1. ``mprm synth``: pictures, a noisy MC-annotated corpus and a benchmark; a third of the benchmark
   items is held out as the dev split that tunes the threshold (METHOD.md 7, 10.3).
2. ``mprm tiny --pretrain``: a tiny backbone that already reads the pictures (captions only, no
   step labels; cached under ``--cache``).
3. ``mprm select``: BIS-25% per source (run by train.py into ``OUT/train/selection``).
4. ``train.py``: the paper's recipe scaled down (METHOD.md 6): the ``yes_no`` head, the language
   model and projector trained, the vision tower frozen, one pass over the subset.
5. ``eval.py``: the same backbone before and after reward training, on the same benchmark.

It prints the paper-layout table for both, what the model learned (the training loss's first and
last values; the AUC of correct steps against the first wrong step of each solution, beside the
AUC over all steps), the plot's path and, last, ``demo: overall F1 <trained> (untrained <before>)``
with the dev-tuned threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_CACHE = Path(os.environ.get("MPRM_CACHE", Path.home() / ".cache" / "mprm"))
HEADLINE_KIND = "dev"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mprm.models.pretrain import PretrainSettings

    d = PretrainSettings()
    parser.add_argument("--output", default="runs/demo", help="run folder (default runs/demo)")
    parser.add_argument("--backbone", default="qwen2_5_vl", choices=("qwen2_5_vl", "internvl"))
    parser.add_argument("--sources", type=int, default=3, help="corpus source files (default 3)")
    parser.add_argument("--rollouts", type=int, default=5000, help="rollouts per source (default 5000)")
    parser.add_argument("--benchmark-items", type=int, default=300, help="benchmark items, 1/3 held out as dev (default 300)")
    parser.add_argument("--strategy", default="bis", help="selection strategy (default bis)")
    parser.add_argument("--fraction", type=float, default=0.25, help="kept fraction per source (default 0.25)")
    parser.add_argument("--head", default="yes_no", choices=("yes_no", "linear"),
                        help="reward head (default yes_no, the paper's: 'Yes'/'No' logits at each <prm>)")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the selected subset (default 1, as the paper)")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch size of reward training (default 16)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of reward training (default 1e-3)")
    parser.add_argument("--pretrain-steps", type=int, default=d.steps, help=f"caption pretraining steps (default {d.steps})")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help=f"where pretrained backbones are cached (default {DEFAULT_CACHE})")
    parser.add_argument("--seed", type=int, default=0)


def _stage(name: str) -> float:
    print(f"\n== {name}", file=sys.stderr, flush=True)
    return time.time()


def _row(label: str, metrics: dict[str, Any], kind: str) -> list[str]:
    from mprm.eval.tables import paper_columns, pct

    m = metrics["results"][kind]
    t = metrics["thresholds"][kind]
    cols = paper_columns(list(m["per_source"]))
    return [f"{label} ({kind} t={t:.3f})", pct(m["overall"])] + [
        pct(m["per_source"][src]["macro_f1"]) if src else "-" for _, src in cols]


def _table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    from mprm.eval.tables import paper_columns

    first = rows[0][1]["results"][HEADLINE_KIND]
    header = ["model", "Overall"] + [c for c, _ in paper_columns(list(first["per_source"]))]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, metrics in rows:
        for kind in ("fixed", HEADLINE_KIND, "oracle"):
            if metrics["results"].get(kind) is not None:
                lines.append("| " + " | ".join(_row(label, metrics, kind)) + " |")
    return "\n".join(lines)


def _learning(out: Path, before: Path, after: Path) -> list[str]:
    """Loss curve ends and first-error AUC: what reward training changed, from this run's files."""
    from mprm.eval.metrics import first_error_auc
    from mprm.eval.predictions import read_predictions

    rows = [json.loads(ln) for ln in (out / "train" / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    losses = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    lines = []
    if losses:
        lines.append(f"training loss: {losses[0][1]:.4f} at step {losses[0][0]} -> {losses[-1][1]:.4f} at step "
                     f"{losses[-1][0]} (mean cross-entropy per labelled step)")
    for label, folder in (("untrained", before), ("trained", after)):
        preds = read_predictions(folder / "predictions.jsonl")
        metrics = json.loads((folder / "metrics.json").read_text())
        auc_first = first_error_auc(preds)
        auc_all = metrics["results"]["fixed"]["auc"]
        lines.append(f"{label}: AUC correct vs first wrong step {_fmt(auc_first)}; vs every wrong step {_fmt(auc_all)}")
    return lines


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _plot(path: Path, metrics_jsonl: Path, before: dict[str, Any], after: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(ln) for ln in metrics_jsonl.read_text().splitlines() if ln.strip()]
    rows = [r for r in rows if "loss" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax1.set_xlabel("optimiser step")
    ax1.set_ylabel("training loss (mean CE per labelled step)")
    ax1.set_title("reward training")
    b, a = before["results"][HEADLINE_KIND], after["results"][HEADLINE_KIND]
    names = ["Overall"] + sorted(a["per_source"])
    xs = range(len(names))
    vb = [b["overall"]] + [b["per_source"].get(n, {}).get("macro_f1") or 0.0 for n in names[1:]]
    va = [a["overall"]] + [a["per_source"][n]["macro_f1"] or 0.0 for n in names[1:]]
    ax2.bar([x - 0.2 for x in xs], vb, width=0.4, label="before reward training")
    ax2.bar([x + 0.2 for x in xs], va, width=0.4, label="after")
    ax2.set_xticks(list(xs), [n.split("_")[0] for n in names], rotation=20)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel(f"macro-F1 ({HEADLINE_KIND}-tuned threshold)")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from mprm.config import ConfigError
    from mprm.experiments import evaluate, prepare_synth, train_overrides, train_reward_model
    from mprm.models import build_reward_model
    from mprm.models.pretrain import PretrainSettings, pretrain_tiny

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    t0 = _stage("1/5 synthetic data (mprm synth)")
    data, dev_file, test_file, n_dev, n_test = prepare_synth(
        out / "synth", sources=args.sources, rollouts=args.rollouts, benchmark_items=args.benchmark_items,
        seed=args.seed)
    print(f"corpus {args.sources} x {args.rollouts} rollouts; benchmark {n_test} test + {n_dev} dev items "
          f"({time.time() - t0:.0f} s)", file=sys.stderr)

    t0 = _stage("2/5 tiny backbone pretrained on captions (mprm tiny --pretrain)")
    settings = PretrainSettings(backbone=args.backbone, steps=args.pretrain_steps, seed=args.seed)
    cache = Path(args.cache) / f"pretrained-{args.backbone}-s{settings.steps}-seed{settings.seed}"
    backbone = pretrain_tiny(cache, settings)
    print(f"backbone ready ({time.time() - t0:.0f} s)", file=sys.stderr)

    t0 = _stage("3/5 evaluating the backbone before reward training (eval.py)")
    untrained = out / "untrained"
    build_reward_model(backbone, head=args.head).save_pretrained(untrained)  # a fresh <prm> on the backbone
    before = evaluate(untrained, test_file, data, out / "eval_untrained", dev_file)
    print(f"untrained overall F1 {before['results'][HEADLINE_KIND]['overall']:.4f} ({time.time() - t0:.0f} s)",
          file=sys.stderr)

    t0 = _stage(f"4/5 {args.strategy}-{args.fraction:g} selection and reward training (mprm select, train.py)")
    overrides = train_overrides(backbone_dir=backbone, backbone=args.backbone, data=data, output_dir=out / "train",
                                strategy=args.strategy, fraction=args.fraction, seed=args.seed,
                                batch_size=args.batch_size, lr=args.lr, epochs=args.epochs, head=args.head)
    try:
        summary = train_reward_model(overrides)
    except ConfigError as exc:
        print(f"mprm demo: {exc}", file=sys.stderr)
        return 2
    print(f"trained {summary.get('optimizer_steps')} optimiser steps ({time.time() - t0:.0f} s)", file=sys.stderr)

    t0 = _stage("5/5 evaluating the trained reward model (eval.py)")
    after = evaluate(out / "train" / "final", test_file, data, out / "eval", dev_file)

    table = _table([("untrained", before), (f"{args.strategy}-{args.fraction:g} trained", after)])
    plot = out / "demo.png"
    _plot(plot, out / "train" / "metrics.jsonl", before, after)
    print(f"\nVisualProcessBench-style macro-F1 (%) on {n_test} synthetic test items "
          f"(thresholds: fixed 0.5, tuned on {n_dev} held-out dev items, oracle = tuned on the test set itself):")
    print(table)
    learning = _learning(out, out / "eval_untrained", out / "eval")
    (out / "results.md").write_text(table + "\n\n" + "\n".join(f"- {ln}" for ln in learning) + "\n")
    print("\n".join(learning))
    print(f"plot: {plot}")
    print(f"total {time.time() - t_start:.0f} s; selection report {out / 'train' / 'selection' / 'report.md'}")
    trained_f1 = after["results"][HEADLINE_KIND]["overall"]
    before_f1 = before["results"][HEADLINE_KIND]["overall"]
    print(f"demo: overall F1 {trained_f1:.4f} (untrained {before_f1:.4f})")
    return 0
