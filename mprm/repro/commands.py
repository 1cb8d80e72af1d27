"""The exact commands of every grid cell, and which of them a run folder still needs.

A cell's run folder is ``RUNS_DIR/<backbone>/<setting key>`` (e.g. ``runs/paper/internvl2_5_8b/
bis_10_a0.2``). Its stages (docs/decisions.md D-REPRO-2):

1. train: ``accelerate launch --config_file launch/zero3.yaml train.py --config
   configs/paper/<run>.yaml train.output_dir=RUN_DIR`` (train.py runs the selection itself into
   ``RUN_DIR/selection/`` and resumes from the latest checkpoint, ``train.resume=auto``);
2. eval: ``python eval.py --model RUN_DIR/final ... --output RUN_DIR/eval/final`` ->
   ``eval/final/metrics.json`` (what ``mprm report`` reads);
3. curve (only with ``curves``): ``python eval.py --checkpoints RUN_DIR ... --output RUN_DIR/eval``
   -> ``eval/curve.json`` and ``eval/step-NNNNNN/``; it finds ``eval/final`` already scored and
   reuses it (METHOD.md 10.7).

A stage whose output exists is skipped; a cell with none left is finished.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from mprm.repro.configs import DEFAULT_ACCELERATE_CONFIG, DEFAULT_RUNS_DIR, train_command
from mprm.repro.grid import Cell
from mprm.repro.runs import CURVE_FILE, EVAL_DIR, EVAL_METRICS, FINAL_DIR, FINAL_EVAL_DIR, SUMMARY_FILE


@dataclass
class SweepOptions:
    """Everything besides the grid that the commands depend on (launch/sweep.py's flags)."""

    runs_dir: str = DEFAULT_RUNS_DIR
    accelerate_config: str = DEFAULT_ACCELERATE_CONFIG
    benchmark: str = "data/VisualProcessBench/test.jsonl"
    bench_image_root: str = "data/VisualProcessBench"
    dev: str | None = None
    curves: bool = False
    #: how eval.py is started: "python", or e.g. "accelerate launch --multi_gpu --num_processes 4"
    python: str = "python"
    eval_batch_size: int | None = None
    #: ``key=value`` train overrides for every cell, and per backbone name.
    overrides: list[str] = field(default_factory=list)
    backbone_overrides: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Stage:
    """One command of a cell: ``name`` is train, eval or curve; ``log`` is where local runs write."""

    name: str
    argv: list[str]
    log: Path


@dataclass
class Plan:
    """A cell's run folder, its state and the stages it still needs (empty when finished)."""

    cell: Cell
    run_dir: Path
    state: str
    stages: list[Stage]

    @property
    def finished(self) -> bool:
        return not self.stages


def is_trained(run_dir: Path) -> bool:
    """Training finished: ``final/`` holds files and ``run_summary.json`` (written last) exists."""
    final = run_dir / FINAL_DIR
    return final.is_dir() and any(final.iterdir()) and (run_dir / SUMMARY_FILE).is_file()


def is_evaluated(run_dir: Path) -> bool:
    return (run_dir / EVAL_METRICS).is_file()


def has_curve(run_dir: Path) -> bool:
    return (run_dir / CURVE_FILE).is_file()


def _eval_tail(opts: SweepOptions) -> list[str]:
    tail = ["--benchmark", opts.benchmark, "--image-root", opts.bench_image_root]
    if opts.dev:
        tail += ["--dev", opts.dev]
    if opts.eval_batch_size:
        tail += ["--batch-size", str(opts.eval_batch_size)]
    return tail


def cell_commands(cell: Cell, opts: SweepOptions, *, resume_eval: bool = False) -> list[Stage]:
    """Every stage of a cell, finished or not.

    ``resume_eval`` adds ``--resume`` to the eval stage: right only when the model it scores is the
    one a killed evaluation started on (training was already finished). After a fresh training eval.py
    runs without it, so left-over predictions of another model stop it instead of mixing in.
    """
    run_dir = Path(opts.runs_dir) / cell.name
    logs = run_dir / "logs"
    overrides = [f"train.output_dir={run_dir.as_posix()}", *opts.overrides,
                 *opts.backbone_overrides.get(cell.backbone.name, [])]
    stages = [
        Stage("train", train_command(cell.config_path, accelerate_config=opts.accelerate_config, overrides=overrides),
              logs / "train.log"),
        Stage("eval", [*shlex.split(opts.python), "eval.py", "--model", (run_dir / FINAL_DIR).as_posix(),
                       *_eval_tail(opts),
                       "--output", (run_dir / FINAL_EVAL_DIR).as_posix(), *(["--resume"] if resume_eval else [])],
              logs / "eval.log"),
    ]
    if opts.curves:
        stages.append(Stage("curve", [*shlex.split(opts.python), "eval.py", "--checkpoints", run_dir.as_posix(),
                                      *_eval_tail(opts), "--output", (run_dir / EVAL_DIR).as_posix()],
                            logs / "curve.log"))
    return stages


def plan_cell(cell: Cell, opts: SweepOptions) -> Plan:
    """Which stages a cell still needs, judged from its run folder."""
    run_dir = Path(opts.runs_dir) / cell.name
    done = {"train": is_trained(run_dir), "eval": is_evaluated(run_dir), "curve": has_curve(run_dir)}
    todo = [s for s in cell_commands(cell, opts, resume_eval=done["train"]) if not done[s.name]]
    if done["train"] and not todo:
        state = "finished"
    elif done["train"]:
        state = "trained, evaluation missing"
    elif (run_dir / "checkpoints").is_dir():
        state = "partly trained (resumes from its latest checkpoint)"
    else:
        state = "not started"
    if not done["train"]:
        # a model still to be trained invalidates any older evaluation: every stage runs
        todo = cell_commands(cell, opts)
    return Plan(cell, run_dir, state, todo)
