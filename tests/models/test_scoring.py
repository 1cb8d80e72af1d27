"""Single-pass scoring: one pass == per step prefix, padded batch == one by one (fp32, 1e-4)."""

from __future__ import annotations

import math

import pytest
import torch

from mprm.models import build_reward_model, score_batch


def test_single_pass_equals_each_prefix(reward_model, examples, image_root):
    ex = examples[0]
    full = score_batch(reward_model, [ex], image_root=image_root)[0]
    assert len(full) == 3
    prefixes = [{**ex, "steps": ex["steps"][:k], "labels": ex["labels"][:k]} for k in (1, 2, 3)]
    alone = [score_batch(reward_model, [p], image_root=image_root)[0][-1] for p in prefixes]
    assert full == pytest.approx(alone, abs=1e-4)
    assert max(full) - min(full) > 1e-3  # the steps do get different scores


def test_padded_batch_equals_one_by_one(reward_model, examples, image_root):
    text_only = {"id": "text", "images": [], "question": "No picture: 3 * 3?", "steps": ["9", "Answer: 9"]}
    items = examples + [text_only]
    batched = score_batch(reward_model, items, image_root=image_root, batch_size=4)
    single = [score_batch(reward_model, [ex], image_root=image_root, batch_size=1)[0] for ex in items]
    assert [len(s) for s in batched] == [3, 2, 1, 2]
    for b, s in zip(batched, single):
        assert b == pytest.approx(s, abs=1e-4)


def test_separate_images_batch_equals_one_by_one(tiny_dir, examples, image_root):
    m = build_reward_model(tiny_dir, multi_image="separate", dtype=torch.float32)
    batched = score_batch(m, examples, image_root=image_root, batch_size=3)
    single = [score_batch(m, [ex], image_root=image_root)[0] for ex in examples]
    for b, s in zip(batched, single):
        assert b == pytest.approx(s, abs=1e-4)


def test_truncated_steps_score_nan_and_mode_restored(tiny_dir, examples, image_root):
    m = build_reward_model(tiny_dir)
    pos = m.formatter.encode_text(examples[0], image_root=image_root)["prm_positions"]
    short = build_reward_model(tiny_dir, max_length=pos[1] + 1)
    short.train()
    scores = score_batch(short, [examples[0]], image_root=image_root)[0]
    assert short.training
    assert len(scores) == 3 and math.isnan(scores[2])
    assert scores[:2] == pytest.approx(score_batch(m, [examples[0]], image_root=image_root)[0][:2], abs=1e-4)
