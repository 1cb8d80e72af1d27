"""Nothing lost, nothing half-written: a damaged latest checkpoint falls back to the newest complete
one (and the resumed run equals an unbroken one); a save that fails for lack of space (a real
write failure: the file-size limit of the process) leaves the previous checkpoint intact and says
where and how much."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess

import pytest

from _train_runs import REPO, command, env, run, weights
from mprm.train import checkpoint as ckpt

pytestmark = pytest.mark.slow


def _copy_run(qwen_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(qwen_run, out)
    shutil.rmtree(out / "final")
    return out


def _truncate_largest(folder):
    biggest = max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    with open(biggest, "r+b") as fh:
        fh.truncate(biggest.stat().st_size // 2)
    return biggest


def test_a_damaged_latest_checkpoint_is_skipped_with_a_warning(qwen_run, tmp_path, capsys, tiny_qwen_dir, synth_dir):
    out = _copy_run(qwen_run, tmp_path)
    step8, step10 = out / "checkpoints" / "step-000008", out / "checkpoints" / "step-000010"
    assert ckpt.problem(step10) is None and ckpt.latest_resumable(out) == step10
    damaged = _truncate_largest(step10 / "state")
    assert "bytes," in ckpt.problem(step10) and damaged.name in ckpt.problem(step10)
    assert ckpt.latest_resumable(out) == step8
    err = capsys.readouterr().err
    assert f"{step10}: cannot resume from it" in err and f"resuming from the newest complete checkpoint {step8}" in err
    with pytest.raises(ckpt.CheckpointError, match="not a complete checkpoint"):
        ckpt.resolve_resume(str(step10), out)

    proc = run(command("configs/tiny/qwen2_5_vl.yaml", out, tiny_qwen_dir, synth_dir))  # train.resume=auto
    assert "cannot resume from it" in proc.stderr
    ref, got = weights(qwen_run / "final"), weights(out / "final")
    assert max((ref[k].float() - got[k].float()).abs().max().item() for k in ref) <= 1e-6
    assert ckpt.problem(step10) is None  # saved again, whole

    _truncate_largest(step10 / "state")
    _truncate_largest(step8 / "state")
    with pytest.raises(ckpt.CheckpointError, match=r"no complete checkpoint to resume from: .*step-000010 .*step-000008"):
        ckpt.latest_resumable(out)


def _small_files(limit: int):
    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_file_size


def test_a_failed_save_keeps_the_previous_checkpoint(qwen_run, tmp_path, tiny_qwen_dir, synth_dir):
    out = _copy_run(qwen_run, tmp_path)
    step8, step10 = out / "checkpoints" / "step-000008", out / "checkpoints" / "step-000010"
    shutil.rmtree(step10)
    proc = subprocess.run(command("configs/tiny/qwen2_5_vl.yaml", out, tiny_qwen_dir, synth_dir), cwd=REPO,
                          env=env(), capture_output=True, text=True, timeout=300,
                          preexec_fn=_small_files(512 * 1024))  # > the data caches, < the model
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"train.py: error: {step10}: checkpoint not saved ("), last
    assert f"the previous checkpoint {step8} takes" in last and "MiB and is intact" in last
    assert not step10.exists() and not (out / "checkpoints" / "step-000010.tmp").exists()
    assert ckpt.problem(step8) is None and not (out / "final").exists()
