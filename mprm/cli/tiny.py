"""``mprm tiny``: write a tiny random backbone checkpoint of any zoo family, for tests and the demo.

``--pretrain`` instead builds a slightly larger tiny backbone with the synthetic domain's words as
tokens and trains it for a few minutes on image captions (mprm.experiments.pretrain), so that reward
training starts, like a real MPRM, from a backbone that already reads the pictures. The result is
cached: rerunning with the same settings reuses the folder.
"""

from __future__ import annotations

import argparse
import sys



def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mprm.experiments.pretrain import PretrainSettings
    from mprm.models.tiny import TINY_BACKBONES

    d = PretrainSettings()
    parser.add_argument("--backbone", required=True, choices=TINY_BACKBONES,
                        help="zoo family of the tiny model (docs/models.md, the zoo table)")
    parser.add_argument("--output", required=True, help="folder to write the checkpoint to (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (default 0)")
    pre = parser.add_argument_group("domain pretraining (--pretrain)")
    pre.add_argument("--pretrain", action="store_true",
                     help="pretrain on synthetic image captions (next-token loss; cached in --output)")
    pre.add_argument("--pretrain-steps", type=int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    pre.add_argument("--pretrain-batch-size", type=int, default=d.batch_size, help=f"captions per step (default {d.batch_size})")
    pre.add_argument("--pretrain-lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    pre.add_argument("--pretrain-pairs", type=int, default=d.pairs, help=f"distinct captioned pictures (default {d.pairs})")
    pre.add_argument("--hidden-size", type=int, default=d.hidden_size, help=f"text model width (default {d.hidden_size})")
    pre.add_argument("--layers", type=int, default=d.num_hidden_layers, help=f"text model layers (default {d.num_hidden_layers})")


def run(args: argparse.Namespace) -> int:
    if args.pretrain:
        from mprm.experiments.pretrain import PretrainSettings, pretrain_tiny

        settings = PretrainSettings(
            backbone=args.backbone, steps=args.pretrain_steps, batch_size=args.pretrain_batch_size,
            lr=args.pretrain_lr, pairs=args.pretrain_pairs, hidden_size=args.hidden_size,
            num_hidden_layers=args.layers, intermediate_size=2 * args.hidden_size, seed=args.seed)
        out = pretrain_tiny(args.output, settings)
        print(f"wrote pretrained tiny {args.backbone} checkpoint to {out}", file=sys.stderr)
        return 0
    from mprm.models.tiny import build_tiny

    out = build_tiny(args.backbone, args.output, seed=args.seed)
    print(f"wrote tiny {args.backbone} checkpoint to {out}", file=sys.stderr)
    return 0
