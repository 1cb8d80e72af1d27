"""``mprm tiny``: write a tiny random backbone checkpoint for tests and the demo."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mprm.models.tiny import TINY_BACKBONES

    parser.add_argument("--backbone", required=True, choices=TINY_BACKBONES, help="backbone family of the tiny model")
    parser.add_argument("--output", required=True, help="folder to write the checkpoint to (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (default 0)")


def run(args: argparse.Namespace) -> int:
    from mprm.models.tiny import build_tiny

    out = build_tiny(args.backbone, args.output, seed=args.seed)
    print(f"wrote tiny {args.backbone} checkpoint to {out}", file=sys.stderr)
    return 0
