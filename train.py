"""Train a multimodal process reward model (METHOD.md 6).

    accelerate launch --config_file launch/zero3.yaml train.py --config configs/qwen2_5_vl_7b/full.yaml
    python train.py --config configs/tiny/qwen2_5_vl.yaml train.output_dir=runs/tiny train.max_steps=10

Any config field can be overridden as ``section.key=value``; ``--help-config`` lists them all.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML run config (configs/...)")
    parser.add_argument("--help-config", action="store_true", help="list every config key with its help and default")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
    args = parser.parse_args(argv)

    from mprm.config import ConfigError, check_required, field_help, load_config

    if args.help_config:
        for key, text in field_help().items():
            print(f"{key}\n    {text}")
        return 0
    try:
        cfg = load_config(args.config, args.overrides)
        check_required(cfg)
    except ConfigError as exc:
        print(f"train.py: {exc}", file=sys.stderr)
        return 2

    from mprm.train.loop import train

    train(cfg, argv=["train.py", *argv])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
