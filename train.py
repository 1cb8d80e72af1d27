"""Train a multimodal process reward model (METHOD.md 6).

    accelerate launch --config_file launch/zero3.yaml train.py --config configs/qwen2_5_vl_7b/full.yaml
    python train.py --config configs/tiny/qwen2_5_vl.yaml train.output_dir=runs/tiny train.max_steps=10
    python train.py --config configs/qwen2_5_vl_7b/full.yaml --plan [--gpus N] [--gpu-memory GB]

Any config field can be overridden as ``section.key=value``; ``--help-config`` lists them all.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from mprm.errors import run_entry, take_debug_flag

    argv = take_debug_flag(list(sys.argv[1:] if argv is None else argv))
    return run_entry("train.py", lambda: _main(argv))


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML run config (configs/...)")
    parser.add_argument("--help-config", action="store_true", help="list every config key with its help and default")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a user error (or MPRM_DEBUG=1)")
    parser.add_argument("--plan", action="store_true", help="print the memory plan (model on the meta device, no "
                        "weights read) and exit: 0 fits, 3 does not (docs/training.md, 'Memory plan')")
    parser.add_argument("--gpus", type=int, help="with --plan: GPUs (default: the launch file's num_processes)")
    parser.add_argument("--gpu-memory", type=float, metavar="GB", help="with --plan: memory per GPU (default 80)")
    parser.add_argument("--launch", metavar="YAML", help="with --plan: accelerate config (default: the one in the "
                        "config's first-line command, or this accelerate launch)")
    parser.add_argument("--skip-plan-check", action="store_true", help="on a GPU, start even if the plan says it "
                        "does not fit")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
    args = parser.parse_args(argv)

    from mprm.config import field_help, load_config

    if args.help_config:
        for key, text in field_help().items():
            print(f"{key}\n    {text}")
        return 0
    cfg = load_config(args.config, args.overrides)
    if args.plan:
        from mprm.train.plan import plan_command

        return plan_command(cfg, config_path=args.config, launch=args.launch, gpus=args.gpus,
                            gpu_memory_gb=args.gpu_memory)
    from mprm.train.loop import train

    # on a GPU, a run the memory plan says does not fit is refused before any weight is loaded (exit 3)
    train(cfg, argv=["train.py", *argv], plan_check=not args.skip_plan_check)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
