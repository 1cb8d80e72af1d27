"""``mprm format``: what the model sees for one record of a corpus, a selection or a benchmark file.

    mprm format --model DIR --input FILE [--line N] [--image-root DIR] [--json]

The human view shortens runs of image placeholder tokens (``<|image_pad|>x234``) and marks each
``<prm>`` with its label; ``--json`` prints ``{"text", "input_ids", "prm_positions", "labels"}``
with the full decode (nothing shortened).
"""

from __future__ import annotations

import argparse
import json

from mprm.config import PROMPT_STYLES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a saved reward model or a base checkpoint (folder or hub id)")
    parser.add_argument("--input", required=True, help="a corpus .jsonl or .parquet (raw), a selected.jsonl or a benchmark .jsonl")
    parser.add_argument("--line", type=int, default=1, help="1-based line of --input, the row of a .parquet (default 1)")
    parser.add_argument("--image-root", default=None,
                        help="folder the record's image paths are relative to (default: the folder holding "
                             "annotations/ for a VisualPRM400K file, else the input's folder)")
    parser.add_argument("--backbone", default=None, help="backbone of a base checkpoint (default: from config.json)")
    parser.add_argument("--prompt-style", default=None, choices=PROMPT_STYLES,
                        help="layout (default: the model's; train for a base checkpoint)")
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument("--label-threshold", type=float, default=0.0, help="tau of hard labels from MC scores")
    labels.add_argument("--soft-labels", action="store_true", help="soft labels: the target is the MC score itself")
    parser.add_argument("--json", action="store_true", help="print the machine-readable view")


def run(args: argparse.Namespace) -> int:
    from mprm.data.examples import default_image_root, read_example
    from mprm.eval.loading import LazyModel
    from mprm.eval.settings import EvalSettings
    from mprm.models.inspect import format_view, human_view

    _, example = read_example(args.input, args.line, label_threshold=args.label_threshold, soft=args.soft_labels)
    root = args.image_root or default_image_root(args.input)
    # the same model sources as eval.py --model: a saved reward model, or a base checkpoint / hub id
    settings = EvalSettings(prompt_style=args.prompt_style, device="cpu")
    model = LazyModel.from_spec(args.model, settings, backbone=args.backbone).get()
    view = format_view(model.formatter, example, image_root=root)
    if args.json:
        print(json.dumps({k: view[k] for k in ("text", "input_ids", "prm_positions", "labels")}, ensure_ascii=False))
    else:
        print(human_view(model.formatter, view))
    return 0
