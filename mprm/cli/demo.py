"""``mprm demo``: the whole pipeline end to end on CPU with a tiny model (``make demo``).

Parses the options and calls :func:`mprm.experiments.demo.run_demo` (the stages are described
there and in docs/demo.md). Prints the paper-layout table before and after reward training, what
the model learned, the plot's path and, last, ``demo: overall F1 <trained> (untrained <before>)``
with the dev-tuned threshold.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mprm.experiments.demo import DEFAULT_CACHE, DemoSettings
from mprm.experiments.pretrain import PRETRAIN_BACKBONES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mprm.models.heads import head_names

    d = DemoSettings()
    parser.add_argument("--output", default=str(d.output), help=f"run folder (default {d.output})")
    parser.add_argument("--backbone", default=d.backbone, choices=PRETRAIN_BACKBONES,
                        help="backbone family of the tiny pretrained model (default qwen2_5_vl)")
    parser.add_argument("--sources", type=int, default=d.sources, help=f"corpus source files (default {d.sources})")
    parser.add_argument("--rollouts", type=int, default=d.rollouts, help=f"rollouts per source (default {d.rollouts})")
    parser.add_argument("--benchmark-items", type=int, default=d.benchmark_items,
                        help=f"benchmark items, 1/3 held out as dev (default {d.benchmark_items})")
    parser.add_argument("--strategy", default=d.strategy, help=f"selection strategy (default {d.strategy})")
    parser.add_argument("--fraction", type=float, default=d.fraction, help=f"kept fraction per source (default {d.fraction})")
    parser.add_argument("--head", default=d.head, choices=head_names(),
                        help="reward head (default yes_no, the paper's: 'Yes'/'No' logits at each <prm>)")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="passes over the selected subset (default 1, as the paper)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"global batch size (default {d.batch_size})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate of reward training (default {d.lr:g})")
    parser.add_argument("--pretrain-steps", type=int, default=d.pretrain_steps,
                        help=f"caption pretraining steps (default {d.pretrain_steps})")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE),
                        help=f"where pretrained backbones are cached (default {DEFAULT_CACHE}, or $MPRM_CACHE)")
    parser.add_argument("--seed", type=int, default=d.seed)


def run(args: argparse.Namespace) -> int:
    from mprm.experiments.demo import run_demo

    settings = DemoSettings(
        output=Path(args.output), backbone=args.backbone, sources=args.sources, rollouts=args.rollouts,
        benchmark_items=args.benchmark_items, strategy=args.strategy, fraction=args.fraction, head=args.head,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, pretrain_steps=args.pretrain_steps,
        cache=Path(args.cache), seed=args.seed)
    r = run_demo(settings)
    print(f"\nVisualProcessBench-style macro-F1 (%) on {r.n_test} synthetic test items "
          f"(thresholds: fixed 0.5, tuned on {r.n_dev} held-out dev items, oracle = tuned on the test set itself):")
    print(r.table)
    print("\n".join(r.learning))
    print(f"plot: {r.plot}")
    print(f"total {r.seconds:.0f} s; selection report {settings.output / 'train' / 'selection' / 'report.md'}")
    print(f"demo: overall F1 {r.trained_f1:.4f} (untrained {r.untrained_f1:.4f})")
    return 0
