"""Command line of ``eval.py`` (also usable as an ``mprm`` subcommand: add_arguments / run).

Four modes, chosen by the flags given (docs/evaluation.md):

* ``--model DIR --benchmark FILE --image-root DIR``: score a benchmark and compute its metrics;
* ``--predictions FILE``: metrics from a predictions file only (no model, no torch import);
* ``--checkpoints RUN_DIR --benchmark FILE --image-root DIR``: every checkpoint of a run, a curve;
* ``--bon FILE --model DIR --image-root DIR``: Best-of-N reranking.

Modules that import torch are imported only in the modes that score with a model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_argument_group("mode (give exactly one of --benchmark, --predictions, --checkpoints, --bon)")
    mode.add_argument("--benchmark", type=Path, help="VisualProcessBench test.jsonl to score (needs --model)")
    mode.add_argument("--predictions", type=Path, help="predictions.jsonl: compute the metrics only, no model")
    mode.add_argument("--checkpoints", type=Path, metavar="RUN_DIR",
                      help="evaluate RUN_DIR/checkpoints/step-N/ and RUN_DIR/final on --benchmark")
    mode.add_argument("--bon", type=Path, help="Best-of-N file: rerank candidates (needs --model)")
    parser.add_argument("--model", type=Path, help="reward-model folder (what save_pretrained wrote)")
    parser.add_argument("--image-root", type=Path, help="folder the items' image paths are relative to")
    parser.add_argument("--output", type=Path, required=True, help="output folder")
    parser.add_argument("--batch-size", type=int, default=8, help="items per forward pass (default 8)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="fixed threshold: a step is predicted correct when score >= it (default 0.5)")
    parser.add_argument("--dev", type=Path,
                        help="held-out labelled file to choose the 'dev' threshold on: a predictions.jsonl, "
                             "or a benchmark file scored with --model")
    parser.add_argument("--resume", action="store_true",
                        help="continue a killed run: keep OUT/predictions.jsonl and score only missing items")
    parser.add_argument("--skip-missing-images", action="store_true",
                        help="leave out items whose image is missing (counted in the output) instead of failing")
    parser.add_argument("--max-length", type=int, default=None,
                        help="token limit per item, overriding the one saved with the model; a step cut "
                             "by the limit is an error (every step must be scored)")
    parser.add_argument("--aggregate", choices=("mean", "min", "last"), default="mean",
                        help="Best-of-N: how a candidate's step scores combine (default mean, METHOD.md 7)")


def _check(args: argparse.Namespace) -> str | None:
    """The error message for an inconsistent flag combination, or None."""
    modes = [m for m in ("benchmark", "predictions", "checkpoints", "bon") if getattr(args, m) is not None]
    if args.checkpoints is not None and args.benchmark is not None:
        modes.remove("benchmark")
    if len(modes) != 1:
        return "give exactly one of --benchmark (with --model), --predictions, --checkpoints, --bon"
    mode = modes[0]
    if args.max_length is not None and args.max_length < 1:
        return f"--max-length must be >= 1, got {args.max_length}"
    if args.batch_size < 1:
        return f"--batch-size must be >= 1, got {args.batch_size}"
    if mode in ("benchmark", "bon") and args.model is None:
        return f"--{mode} needs --model"
    if mode == "checkpoints" and args.benchmark is None:
        return "--checkpoints needs --benchmark"
    if mode != "predictions" and args.image_root is None:
        return f"--{mode} needs --image-root"
    if mode == "checkpoints" and args.model is not None:
        return "--checkpoints evaluates the models found in RUN_DIR: --model does not apply"
    if mode == "bon" and args.dev is not None:
        return "--dev chooses a step threshold; Best-of-N needs none"
    if mode == "predictions" and (args.model is not None or args.resume):
        return "--predictions computes metrics only: --model and --resume do not apply"
    if mode in ("predictions", "benchmark", "checkpoints") and not 0.0 <= args.threshold <= 1.0:
        return f"--threshold must lie in [0, 1], got {args.threshold}"
    return None


def _summary(metrics: dict) -> str:
    parts = []
    for kind in ("fixed", "dev", "oracle"):
        m = metrics["results"].get(kind)
        if m is not None and m["overall"] is not None:
            parts.append(f"{kind} (t={metrics['thresholds'][kind]:.4f}) {100 * m['overall']:.2f}")
    return "overall macro-F1: " + ", ".join(parts)


def run(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        print(f"eval: error: {problem}", file=sys.stderr)
        return 2
    out: Path = args.output
    if args.predictions is not None:
        from mprm.eval.pipeline import evaluate_predictions

        metrics = evaluate_predictions(args.predictions, out, threshold=args.threshold, dev=args.dev)
        print(_summary(metrics))
        print(f"wrote {out / 'metrics.json'} and {out / 'metrics.md'}")
        return 0
    if args.bon is not None:
        from mprm.eval.bon import evaluate_bon

        result = evaluate_bon(args.bon, args.model, args.image_root, out, aggregate=args.aggregate,
                              batch_size=args.batch_size, resume=args.resume,
                              skip_missing_images=args.skip_missing_images, max_length=args.max_length)
        if result is not None:
            o = result["overall"]
            print(f"Best-of-N ({result['aggregate']}): reranked {100 * o['reranked']:.2f}, first "
                  f"{100 * o['first']:.2f}, random {100 * o['random']:.2f}, oracle {100 * o['oracle']:.2f}")
            print(f"wrote {out / 'bon.json'} and {out / 'bon.md'}")
        return 0
    if args.checkpoints is not None:
        from mprm.eval.curves import evaluate_checkpoints

        summary = evaluate_checkpoints(args.checkpoints, args.benchmark, args.image_root, out,
                                       batch_size=args.batch_size, threshold=args.threshold, dev=args.dev,
                                       skip_missing_images=args.skip_missing_images, max_length=args.max_length)
        if summary is not None:
            for kind, b in summary["best"].items():
                print(f"best ({kind} threshold): {b['name']} (step {b['step']}) overall {100 * b['overall']:.2f}")
            f = summary["final"]
            print(f"final: {f['name']} (step {f['step']}) overall (fixed) "
                  f"{json.dumps(None if f['overall']['fixed'] is None else round(100 * f['overall']['fixed'], 2))}")
            print(f"wrote {out / 'curve.json'} and {out / 'curve.png'}")
        return 0
    from mprm.eval.pipeline import evaluate_model

    metrics = evaluate_model(args.model, args.benchmark, args.image_root, out, batch_size=args.batch_size,
                             threshold=args.threshold, dev=args.dev, resume=args.resume,
                             skip_missing_images=args.skip_missing_images, max_length=args.max_length)
    if metrics is not None:
        print(_summary(metrics))
        if "skipped" in metrics:
            print(f"skipped {metrics['skipped']['count']} item(s) with missing images")
        print(f"wrote {out / 'predictions.jsonl'}, {out / 'metrics.json'} and {out / 'metrics.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="eval.py",
        description="Evaluate a step reward model on VisualProcessBench (METHOD.md 7), a predictions "
                    "file, every checkpoint of a run, or Best-of-N reranking.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
