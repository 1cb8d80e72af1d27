"""The one formatting path: <prm> count, label alignment, truncation, image tags and canvases."""

from __future__ import annotations

import pytest
from PIL import Image

from mprm.models import IGNORE_LABEL, clean_question
from mprm.models.images import canvas_layout, canvas_size, make_canvas


def test_clean_question():
    assert clean_question("<image>\nWhat is x?") == "What is x?"
    assert clean_question("In <image 1> and <image_2>, compare <image3>.") == "In image 1 and image 2, compare image 3."
    assert clean_question("Look: <image> then answer") == "Look: then answer"


def test_prm_count_labels_and_step_text(reward_model, examples, image_root):
    f = reward_model.formatter
    tok = reward_model.tokenizer
    enc = f.encode_text(examples[0], image_root=image_root)
    ids, pos = enc["input_ids"], enc["prm_positions"]
    assert len(pos) == 3 and enc["n_steps"] == 3 and enc["n_steps_cut"] == 0
    assert [ids[p] for p in pos] == [f.prm_token_id] * 3
    assert ids.count(f.prm_token_id) == 3
    assert pos[-1] == len(ids) - 1  # the sequence ends at the last <prm>
    assert enc["labels"] == [1.0, 0.0, 0.0]
    assert tok.decode(ids[pos[0] + 1:pos[1]]) == "\n\n2 + 2 = 5."
    assert tok.decode(ids[pos[1] + 1:pos[2]]) == "\n\nAnswer: 5"
    assert tok.decode(ids[:pos[0]]).endswith("Question: image 1 What is 2+2?\nProcess: First, add the numbers.")
    assert ids.count(f.images.image_token_id) == sum(enc["image_token_counts"])

    enc2 = f.encode_text(examples[1], image_root=image_root)
    assert enc2["labels"] == [0.75, IGNORE_LABEL]  # benchmark neutral -1 -> ignored


def test_labels_missing_or_invalid(reward_model, examples, image_root):
    f = reward_model.formatter
    ex = {**examples[0]}
    del ex["labels"]
    assert f.encode_text(ex, image_root=image_root)["labels"] == [IGNORE_LABEL] * 3
    with pytest.raises(ValueError, match=r"item one: labels\[1\] = 2"):
        f.encode_text({**examples[0], "labels": [1, 2, 0]}, image_root=image_root)
    with pytest.raises(ValueError, match="item one: 2 labels for 3 steps"):
        f.encode_text({**examples[0], "labels": [1, 0]}, image_root=image_root)


def test_special_tokens_in_text_are_plain_text(reward_model, examples, image_root):
    f = reward_model.formatter
    ex = {**examples[0], "question": "what <|image_pad|> <IMG_CONTEXT> is", "steps": ["a <prm> b", "c"], "labels": None}
    enc = f.encode_text(ex, image_root=image_root)
    assert enc["input_ids"].count(f.prm_token_id) == 2
    assert enc["input_ids"].count(f.images.image_token_id) == sum(enc["image_token_counts"])


def test_truncation_cuts_whole_trailing_steps(reward_model, examples, image_root):
    f = reward_model.formatter
    full = f.encode_text(examples[0], image_root=image_root)
    pos = full["prm_positions"]
    two = f.encode_text(examples[0], image_root=image_root, max_length=pos[1] + 1)
    assert two["n_steps"] == 2 and two["n_steps_cut"] == 1
    assert two["input_ids"] == full["input_ids"][:pos[1] + 1]
    assert two["prm_positions"] == pos[:2] and two["labels"] == [1.0, 0.0]
    one = f.encode_text(examples[0], image_root=image_root, max_length=pos[1])
    assert one["n_steps"] == 1 and one["n_steps_cut"] == 2 and one["labels"] == [1.0]
    with pytest.raises(ValueError, match=rf"item one: the prompt and its first step take {pos[0] + 1} tokens, more than max_length {pos[0]}"):
        f.encode_text(examples[0], image_root=image_root, max_length=pos[0])


def test_separator_prm_only(tiny_dir, examples, image_root):
    from mprm.models import build_reward_model

    m = build_reward_model(tiny_dir, separator="<prm>")
    enc = m.formatter.encode_text(examples[0], image_root=image_root)
    pos = enc["prm_positions"]
    assert m.tokenizer.decode(enc["input_ids"][pos[0] + 1:pos[1]]) == "2 + 2 = 5."
    with pytest.raises(ValueError, match="exactly once"):
        build_reward_model(tiny_dir, separator="\n\n")


def test_missing_image_names_item_and_path(reward_model, image_root):
    ex = {"id": "lost", "images": ["nope.png"], "question": "q", "steps": ["s"]}
    with pytest.raises(FileNotFoundError, match=r"item lost: image .*nope.png not found"):
        reward_model.formatter.load_images(ex, image_root)
    with pytest.raises(FileNotFoundError, match="item lost"):
        reward_model.formatter.encode_text(ex, image_root=image_root)


def test_image_sizes_must_match_pixels(reward_model, examples, image_root):
    f = reward_model.formatter
    enc = f.encode_text(examples[1], image_sizes=[(60, 40)])
    stripes = f.load_images(examples[1], image_root)
    if f.images.num_tokens(60, 40) != f.images.num_tokens(*stripes[0].size):
        with pytest.raises(ValueError, match="item two: images take"):
            f.attach_images(enc, stripes)
    with pytest.raises(ValueError, match="item two: 2 images for 1 image placeholders"):
        f.attach_images(enc, stripes * 2)


def test_canvas_layout_by_hand():
    sizes = [(60, 40), (30, 90), (50, 50), (20, 20)]
    assert canvas_layout(sizes) == (3, 2, 60, 90)
    assert canvas_size(sizes) == (180, 180)
    assert canvas_size(sizes[:2], max_columns=1) == (60, 180)
    imgs = [Image.new("RGB", s, (200, 10, 10)) for s in sizes]
    canvas = make_canvas(imgs)
    assert canvas.size == (180, 180)
    assert canvas.getpixel((0, 25)) == (200, 10, 10)  # first image centred vertically in a 90-px cell
    assert canvas.getpixel((0, 0)) == (255, 255, 255)
    assert canvas.getpixel((60 + 15, 0)) == (200, 10, 10)  # second image: 30 px wide, centred at x 75..105


def test_multi_image_canvas_and_separate(tiny_dir, examples, image_root):
    from mprm.models import build_reward_model

    canvas = build_reward_model(tiny_dir, multi_image="canvas").formatter
    enc = canvas.encode(examples[2], image_root)
    assert enc["image_sizes"] == [[120, 90]] and len(enc["image_token_counts"]) == 1
    separate = build_reward_model(tiny_dir, multi_image="separate").formatter
    enc = separate.encode(examples[2], image_root)
    assert enc["image_sizes"] == [[60, 40], [30, 90]] and len(enc["image_token_counts"]) == 2
    assert enc["input_ids"].count(separate.images.image_token_id) == sum(enc["image_token_counts"])


def test_collate_pads_right_and_flattens_prm(reward_model, examples, image_root):
    f = reward_model.formatter
    items = [f.encode(ex, image_root) for ex in examples]
    batch = f.collate(items)
    lengths = [len(it["input_ids"]) for it in items]
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["prm_batch_index"].tolist() == [0, 0, 0, 1, 1, 2]
    assert batch["prm_counts"].tolist() == [3, 2, 1]
    assert batch["prm_labels"].tolist() == [1.0, 0.0, 0.0, 0.75, IGNORE_LABEL, 1.0]
    for b, p in zip(batch["prm_batch_index"].tolist(), batch["prm_positions"].tolist()):
        assert batch["input_ids"][b, p].item() == f.prm_token_id
    short = lengths.index(min(lengths))
    assert (batch["input_ids"][short, min(lengths):] == f.pad_token_id).all()
    with pytest.raises(ValueError, match="call attach_images first"):
        f.collate([f.encode_text(examples[0], image_root=image_root)])
