"""SIGKILL during scoring at random points, then --resume: the predictions equal an unbroken run's
byte for byte, with no item twice and none missing (issue 13 item 7).

One process: the scorer runs in a forked child of this process (the model already loaded, so a
kill costs no start-up) and is killed at three random points in turn. Two processes: the real
eval.py under ``accelerate launch`` on CPU, its whole process group killed at a random point,
then resumed with two processes. The benchmark has no ids, so rows are matched by content digest.
The seed is printed in every failure message.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mprm.eval.loading import LazyModel, resolve_model
from mprm.eval.pipeline import evaluate_benchmark
from mprm.eval.predictions import file_fields, read_located
from mprm.eval.settings import EvalSettings

pytestmark = pytest.mark.slow
SEED = int(os.environ.get("MPRM_KILL_SEED", time.time_ns() % 100_000))
FIELDS = file_fields(["data_source", "labels"])


@pytest.fixture(scope="module")
def bench(synth_dir, tmp_path_factory) -> Path:
    """The synthetic benchmark (24 items) without ids: items are keyed by their content digest."""
    lines = (synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()
    path = tmp_path_factory.mktemp("bench") / "test.jsonl"
    path.write_text("".join(json.dumps({k: v for k, v in json.loads(x).items() if k != "id"}) + "\n" for x in lines))
    return path


@pytest.fixture(scope="module")
def settings(synth_dir) -> EvalSettings:
    return EvalSettings(image_root=synth_dir, batch_size=4, resume=True)


@pytest.fixture(scope="module")
def model(rm_dir, settings):
    return LazyModel(resolve_model(rm_dir), settings).get("cpu")


@pytest.fixture(scope="module")
def reference(model, bench, settings, tmp_path_factory) -> Path:
    """An unbroken run in this process (same thread count and batches as every other run here)."""
    out = tmp_path_factory.mktemp("reference")
    evaluate_benchmark(model, bench, out, dataclasses.replace(settings, resume=False))
    return out


def written_ids(out: Path) -> list[str]:
    """Ids of the rows the killed run left in its part files (a truncated last line dropped)."""
    return [row["id"] for part in sorted(out.glob("predictions.rank*.jsonl"))
            for _, row in read_located(part, fields=FIELDS, tolerate_truncation=True)]


def count_rows(out: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in out.glob("predictions.rank*.jsonl"))


def kill_after(rows: int, out: Path, alive, kill, rng: random.Random) -> bool:
    """Wait until the part files hold ``rows`` rows, then a random moment more, then kill; True if killed."""
    deadline = time.monotonic() + 300
    while alive() and count_rows(out) < rows and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(rng.uniform(0.0, 0.03))  # land anywhere in the next batch, or inside a write
    if not alive():
        return False
    kill()
    return True


def test_sigkill_at_random_points_then_resume_one_process(model, bench, settings, reference, tmp_path):
    rng = random.Random(SEED)
    out, n_items = tmp_path / "out", 24
    killed = 0
    for rows in sorted(rng.sample(range(1, n_items), 3)):
        pid = os.fork()
        if pid == 0:  # the child scores until it is killed (or finishes)
            code = 1
            try:
                evaluate_benchmark(model, bench, out, settings)
                code = 0
            finally:
                os._exit(code)
        status: list[int] = []

        def alive() -> bool:
            if status:
                return False
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status.append(st)
            return not done

        if kill_after(rows, out, alive, lambda: os.kill(pid, signal.SIGKILL), rng):
            status.append(os.waitpid(pid, 0)[1])
            killed += os.WIFSIGNALED(status[0])
        assert os.WIFSIGNALED(status[0]) or os.WEXITSTATUS(status[0]) == 0, f"seed {SEED}"
        ids = written_ids(out)
        assert len(ids) == len(set(ids)), f"seed {SEED}: an item written twice after a kill at {rows} rows"
    assert killed >= 1, f"seed {SEED}: no kill landed while scoring"
    evaluate_benchmark(model, bench, out, settings)  # --resume to the end
    assert (out / "predictions.jsonl").read_bytes() == (reference / "predictions.jsonl").read_bytes(), f"seed {SEED}"
    assert (out / "metrics.json").read_text() == (reference / "metrics.json").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "metrics.md", "predictions.jsonl"]


@pytest.mark.distributed
def test_sigkill_two_processes_then_resume_with_two(eval_cmd, run_eval, two_cpu_processes, rm_dir, synth_dir, bench,
                                                    reference, tmp_path):
    rng = random.Random(SEED)
    out = tmp_path / "out"
    args = ("--model", rm_dir, "--benchmark", bench, "--image-root", synth_dir, "--output", out, "--batch-size", 4)
    cmd, env = eval_cmd(*args, launcher=two_cpu_processes, env={"ACCELERATE_USE_CPU": "true"})
    rows = rng.randrange(1, 24)
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        killed = kill_after(rows, out, lambda: proc.poll() is None, lambda: os.killpg(proc.pid, signal.SIGKILL), rng)
        proc.wait()
    assert killed and proc.returncode == -signal.SIGKILL, f"seed {SEED}: {(tmp_path / 'stderr.txt').read_text()[-2000:]}"
    ids = written_ids(out)
    assert len(ids) == len(set(ids)), f"seed {SEED}: an item written twice after a kill at {rows} rows"
    if (out / "predictions.jsonl").exists():  # killed after the merge: the merged file is complete
        assert len(read_located(out / "predictions.jsonl", fields=FIELDS)) == 24, f"seed {SEED}"

    res = run_eval(*args, "--resume", launcher=two_cpu_processes, env={"ACCELERATE_USE_CPU": "true"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "predictions.jsonl").read_bytes() == (reference / "predictions.jsonl").read_bytes(), f"seed {SEED}"
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "metrics.md", "predictions.jsonl"]
