"""Running the sweep's plans (``launch/sweep.py --submit``): one after another on this machine, or
as Slurm jobs (docs/reproduce.md). No torch.

Both take the :class:`~mprm.repro.commands.Plan` of each cell (:func:`~mprm.repro.commands.plan_cell`)
and skip finished cells. Commands run from ``cwd``, the repository root by default, since every
stage's command line uses paths relative to it (``train.py``, ``configs/paper/...``).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

from mprm.repro.commands import Plan

#: The repository the stages' relative paths are resolved from.
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Training under Slurm: CONFIG and key=value overrides; it starts accelerate on every node.
SBATCH_SCRIPT = "launch/slurm_multinode.sbatch"


def run_local(plans: list[Plan], *, cwd: str | Path = REPO_ROOT) -> int:
    """Run every pending stage in order, each stage's output appended to its log; a failed stage
    ends its cell, the sweep goes on. 0 when every stage succeeded, else 1 (the failures listed
    on stderr)."""
    failed: list[str] = []
    todo = [p for p in plans if not p.finished]
    for i, plan in enumerate(todo, 1):
        for stage in plan.stages:
            stage.log.parent.mkdir(parents=True, exist_ok=True)
            print(f"[{i}/{len(todo)}] {plan.cell.name} {stage.name}: log {stage.log}", file=sys.stderr, flush=True)
            start = time.time()
            with stage.log.open("a") as log:
                log.write(f"$ {shlex.join(stage.argv)}\n")
                log.flush()
                rc = subprocess.call(stage.argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
            print(f"    exit {rc} after {time.time() - start:.0f} s", file=sys.stderr, flush=True)
            if rc != 0:
                failed.append(f"{plan.cell.name} ({stage.name}, exit {rc}, log {stage.log})")
                break
    for item in failed:
        print(f"failed: {item}", file=sys.stderr)
    return 1 if failed else 0


def slurm_jobs(plan: Plan, train_args: str, eval_args: str) -> list[tuple[str, list[str]]]:
    """The sbatch lines of one cell: ("train", ...) and/or ("eval", ...).

    Training goes through :data:`SBATCH_SCRIPT`, which takes CONFIG and key=value overrides and
    starts accelerate on every node. The evaluation stages run as one ``--wrap`` job that waits
    for the training job (``--dependency=afterok:$TRAIN_JOB``, filled in when submitting).
    """
    logs = plan.run_dir / "logs"
    name = f"mprm-{plan.cell.name.replace('/', '-')}"
    jobs = []
    train = next((s for s in plan.stages if s.name == "train"), None)
    if train is not None:
        config_at = train.argv.index("--config")
        jobs.append(("train", ["sbatch", "--parsable", f"--job-name={name}", f"--output={logs}/slurm-train-%j.out",
                               *shlex.split(train_args), SBATCH_SCRIPT, *train.argv[config_at + 1:]]))
    evals = [s for s in plan.stages if s.name != "train"]
    if evals:
        after = ["--dependency=afterok:$TRAIN_JOB"] if train is not None else []
        wrap = " && ".join(shlex.join(s.argv) for s in evals)
        jobs.append(("eval", ["sbatch", "--parsable", f"--job-name={name}-eval", f"--output={logs}/slurm-eval-%j.out",
                              *after, *shlex.split(eval_args), f"--wrap={wrap}"]))
    return jobs


def run_slurm(plans: list[Plan], train_args: str, eval_args: str, dry_run: bool, *,
              cwd: str | Path = REPO_ROOT) -> int:
    """Submit (or with ``dry_run`` print) every pending cell's jobs; the sbatch lines go to stdout.
    0, or 1 when an sbatch failed (that cell's later jobs are not submitted)."""
    rc = 0
    for plan in plans:
        if plan.finished:
            continue
        print(f"# {plan.cell.name}: {plan.cell.setting.title} ({plan.state})")
        train_job = None
        for kind, argv in slurm_jobs(plan, train_args, eval_args):
            if train_job is not None:
                argv = [a.replace("$TRAIN_JOB", train_job) for a in argv]
            print(shlex.join(argv))
            if dry_run:
                continue
            (plan.run_dir / "logs").mkdir(parents=True, exist_ok=True)
            done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"sbatch failed for {plan.cell.name} ({kind}): {done.stderr.strip()}", file=sys.stderr)
                rc = 1
                break
            job = done.stdout.strip().split(";")[0]
            print(f"#   submitted job {job}")
            if kind == "train":
                train_job = job
    return rc
