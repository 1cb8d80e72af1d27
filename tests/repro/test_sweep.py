"""launch/sweep.py: the exact commands per grid cell, skipping what a run folder already holds."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mprm.repro.commands import SweepOptions, plan_cell
from mprm.repro.grid import paper_grid

REPO = Path(__file__).resolve().parents[2]
SWEEP = REPO / "launch" / "sweep.py"


def sweep(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, str(SWEEP), *args], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def trained(run: Path) -> None:
    (run / "final").mkdir(parents=True)
    (run / "final" / "mprm_config.json").write_text("{}")
    (run / "run_summary.json").write_text(json.dumps({"optimizer_steps": 1}))


def evaluated(run: Path) -> None:
    (run / "eval" / "final").mkdir(parents=True)
    (run / "eval" / "final" / "metrics.json").write_text("{}")


def test_prints_the_exact_commands(tmp_path):
    r = tmp_path / "runs"
    lines = sweep("--runs-dir", str(r), "--filter", "internvl2_5_8b/bis_10*", "--set", "data.train=/d/annotations",
                  "--set", "internvl2_5_8b:model.path=/m/ivl", "--set", "qwen2_5_vl_7b:model.path=/m/qwen",
                  "--dev", "dev.jsonl")
    run = f"{r}/internvl2_5_8b/bis_10_a0.2"
    assert lines == [
        f"# 1 cell(s), 0 finished, 1 to run; runs dir {r}",
        "# internvl2_5_8b/bis_10_a0.2: BIS-10% (alpha 0.2) (not started)",
        "accelerate launch --config_file launch/zero3.yaml train.py --config "
        f"configs/paper/internvl2_5_8b/bis_10_a0.2.yaml train.output_dir={run} data.train=/d/annotations "
        "model.path=/m/ivl",
        f"python eval.py --model {run}/final --benchmark data/VisualProcessBench/test.jsonl "
        f"--image-root data/VisualProcessBench --dev dev.jsonl --output {run}/eval/final",
    ]


def test_skips_finished_runs_and_resumes_the_rest(tmp_path):
    r = tmp_path / "runs"
    trained(r / "qwen2_5_vl_7b/full_hard0")
    evaluated(r / "qwen2_5_vl_7b/full_hard0")
    trained(r / "qwen2_5_vl_7b/full_hard1n")  # evaluation missing
    (r / "qwen2_5_vl_7b/full_hard2n/checkpoints/step-000050").mkdir(parents=True)
    evaluated(r / "qwen2_5_vl_7b/full_soft")  # stale evaluation, no model: everything reruns
    lines = sweep("--runs-dir", str(r), "--backbones", "qwen2_5_vl_7b", "--filter", "full_")
    q = f"{r}/qwen2_5_vl_7b"
    bench = "--benchmark data/VisualProcessBench/test.jsonl --image-root data/VisualProcessBench"
    train = "accelerate launch --config_file launch/zero3.yaml train.py --config configs/paper/qwen2_5_vl_7b"
    assert lines == [
        f"# 4 cell(s), 1 finished, 3 to run; runs dir {r}",
        "# skip qwen2_5_vl_7b/full_hard0: finished",
        "# qwen2_5_vl_7b/full_hard1n: Full, hard tau=1/N (trained, evaluation missing)",
        f"python eval.py --model {q}/full_hard1n/final {bench} --output {q}/full_hard1n/eval/final --resume",
        "# qwen2_5_vl_7b/full_hard2n: Full, hard tau=2/N (partly trained (resumes from its latest checkpoint))",
        f"{train}/full_hard2n.yaml train.output_dir={q}/full_hard2n",
        f"python eval.py --model {q}/full_hard2n/final {bench} --output {q}/full_hard2n/eval/final",
        "# qwen2_5_vl_7b/full_soft: Full, soft (not started)",
        f"{train}/full_soft.yaml train.output_dir={q}/full_soft",
        f"python eval.py --model {q}/full_soft/final {bench} --output {q}/full_soft/eval/final",
    ]
    # with --curves a finished run still needs its checkpoint curve; once curve.json exists it is skipped
    lines = sweep("--runs-dir", str(r), "--filter", "qwen2_5_vl_7b/full_hard0", "--curves")
    assert lines[2] == f"python eval.py --checkpoints {q}/full_hard0 {bench} --output {q}/full_hard0/eval"
    (r / "qwen2_5_vl_7b/full_hard0/eval/curve.json").write_text("{}")
    assert sweep("--runs-dir", str(r), "--filter", "qwen2_5_vl_7b/full_hard0", "--curves")[1] == \
        "# skip qwen2_5_vl_7b/full_hard0: finished"


def test_bad_arguments(tmp_path):
    out = subprocess.run([sys.executable, str(SWEEP), "--filter", "no_such_cell"], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 2 and "no grid cell matches" in out.stderr
    out = subprocess.run([sys.executable, str(SWEEP), "--set", "oops"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode != 0 and "expected KEY=VALUE" in out.stderr


@pytest.fixture
def sweep_module():
    spec = importlib.util.spec_from_file_location("sweep_script", SWEEP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_local_submission_runs_stages_in_order_with_logs(tmp_path, sweep_module):
    """Real subprocesses: a failing stage ends its cell (its eval does not run), the next cell still runs."""
    r = tmp_path / "runs"
    cells = paper_grid(["internvl2_5_8b"], "full_hard")[:2]
    plans = [plan_cell(c, SweepOptions(runs_dir=str(r))) for c in cells]
    marker = tmp_path / "order.txt"
    for plan, train_rc in zip(plans, (3, 0)):
        for stage in plan.stages:
            rc = train_rc if stage.name == "train" else 0
            stage.argv = [sys.executable, "-c",
                          f"open({str(marker)!r}, 'a').write('{plan.cell.setting.key}:{stage.name}\\n'); "
                          f"print('hello from {stage.name}'); raise SystemExit({rc})"]
    assert sweep_module.run_local(plans) == 1
    assert marker.read_text().splitlines() == ["full_hard0:train", "full_hard1n:train", "full_hard1n:eval"]
    log = (r / "internvl2_5_8b/full_hard1n/logs/eval.log").read_text()
    assert log.startswith("$ ") and "hello from eval" in log
    assert not (r / "internvl2_5_8b/full_hard0/logs/eval.log").exists()


def test_sharded_evaluation_launcher(tmp_path):
    lines = sweep("--runs-dir", str(tmp_path), "--filter", "qwen2_5_vl_7b/random_5",
                  "--python", "accelerate launch --multi_gpu --num_processes 4", "--eval-batch-size", "4")
    assert lines[3] == (f"accelerate launch --multi_gpu --num_processes 4 eval.py --model {tmp_path}/qwen2_5_vl_7b/"
                        "random_5/final --benchmark data/VisualProcessBench/test.jsonl --image-root "
                        f"data/VisualProcessBench --batch-size 4 --output {tmp_path}/qwen2_5_vl_7b/random_5/eval/final")


def test_slurm_dry_run_uses_the_multinode_script(tmp_path):
    """Training through launch/slurm_multinode.sbatch CONFIG overrides; evaluation waits for it."""
    r = tmp_path / "runs"
    lines = sweep("--runs-dir", str(r), "--filter", "internvl2_5_8b/low_mc_25", "--submit", "slurm", "--dry-run",
                  "--sbatch-args", "--nodes 1 --gpus-per-node 4")
    run = f"{r}/internvl2_5_8b/low_mc_25"
    assert lines[2] == (f"sbatch --parsable --job-name=mprm-internvl2_5_8b-low_mc_25 --output={run}/logs/"
                        "slurm-train-%j.out --nodes 1 --gpus-per-node 4 launch/slurm_multinode.sbatch "
                        f"configs/paper/internvl2_5_8b/low_mc_25.yaml train.output_dir={run}")
    assert lines[3] == (f"sbatch --parsable --job-name=mprm-internvl2_5_8b-low_mc_25-eval --output={run}/logs/"
                        "slurm-eval-%j.out '--dependency=afterok:$TRAIN_JOB' --nodes 1 --ntasks 1 --gpus-per-node 1 "
                        f"'--wrap=python eval.py --model {run}/final --benchmark data/VisualProcessBench/test.jsonl "
                        f"--image-root data/VisualProcessBench --output {run}/eval/final'")
    assert len(lines) == 4 and not (r / "internvl2_5_8b").exists()
    script = (REPO / "launch" / "slurm_multinode.sbatch").read_text()
    assert "CONFIG=${1:" in script  # the script's contract: CONFIG first, then overrides
