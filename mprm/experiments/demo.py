"""The demo (``mprm demo``, ``make demo``): the whole pipeline end to end on CPU, with a tiny model.

1. ``mprm synth``: pictures, a noisy MC-annotated corpus and a benchmark; a third of the benchmark
   items is held out as the dev split that tunes the threshold (METHOD.md 7, 10.3).
2. ``mprm tiny --pretrain``: a tiny backbone that already reads the pictures (captions and correct
   solutions only, no step labels; cached under ``cache``).
3. ``eval.py`` on the backbone with a fresh ``<prm>`` head, before any reward training.
4. ``train.py``: BIS-25% per source (selected into the run folder), then the paper's recipe scaled
   down (METHOD.md 6): the ``yes_no`` head, the language model and projector trained, the vision
   tower frozen, one pass over the subset.
5. ``eval.py`` on the trained model, on the same benchmark.

:func:`run_demo` returns the table, what the model learned (the training loss's first and last
values; the AUC of correct steps against the first wrong step of each solution, beside the AUC
over all steps) and the headline: overall F1 with the dev-tuned threshold, before and after.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mprm.models.heads import DEFAULT_HEAD

DEFAULT_CACHE = Path(os.environ.get("MPRM_CACHE", Path.home() / ".cache" / "mprm"))
HEADLINE_KIND = "dev"


@dataclass(frozen=True)
class DemoSettings:
    """Everything ``mprm demo`` can change; the defaults are ``make demo``'s."""

    output: Path = Path("runs/demo")
    backbone: str = "qwen2_5_vl"
    sources: int = 3
    rollouts: int = 5000
    benchmark_items: int = 300
    strategy: str = "bis"
    fraction: float = 0.25
    head: str = DEFAULT_HEAD
    epochs: int = 1
    batch_size: int = 16
    lr: float = 1e-3
    pretrain_steps: int = 800
    cache: Path = DEFAULT_CACHE
    seed: int = 0


@dataclass
class DemoResult:
    table: str
    learning: list[str]
    plot: Path
    n_test: int
    n_dev: int
    trained_f1: float
    untrained_f1: float
    seconds: float


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


def _losses(metrics_jsonl: Path) -> list[tuple[int, float]]:
    """``(step, loss)`` of every logged optimiser step of the run."""
    rows = [json.loads(ln) for ln in metrics_jsonl.read_text().splitlines() if ln.strip()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def _learning(losses: list[tuple[int, float]], evaluated: list[tuple[str, dict[str, Any], Path]]) -> list[str]:
    """Loss curve ends and first-error AUC: what reward training changed. ``evaluated``: (label,
    metrics.json content, its folder with predictions.jsonl) before and after."""
    from mprm.eval.metrics import first_error_auc
    from mprm.eval.predictions import read_predictions

    lines = []
    if losses:
        lines.append(f"training loss: {losses[0][1]:.4f} at step {losses[0][0]} -> {losses[-1][1]:.4f} at step "
                     f"{losses[-1][0]} (mean cross-entropy per labelled step)")
    for label, metrics, folder in evaluated:
        auc_first = first_error_auc(read_predictions(folder / "predictions.jsonl"))
        auc_all = metrics["results"]["fixed"]["auc"]
        lines.append(f"{label}: AUC correct vs first wrong step {_fmt(auc_first)}; vs every wrong step {_fmt(auc_all)}")
    return lines


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _plot(path: Path, losses: list[tuple[int, float]], before: dict[str, Any], after: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot([step for step, _ in losses], [loss for _, loss in losses])
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


def run_demo(s: DemoSettings) -> DemoResult:
    """Run the five stages (progress on stderr); write results.md and demo.png into ``s.output``."""
    from mprm.experiments.pretrain import PretrainSettings, pretrain_tiny
    from mprm.experiments.synthetic import evaluate, prepare_synth, train_config, train_reward_model
    from mprm.models import build_reward_model

    out = Path(s.output)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    t0 = _stage("1/5 synthetic data (mprm synth)")
    data, dev_file, test_file, n_dev, n_test = prepare_synth(
        out / "synth", sources=s.sources, rollouts=s.rollouts, benchmark_items=s.benchmark_items, seed=s.seed)
    print(f"corpus {s.sources} x {s.rollouts} rollouts; benchmark {n_test} test + {n_dev} dev items "
          f"({time.time() - t0:.0f} s)", file=sys.stderr)

    t0 = _stage("2/5 tiny backbone pretrained on captions (mprm tiny --pretrain)")
    pre = PretrainSettings(backbone=s.backbone, steps=s.pretrain_steps, seed=s.seed)
    backbone = pretrain_tiny(Path(s.cache) / f"pretrained-{s.backbone}-s{pre.steps}-seed{pre.seed}", pre)
    print(f"backbone ready ({time.time() - t0:.0f} s)", file=sys.stderr)

    t0 = _stage("3/5 evaluating the backbone before reward training (eval.py)")
    untrained = out / "untrained"
    build_reward_model(backbone, head=s.head).save_pretrained(untrained)  # a fresh <prm> on the backbone
    before = evaluate(untrained, test_file, data, out / "eval_untrained", dev_file)
    print(f"untrained overall F1 {before['results'][HEADLINE_KIND]['overall']:.4f} ({time.time() - t0:.0f} s)",
          file=sys.stderr)

    t0 = _stage(f"4/5 {s.strategy}-{s.fraction:g} selection and reward training (mprm select, train.py)")
    cfg = train_config(backbone_dir=backbone, backbone=s.backbone, data=data, output_dir=out / "train",
                       strategy=s.strategy, fraction=s.fraction, seed=s.seed, batch_size=s.batch_size, lr=s.lr,
                       epochs=s.epochs, head=s.head)
    summary = train_reward_model(cfg)
    print(f"trained {summary.get('optimizer_steps')} optimiser steps ({time.time() - t0:.0f} s)", file=sys.stderr)

    _stage("5/5 evaluating the trained reward model (eval.py)")
    after = evaluate(out / "train" / "final", test_file, data, out / "eval", dev_file)

    table = _table([("untrained", before), (f"{s.strategy}-{s.fraction:g} trained", after)])
    losses = _losses(out / "train" / "metrics.jsonl")
    learning = _learning(losses, [("untrained", before, out / "eval_untrained"), ("trained", after, out / "eval")])
    (out / "results.md").write_text(table + "\n\n" + "\n".join(f"- {ln}" for ln in learning) + "\n")
    plot = out / "demo.png"
    _plot(plot, losses, before, after)
    return DemoResult(table=table, learning=learning, plot=plot, n_test=n_test, n_dev=n_dev,
                      trained_f1=after["results"][HEADLINE_KIND]["overall"],
                      untrained_f1=before["results"][HEADLINE_KIND]["overall"], seconds=time.time() - t_start)
