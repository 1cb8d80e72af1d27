"""Two GRPO steps of a tiny Qwen2.5-VL policy with a tiny trained mprm reward model (TRL, CPU).

Asserts what issue 16 asks of the RL reward: TRL hands the dataset's pictures to it, its rewards
are finite and equal to the shared aggregate of ``score_batch`` on the same steps, and the policy
learns (its parameters change). The example script is run as a command as well.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys

import pytest
import torch

from mprm.eval.aggregate import aggregate
from mprm.models import score_batch
from mprm.rewards import StepReward

pytest.importorskip("trl", reason="TRL is the optional extra mprm[rl] (make setup installs it)")
pytestmark = pytest.mark.slow


def load_example(repo_root):
    spec = importlib.util.spec_from_file_location("rl_grpo_example", repo_root / "launch" / "rl_grpo_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RecordingStepReward(StepReward):
    """StepReward that also keeps every call's dataset columns and results (the real scoring runs)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def __call__(self, prompts, completions, completion_ids=None, **columns):
        rewards = super().__call__(prompts, completions, completion_ids, **columns)
        self.calls.append({"columns": columns, "rewards": rewards, "scored": list(self.last)})
        return rewards


def test_two_grpo_steps_with_the_process_reward(repo_root, trained_rm_dir, synth_dir, tmp_path):
    ex = load_example(repo_root)
    args = ex.tiny_defaults(ex.parse_args([
        "--output", str(tmp_path), "--reward-model", str(trained_rm_dir), "--questions",
        str(synth_dir / "benchmark" / "test.jsonl"), "--image-root", str(synth_dir), "--max-questions", "8",
        "--batch-size", "4", "--num-generations", "4", "--max-completion-length", "16", "--lr", "1e-3"]))
    dataset = ex.question_dataset(args.questions, args.image_root, args.max_questions)
    model, processor = ex.policy_and_processor(args.policy, bf16=False)
    reward = RecordingStepReward(trained_rm_dir, aggregate="min", batch_size=4, dtype=torch.float32)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # a random tiny policy could sample its end token first; an empty completion has no reward
    trainer = ex.make_trainer(args, [reward], dataset, model, processor, generation_kwargs={"min_new_tokens": 4})
    trainer.train()

    assert len(reward.calls) == 2
    pictures = {i: [im.tobytes() for im in ims] for i, ims in zip(dataset["id"], dataset["images"])}
    for call in reward.calls:
        cols = call["columns"]
        assert callable(cols["log_extra"]) and callable(cols["log_metric"])
        # the dataset's pictures, as PIL images, one list per completion (each prompt's group of 4)
        assert len(cols["images"]) == 4 and all(len(ims) == 1 for ims in cols["images"])
        for row, ims, scored in zip(cols["id"], cols["images"], call["scored"]):
            assert [im.tobytes() for im in ims] == pictures[row]
            assert [im.tobytes() for im in scored.images] == pictures[row]
        assert all(r is not None and math.isfinite(r) for r in call["rewards"])
        again = score_batch(reward.model, [{"images": s.images, "question": s.question, "steps": s.steps}
                                           for s in call["scored"]], batch_size=1)
        assert call["rewards"] == pytest.approx([aggregate(s, "min") for s in again], abs=1e-5)
    logged = [h for h in trainer.state.log_history if "rewards/step_reward_min/mean" in h]
    assert len(logged) == 2 and "mprm/steps" in logged[0]
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert len(changed) > len(before) // 2, f"only {len(changed)} of {len(before)} tensors changed"


def test_example_script_runs(repo_root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, str(repo_root / "launch" / "rl_grpo_example.py"), "--output", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "GRPO: 2 steps in" in res.stdout and "mean reward per step (min):" in res.stdout
    assert "policy parameters changed: 0 of" not in res.stdout
