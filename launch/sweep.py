#!/usr/bin/env python
"""Print or submit the commands of the paper's experiment grid (issue 6 item 2; docs/reproduce.md).

    python launch/sweep.py                                  # print every command still needed
    python launch/sweep.py --filter 'internvl2_5_8b/bis_*'   # only some cells
    python launch/sweep.py --submit local                   # run them one after another, logs per run
    python launch/sweep.py --submit slurm --dry-run         # show the sbatch lines without submitting
                                                            # (training: launch/slurm_multinode.sbatch;
                                                            #  evaluation: a --wrap job after it)
    python launch/sweep.py --write-configs                  # regenerate configs/paper/ from the grid

Finished cells (``final/`` + ``run_summary.json`` + ``eval/final/metrics.json``, and
``eval/curve.json`` with ``--curves``) are skipped; a partly trained cell resumes (train.resume=auto).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mprm.errors import UserError, run_entry, take_debug_flag  # noqa: E402
from mprm.repro.commands import Plan, SweepOptions, plan_cell  # noqa: E402
from mprm.repro.configs import DEFAULT_ACCELERATE_CONFIG, DEFAULT_RUNS_DIR, write_grid_configs  # noqa: E402
from mprm.repro.grid import BACKBONES, paper_grid  # noqa: E402
from mprm.repro.submit import run_local, run_slurm  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR, help="where run folders go (default %(default)s)")
    p.add_argument("--backbones", nargs="+", choices=[b.name for b in BACKBONES], help="default: both")
    p.add_argument("--filter", metavar="PATTERN",
                   help="run-name pattern, fnmatch (internvl2_5_8b/bis_*) or a plain substring (random_)")
    p.add_argument("--submit", choices=("local", "slurm"), help="run (local, sequentially) or sbatch the commands")
    p.add_argument("--dry-run", action="store_true", help="with --submit: show what would run, run nothing")
    p.add_argument("--accelerate-config", default=DEFAULT_ACCELERATE_CONFIG, help="default %(default)s")
    p.add_argument("--benchmark", default="data/VisualProcessBench/test.jsonl", help="VisualProcessBench test.jsonl")
    p.add_argument("--bench-image-root", default="data/VisualProcessBench", help="its image root")
    p.add_argument("--dev", help="held-out labelled file for the dev threshold (eval.py --dev)")
    p.add_argument("--eval-batch-size", type=int, help="eval.py --batch-size")
    p.add_argument("--curves", action="store_true",
                   help="also evaluate every checkpoint (eval.py --checkpoints; METHOD.md 10.7)")
    p.add_argument("--python", default="python",
                   help="how eval.py is started (default %(default)s; e.g. 'accelerate launch --multi_gpu "
                        "--num_processes 4' to shard it)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="[BACKBONE:]KEY=VALUE",
                   help="train override for every cell, or for one backbone with a BACKBONE: prefix; repeatable")
    p.add_argument("--sbatch-args", default="",
                   help="extra sbatch options of training jobs, e.g. '--nodes 1 --gpus-per-node 4 --partition gpu'")
    p.add_argument("--sbatch-eval-args", default="--nodes 1 --ntasks 1 --gpus-per-node 1",
                   help="sbatch options of evaluation jobs (default %(default)s)")
    p.add_argument("--write-configs", action="store_true", help="regenerate configs/paper/ and exit")
    p.add_argument("--debug", action="store_true", help="show the traceback of a user error (or MPRM_DEBUG=1)")
    return p.parse_args(argv)


def sweep_options(args: argparse.Namespace) -> SweepOptions:
    names = {b.name for b in BACKBONES}
    common: list[str] = []
    per: dict[str, list[str]] = {}
    for item in args.overrides:
        head, _, rest = item.partition(":")
        if rest and head in names and "=" in rest:
            per.setdefault(head, []).append(rest)
        elif "=" in item:
            common.append(item)
        else:
            raise UserError(f"--set {item!r}: expected KEY=VALUE or BACKBONE:KEY=VALUE, e.g. train.lr=2e-5")
    return SweepOptions(runs_dir=args.runs_dir, accelerate_config=args.accelerate_config, benchmark=args.benchmark,
                        bench_image_root=args.bench_image_root, dev=args.dev, curves=args.curves,
                        python=args.python, eval_batch_size=args.eval_batch_size, overrides=common,
                        backbone_overrides=per)


def print_plans(plans: list[Plan]) -> None:
    for plan in plans:
        if plan.finished:
            print(f"# skip {plan.cell.name}: finished")
            continue
        print(f"# {plan.cell.name}: {plan.cell.setting.title} ({plan.state})")
        for stage in plan.stages:
            print(shlex.join(stage.argv))


def main(argv: list[str] | None = None) -> int:
    argv = take_debug_flag(list(sys.argv[1:] if argv is None else argv))
    return run_entry("sweep.py", lambda: _main(argv))


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        cells = paper_grid(args.backbones, args.filter)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.write_configs:
        for path in write_grid_configs(cells, REPO):
            print(path.relative_to(REPO))
        return 0
    if not cells:
        raise UserError(f"--filter {args.filter!r}: no grid cell matches; run without --filter to list the cells")
    plans = [plan_cell(c, sweep_options(args)) for c in cells]
    n_done = sum(p.finished for p in plans)
    print(f"# {len(plans)} cell(s), {n_done} finished, {len(plans) - n_done} to run; runs dir {args.runs_dir}")
    if args.submit is None or (args.submit == "local" and args.dry_run):
        print_plans(plans)
        return 0
    if args.submit == "local":
        return run_local(plans, cwd=REPO)
    return run_slurm(plans, args.sbatch_args, args.sbatch_eval_args, args.dry_run, cwd=REPO)


if __name__ == "__main__":
    raise SystemExit(main())
