"""StepReward as TRL calls it: inputs from columns or the prompt, splitting, aggregation, logging."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from mprm.eval.aggregate import AGGREGATES, aggregate
from mprm.models import load_reward_model, score_batch
from mprm.rewards import (
    StepReward,
    completion_text,
    image_only_processor,
    prompt_images,
    prompt_question,
    split_steps,
)

SOLUTION = "Top left: a red circle. Red so far: 1.\n\nTop right: empty. Red so far: 1.\n\n\n\nThe answer is 1.  "
STEPS = ["Top left: a red circle. Red so far: 1.", "Top right: empty. Red so far: 1.", "The answer is 1."]


def test_split_and_text_helpers():
    assert split_steps(SOLUTION) == STEPS
    assert split_steps("a. b. c.", lambda t: t.split(". ")) == ["a", "b", "c."]
    assert split_steps(" \n\n ") == []
    msgs = [{"role": "assistant", "content": [{"type": "text", "text": "one"}]},
            {"role": "tool", "content": "ignored"}, {"role": "assistant", "content": "two"}]
    assert completion_text(msgs) == "one\n\ntwo" and completion_text("plain") == "plain"
    img = Image.new("RGB", (4, 4))
    prompt = [{"role": "system", "content": "Be brief."},
              {"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "How many?"}]}]
    assert prompt_question(prompt) == "How many?" and prompt_images(prompt) == [img]
    assert prompt_question("a plain prompt") == "a plain prompt" and prompt_images("a plain prompt") == []


def test_rewards_are_the_shared_aggregate_of_score_batch(reward_model, bench_rows, synth_dir):
    rows = bench_rows[:5]
    completions = [[{"role": "assistant", "content": "\n\n".join(r["response"]["steps"])}] for r in rows]
    prompts = [[{"role": "user", "content": r["question"]}] for r in rows]
    images = [[Image.open(synth_dir / p) for p in r["image"]] for r in rows]
    expected = score_batch(reward_model, [{"images": [str(p) for p in r["image"]], "question": r["question"],
                                           "steps": r["response"]["steps"]} for r in rows],
                           image_root=synth_dir, batch_size=2)
    for how in AGGREGATES:
        reward = StepReward(reward_model, aggregate=how, batch_size=2)
        got = reward(prompts=prompts, completions=completions, completion_ids=None, images=images,
                     question=[r["question"] for r in rows])
        assert got == [aggregate(s, how) for s in expected]
        assert reward.last_step_scores() == expected
        assert [s.steps for s in reward.last] == [r["response"]["steps"] for r in rows]
    assert reward.__name__ == "step_reward_prod"


def test_inputs_from_the_prompt_or_paths(reward_model, bench_rows, synth_dir):
    row = bench_rows[0]
    path = row["image"][0]
    with Image.open(synth_dir / path) as im:
        pil = im.convert("RGB")
    prompt = [{"role": "user", "content": [{"type": "image", "image": pil}, {"type": "text", "text": row["question"]}]}]
    completion = "\n\n".join(row["response"]["steps"])
    from_prompt = StepReward(reward_model)(prompts=[prompt], completions=[completion])
    from_paths = StepReward(reward_model, image_column="picture", image_root=synth_dir)(
        prompts=["ignored"], completions=[completion], picture=[path], question=[row["question"]])
    assert from_prompt == from_paths and math.isfinite(from_prompt[0])


def test_no_steps_gives_none_and_cut_steps_are_counted(trained_rm_dir, reward_model):
    first = reward_model.formatter.encode_text({"question": "2+2?", "steps": ["4"]}, image_sizes=[])
    short = load_reward_model(trained_rm_dir, dtype=torch.float32, max_length=len(first["input_ids"]) + 4)
    extra, metrics = {}, {}
    reward = StepReward(short, aggregate="mean")
    got = reward(prompts=["p"] * 4, completions=["4\n\n" + "x " * 40, "  \n\n ", "y " * 80, "4"],
                 question=["2+2?"] * 4, log_extra=lambda k, v: extra.setdefault(k, v),
                 log_metric=lambda k, v: metrics.setdefault(k, v), trainer_state=object())
    assert got[0] == pytest.approx(reward.last[0].step_scores[0]) and got[1:3] == [None, None]
    assert got[3] == got[0]  # the kept step of the first completion is the whole of the last one
    assert [s.n_cut for s in reward.last] == [1, 0, 1, 0]
    assert metrics == {"mprm/steps": 1.0, "mprm/steps_cut": 2.0, "mprm/no_reward": 0.5}
    assert extra["step_scores"][1] == "" and extra["step_scores"][0].endswith(" nan")


def test_clear_errors(reward_model, tmp_path):
    with pytest.raises(ValueError, match="aggregate must be one of"):
        StepReward(reward_model, aggregate="max")
    with pytest.raises(ValueError, match="image_column='pics'\\): the dataset has no such column; columns passed: \\['image'\\]"):
        StepReward(reward_model, image_column="pics")(prompts=["p"], completions=["a"], image=[None])
    with pytest.raises(ValueError, match="2 prompts for 1 completions"):
        StepReward(reward_model)(prompts=["p", "q"], completions=["a"])
    with pytest.raises(TypeError, match="model_or_dir must be a StepRewardModel"):
        StepReward(torch.nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError, match="is not a saved mprm reward model"):
        StepReward(tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a Qwen-VL checkpoint folder"):
        image_only_processor(tmp_path)


def test_loads_a_saved_folder_beside_the_process(trained_rm_dir, reward_model):
    reward = StepReward(trained_rm_dir, dtype="float32")
    assert reward.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert not reward.model.training and "qwen2_5_vl" in repr(reward)
    same = StepReward(reward_model, device=reward.device)
    assert reward(prompts=["p"], completions=[SOLUTION], question=["How many red shapes?"]) == \
        same(prompts=["p"], completions=[SOLUTION], question=["How many red shapes?"])


def test_loads_whole_under_an_active_zero3_config(trained_rm_dir, reward_model):
    from transformers.integrations import HfDeepSpeedConfig, is_deepspeed_zero3_enabled

    config = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1})
    assert is_deepspeed_zero3_enabled()
    reward = StepReward(trained_rm_dir, dtype="float32", device="cpu")
    assert is_deepspeed_zero3_enabled()  # set aside only while loading
    assert not any(hasattr(p, "ds_id") for p in reward.model.parameters())
    kwargs = {"prompts": ["p"], "completions": [SOLUTION], "question": ["How many red shapes?"]}
    assert reward(**kwargs) == StepReward(reward_model)(**kwargs)
    del config
