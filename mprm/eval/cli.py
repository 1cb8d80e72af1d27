"""Command line of ``eval.py`` and ``mprm eval``: parse, build the settings once, call the library.

Four modes, chosen by the flags given (docs/evaluation.md):

* ``--model M --benchmark FILE --image-root DIR``: score a benchmark and compute its metrics;
* ``--predictions FILE``: metrics from a predictions file only (no model, no torch import);
* ``--checkpoints RUN_DIR --benchmark FILE --image-root DIR``: every checkpoint of a run, a curve;
* ``--bon FILE --model M --image-root DIR``: Best-of-N reranking.

Every user error ends as exit code 2 and one line ``PROG: error: FILE[:LINE]: what: how to fix``
(:func:`mprm.errors.run_entry`); ``--debug`` or ``MPRM_DEBUG=1`` shows the traceback instead.
Modules that import torch are imported only in the modes that score with a model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mprm.config import PROMPT_STYLES
from mprm.errors import UserError, run_entry
from mprm.eval.aggregate import AGGREGATES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_argument_group("mode (give exactly one of --benchmark, --predictions, --checkpoints, --bon)")
    mode.add_argument("--benchmark", type=Path, help="VisualProcessBench test.jsonl to score (needs --model)")
    mode.add_argument("--predictions", type=Path, help="predictions.jsonl: compute the metrics only, no model")
    mode.add_argument("--checkpoints", type=Path, metavar="RUN_DIR",
                      help="evaluate RUN_DIR/checkpoints/step-N/ and RUN_DIR/final on --benchmark")
    mode.add_argument("--bon", type=Path, help="Best-of-N file: rerank candidates (needs --model)")
    parser.add_argument("--model", metavar="MODEL",
                        help="a saved reward model folder (mprm_config.json), or a base checkpoint folder or hub "
                             "id, evaluated zero-shot (a fresh <prm> head, no reward training)")
    parser.add_argument("--backbone", default=None,
                        help="zero-shot only: backbone family of a base checkpoint (default: from its config.json)")
    parser.add_argument("--head", default=None, help="zero-shot only: step head (default yes_no, the paper's)")
    parser.add_argument("--image-root", type=Path, help="folder the items' image paths are relative to")
    parser.add_argument("--output", type=Path, required=True, help="output folder")
    parser.add_argument("--batch-size", type=int, default=8, help="items per forward pass (default 8)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="fixed threshold: a step is predicted correct when score >= it (default 0.5)")
    parser.add_argument("--dev", type=Path,
                        help="held-out labelled file to choose the 'dev' threshold on: a predictions.jsonl, "
                             "or a benchmark file scored with --model")
    parser.add_argument("--resume", action="store_true",
                        help="continue a killed run: keep the rows already in OUT and score only missing items")
    parser.add_argument("--skip-missing-images", action="store_true",
                        help="leave out items whose image is missing (counted in the output) instead of failing")
    parser.add_argument("--max-length", type=int, default=None,
                        help="token limit per item, overriding the one saved with the model")
    parser.add_argument("--strict-length", action="store_true",
                        help="a step cut by the token limit is an error (default: left out of the metrics, counted "
                             "in metrics.json and metrics.md, with a warning)")
    parser.add_argument("--device", default=None,
                        help="device to score on, e.g. cpu or cuda:1 (default: this process's device)")
    parser.add_argument("--prompt-style", choices=PROMPT_STYLES, default=None,
                        help="input layout: train (the layout the model was trained on; the default) or authors_eval "
                             "(the authors' VisualProcessBench script: steps joined by <prm> alone, <imageN> tags "
                             "removed; to reproduce their numbers)")
    parser.add_argument("--aggregate", choices=tuple(AGGREGATES), default="mean",
                        help="Best-of-N: how a candidate's step scores combine: mean (default, METHOD.md 7), min, last or prod (docs/rl.md)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also MPRM_DEBUG=1)")
    parser.set_defaults(prog=parser.prog)


def _mode(args: argparse.Namespace) -> str:
    """The chosen mode; a UserError for an inconsistent flag combination."""
    modes = [m for m in ("benchmark", "predictions", "checkpoints", "bon") if getattr(args, m) is not None]
    if args.checkpoints is not None and args.benchmark is not None:
        modes.remove("benchmark")
    if len(modes) != 1:
        raise UserError("give exactly one of --benchmark (with --model), --predictions, --checkpoints, --bon")
    mode = modes[0]
    if mode in ("benchmark", "bon") and args.model is None:
        raise UserError(f"--{mode} needs --model")
    if mode == "checkpoints" and args.benchmark is None:
        raise UserError("--checkpoints needs --benchmark")
    if mode != "predictions" and args.image_root is None:
        raise UserError(f"--{mode} needs --image-root")
    if mode == "checkpoints" and args.model is not None:
        raise UserError("--checkpoints evaluates the models found in RUN_DIR: --model does not apply")
    if mode == "bon" and args.dev is not None:
        raise UserError("--dev chooses a step threshold; Best-of-N needs none")
    if mode == "predictions" and (args.model is not None or args.resume):
        raise UserError("--predictions computes metrics only: --model and --resume do not apply")
    if (args.backbone is not None or args.head is not None) and args.model is None:
        raise UserError("--backbone and --head describe the base checkpoint given as --model")
    return mode


def settings_from_args(args: argparse.Namespace) -> Any:
    """The one :class:`EvalSettings` of this command (its checks raise UserError)."""
    from mprm.eval.settings import EvalSettings

    return EvalSettings(image_root=args.image_root, batch_size=args.batch_size, max_length=args.max_length,
                        prompt_style=args.prompt_style,
                        threshold=args.threshold, resume=args.resume, skip_missing_images=args.skip_missing_images,
                        strict_length=args.strict_length, device=args.device)


def _summary(metrics: dict) -> str:
    parts = []
    for kind in ("fixed", "dev", "oracle"):
        m = metrics["results"].get(kind)
        if m is not None and m["overall"] is not None:
            parts.append(f"{kind} (t={metrics['thresholds'][kind]:.4f}) {100 * m['overall']:.2f}")
    zero_shot = " (zero-shot)" if (metrics.get("model") or {}).get("zero_shot") else ""
    return f"overall macro-F1{zero_shot}: " + ", ".join(parts)


def _warn_cut(prog: str, metrics: dict) -> None:
    cut = metrics.get("cut") or {}
    count = cut.get("count", 0) + ((cut.get("dev") or {}).get("count", 0))
    if count:
        items = len(cut.get("items", [])) + len((cut.get("dev") or {}).get("items", []))
        print(f"{prog}: warning: {count} step(s) of {items} item(s) were cut by the token limit and left out of the "
              f"metrics (metrics.json 'cut'); raise --max-length to score them, or pass --strict-length to stop "
              f"on them", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run the parsed command: the exit code, or a UserError raised for the caller's
    :func:`~mprm.errors.run_entry` (``main`` here, ``mprm.cli`` for ``mprm eval``) to report."""
    mode = _mode(args)
    settings = settings_from_args(args)
    out: Path = args.output
    prog = getattr(args, "prog", "eval.py")
    if mode == "predictions":
        from mprm.eval.pipeline import evaluate_predictions

        metrics = evaluate_predictions(args.predictions, out, settings, dev=args.dev)
        _warn_cut(prog, metrics)
        print(_summary(metrics))
        print(f"wrote {out / 'metrics.json'} and {out / 'metrics.md'}")
        return 0
    from mprm.eval.loading import LazyModel

    if mode == "checkpoints":
        from mprm.eval.curves import evaluate_checkpoints

        settings.require_image_root("--checkpoints")
        summary = evaluate_checkpoints(args.checkpoints, args.benchmark, out, settings, dev=args.dev)
        if summary is not None:
            for kind, b in summary["best"].items():
                print(f"best ({kind} threshold): {b['name']} (step {b['step']}) overall {100 * b['overall']:.2f}")
            f = summary["final"]
            print(f"final: {f['name']} (step {f['step']}) overall (fixed) "
                  f"{json.dumps(None if f['overall']['fixed'] is None else round(100 * f['overall']['fixed'], 2))}")
            print(f"wrote {out / 'curve.json'} and {out / 'curve.png'}")
        return 0
    model = LazyModel.from_spec(args.model, settings, backbone=args.backbone, head=args.head)
    if mode == "bon":
        from mprm.eval.bon import evaluate_bon

        result = evaluate_bon(args.bon, model, out, settings, aggregate=args.aggregate)
        if result is not None:
            o = result["overall"]
            print(f"Best-of-N ({result['aggregate']}): reranked {100 * o['reranked']:.2f}, first "
                  f"{100 * o['first']:.2f}, random {100 * o['random']:.2f}, oracle {100 * o['oracle']:.2f}")
            print(f"wrote {out / 'bon.json'} and {out / 'bon.md'}")
        return 0
    from mprm.eval.pipeline import evaluate_benchmark

    metrics = evaluate_benchmark(model, args.benchmark, out, settings, dev=args.dev)
    if metrics is not None:
        _warn_cut(prog, metrics)
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
    args = parser.parse_args(argv)
    return run_entry(args.prog, lambda: run(args), ["--debug"] if args.debug else [])
