"""In-memory pictures in the public scoring API: a PIL image scores exactly as its file does."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from mprm.models import load_reward_model, score_batch

STEPS = ["Top left: a red square. Red so far: 1.", "So there is 1 red shape.", "The answer is 1."]


def _examples(images):
    return [
        {"id": "one", "images": images[:1], "question": "How many red shapes are there?", "steps": STEPS},
        {"id": "two", "images": images, "question": "<image 1> <image 2> Which is red?", "steps": STEPS[:2]},
        {"id": "text", "images": [], "question": "No picture: 3 * 3?", "steps": ["9", "Answer: 9"]},
    ]


def _pil(root, name):
    with Image.open(root / name) as im:
        im.load()
        return im


@pytest.mark.parametrize("multi_image", ["canvas", "separate"])
def test_pil_images_score_exactly_as_their_files(trained_rm_dir, pictures, multi_image):
    model = load_reward_model(trained_rm_dir, dtype=torch.float32, multi_image=multi_image)
    names = ["red.png", "stripes.png"]
    by_path = score_batch(model, _examples(names), image_root=pictures, batch_size=3)
    by_pil = score_batch(model, _examples([_pil(pictures, n) for n in names]), batch_size=3)
    mixed = score_batch(model, _examples([_pil(pictures, "red.png"), "stripes.png"]), image_root=pictures, batch_size=3)
    assert by_pil == by_path and mixed == by_path
    assert [len(s) for s in by_path] == [3, 2, 2]


def test_non_rgb_picture_is_converted_the_same_way(reward_model, pictures):
    ex = {"id": "grey", "question": "What colour is it?", "steps": ["It is grey."]}
    by_path = score_batch(reward_model, [{**ex, "images": ["grey.png"]}], image_root=pictures)
    by_pil = score_batch(reward_model, [{**ex, "images": [_pil(pictures, "grey.png")]}])
    assert by_pil == by_path


def test_bad_image_value_is_named(reward_model):
    with pytest.raises(TypeError, match="item bad: an image must be a PIL image or a path, got int"):
        score_batch(reward_model, [{"id": "bad", "images": [Image.new("RGB", (8, 8)), 3], "question": "?",
                                    "steps": ["a"]}])


def test_first_step_too_long_raises_or_scores_nan(trained_rm_dir, reward_model, pictures):
    ok = {"id": "ok", "images": [], "question": "2+2?", "steps": ["4", "x " * 40]}
    first = reward_model.formatter.encode_text({**ok, "steps": ["4"]}, image_sizes=[])
    model = load_reward_model(trained_rm_dir, dtype=torch.float32, max_length=len(first["input_ids"]) + 4)
    long = {"id": "long", "images": [_pil(pictures, "red.png")], "question": "2+2?", "steps": ["y " * 80, "4"]}
    with pytest.raises(ValueError, match="item long: the prompt and its first step take"):
        score_batch(model, [ok, long])
    scores = score_batch(model, [ok, long], too_long="nan")
    assert math.isfinite(scores[0][0]) and math.isnan(scores[0][1])  # the second step of ok is cut
    assert len(scores[1]) == 2 and all(math.isnan(x) for x in scores[1])
    with pytest.raises(ValueError, match="too_long must be one of raise, nan"):
        score_batch(model, [ok], too_long="skip")
