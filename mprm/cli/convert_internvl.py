"""``mprm convert-internvl``: original InternVL2.5 release -> native transformers InternVL folder."""

from __future__ import annotations

import argparse

DTYPES = ("bfloat16", "float16", "float32")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="folder of the original release (config.json, safetensors, tokenizer)")
    parser.add_argument("--output", required=True, help="empty folder for the native checkpoint")
    parser.add_argument("--dtype", choices=DTYPES, default=None, help="cast floating-point weights (default: keep the stored dtype)")
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="folder with a tokenizer.json (and tokenizer_config.json) to use instead of the release's tokenizer files",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from mprm.models.convert_internvl import convert_internvl

    dtype = getattr(torch, args.dtype) if args.dtype else None
    out = convert_internvl(args.input, args.output, dtype=dtype, tokenizer=args.tokenizer)  # errors: ConversionError
    print(f"wrote {out}")
    return 0
