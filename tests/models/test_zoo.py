"""The backbone zoo, every family on its tiny checkpoint (``mprm tiny --backbone NAME``): the
authors' layout through the family's own chat template, ``<prm>`` and labels, image tokens,
single pass == per prefix, batch == one by one, two optimiser steps that move only the trainable
parameters, save/load and LoRA round trips with equal scores.

The expected prompt prefixes are written out by hand from each family's published chat format
(ChatML; Gemma's ``<start_of_turn>``; Idefics3/SmolVLM's ``User:``/``Assistant:``; Mistral's
``[INST]``), not produced by mprm."""

from __future__ import annotations

import pytest
import torch

from mprm.models import IGNORE_LABEL, LoraSettings, build_reward_model, detect_backbone, get_backbone, load_reward_model
from mprm.models import score_batch
from mprm.models.backbones import INTERNVL_SYSTEM, QWEN_SYSTEM
from mprm.models.images import placeholder_for
from mprm.models.tiny import TINY_BACKBONES
from mprm.models.zoo import TINY

CHATML = "<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n"
PREFIX = {
    "qwen2_vl": CHATML.format(QWEN_SYSTEM),
    "qwen2_5_vl": CHATML.format(QWEN_SYSTEM),
    "qwen3_vl": "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n",
    "internvl": "<s>" + CHATML.format(INTERNVL_SYSTEM),
    "internvl_hf": CHATML.format(INTERNVL_SYSTEM),
    "internvl_internlm2": "<s>" + CHATML.format(INTERNVL_SYSTEM),
    "llava_onevision": CHATML.format(QWEN_SYSTEM),
    "gemma3": "<bos><start_of_turn>user\n<end_of_turn>\n<start_of_turn>model\n",
    "idefics3": "<|begin_of_text|>User: <end_of_utterance>\nAssistant: ",
    "smolvlm": "<|im_start|>User: <end_of_utterance>\nAssistant: ",
    "mistral3": f"<s>[SYSTEM_PROMPT]{QWEN_SYSTEM}[/SYSTEM_PROMPT][INST][/INST]",
}
#: What a family's vocabulary calls a word after a space: the head must read the bare entries.
SPACED_YES = {"gemma3": "▁Yes"} | {f: "ĠYes" for f in ("qwen2_vl", "qwen3_vl", "internvl_hf", "llava_onevision",
                                                      "idefics3", "smolvlm", "mistral3")}
TEXT_ONLY = {"id": "text", "images": [], "question": "No picture: 3 * 3?", "steps": ["9", "Answer: 9"],
             "labels": [1.0, 1.0]}


@pytest.fixture(params=TINY_BACKBONES)
def family(request) -> str:
    return request.param


@pytest.fixture()
def model(family, zoo_dir):
    torch.manual_seed(0)
    return build_reward_model(zoo_dir(family), dtype=torch.float32)


def test_every_tiny_family_is_a_registered_backbone(family, zoo_dir):
    assert set(TINY_BACKBONES) == set(TINY)
    backbone = TINY[family].backbone
    get_backbone(backbone)
    assert detect_backbone(zoo_dir(family)) == backbone


def test_the_authors_layout_in_the_familys_markup(model, family, examples, image_root):
    f, tok = model.formatter, model.tokenizer
    enc = f.encode_text(examples[0], image_root=image_root)
    ids, pos = enc["input_ids"], enc["prm_positions"]
    (w, h), = enc["image_sizes"]
    image = tok.decode(placeholder_for(f.images, w, h))
    assert tok.decode(ids) == (PREFIX[family] + image + "\nQuestion: image 1 What is 2+2?\nProcess: First, add the numbers."
                               "<prm>\n\n2 + 2 = 5.<prm>\n\nAnswer: 5<prm>")
    assert [ids[p] for p in pos] == [f.prm_token_id] * 3 and ids.count(f.prm_token_id) == 3 and pos[-1] == len(ids) - 1
    assert enc["labels"] == [1.0, 0.0, 0.0]
    assert ids.count(f.images.image_token_id) == sum(enc["image_token_counts"]) > 0
    assert f.encode_text(examples[1], image_root=image_root)["labels"] == [0.75, IGNORE_LABEL]
    bos = tok.bos_token_id
    assert bos is None or ids.count(bos) <= 1  # never two BOS (template and tokenizer)
    text = f.encode_text(TEXT_ONLY, image_sizes=[])
    assert tok.decode(text["input_ids"]).startswith(PREFIX[family] + "Question: No picture")


def test_yes_and_no_are_the_bare_vocabulary_entries(model, family):
    tok = model.tokenizer
    assert tok.convert_ids_to_tokens([model.yes_id, model.no_id]) == ["Yes", "No"]
    if family in SPACED_YES:  # " Yes" is another entry, which the head must not read
        assert SPACED_YES[family] in tok.get_vocab()
        assert tok(" Yes", add_special_tokens=False)["input_ids"][-1] != model.yes_id


def test_single_pass_equals_each_prefix(model, examples, image_root):
    ex = examples[0]
    full = score_batch(model, [ex], image_root=image_root)[0]
    alone = [score_batch(model, [{**ex, "steps": ex["steps"][:k], "labels": None}], image_root=image_root)[0][-1]
             for k in (1, 2, 3)]
    assert full == pytest.approx(alone, abs=1e-4)
    assert max(full) - min(full) > 1e-4


def test_batch_equals_one_by_one(model, family, examples, image_root, zoo_dir):
    items = examples + [TEXT_ONLY]
    batched = score_batch(model, items, image_root=image_root, batch_size=4)
    single = [score_batch(model, [ex], image_root=image_root, batch_size=1)[0] for ex in items]
    assert [len(s) for s in batched] == [3, 2, 1, 2]
    for b, s in zip(batched, single):
        assert b == pytest.approx(s, abs=1e-4)
    if get_backbone(model.backbone_name).multi_image:  # several images of one item, each its own placeholder
        separate = build_reward_model(zoo_dir(family), multi_image="separate", dtype=torch.float32)
        enc = separate.formatter.encode(examples[2], image_root)
        assert len(enc["image_token_counts"]) == 2
        batched = score_batch(separate, examples, image_root=image_root, batch_size=3)
        for b, ex in zip(batched, examples):
            assert b == pytest.approx(score_batch(separate, [ex], image_root=image_root)[0], abs=1e-4)


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _train(model, examples, image_root, steps: int = 2, lr: float = 1e-2) -> list[float]:
    f = model.formatter
    batch = f.collate([f.encode(ex, image_root) for ex in examples])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    losses = []
    model.train()
    for _ in range(steps):
        out = model(**batch)
        (out.loss_sum / out.n_labelled).backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(out.loss.detach()))
    return losses


def test_two_steps_move_only_trainable_parameters_and_save_load_scores_equal(model, examples, image_root, tmp_path):
    spec = model.spec
    before = _snapshot(model)
    trainable = set(model.trainable_parameter_names())
    assert trainable and not any(spec.part_of(n.removeprefix("backbone.")) == "vision" for n in trainable)
    _train(model, examples, image_root)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert moved <= trainable
    parts = {spec.part_of(n.removeprefix("backbone.")) for n in moved}
    assert {"language", "projector"} <= parts
    scores = score_batch(model, examples, image_root=image_root)
    out = model.save_pretrained(tmp_path / "rm")
    loaded = load_reward_model(out, dtype=torch.float32)
    assert loaded.backbone_name == model.backbone_name
    assert loaded.formatter.prefix_ids == model.formatter.prefix_ids
    assert loaded.formatter.images.settings == model.formatter.images.settings
    for got, want in zip(score_batch(loaded, examples, image_root=image_root), scores):
        assert got == pytest.approx(want, abs=1e-5)


def test_lora_round_trip(family, zoo_dir, examples, image_root, tmp_path):
    torch.manual_seed(2)
    m = build_reward_model(zoo_dir(family), lora=LoraSettings(r=4, alpha=8, dropout=0.0), dtype=torch.float32)
    names = m.trainable_parameter_names()
    adapters = [n for n in names if "lora_A" in n]
    assert adapters and all(m.spec.part_of(n.removeprefix("backbone.base_model.model.")) == "language" for n in adapters)
    assert any(m.spec.lm_head in n for n in names)
    base = score_batch(m, examples, image_root=image_root)
    _train(m, examples, image_root, steps=1, lr=5e-2)
    scores = score_batch(m, examples, image_root=image_root)
    assert scores[0] != pytest.approx(base[0], abs=1e-5)
    m.save_pretrained(tmp_path / "lora")
    loaded = load_reward_model(tmp_path / "lora", dtype=torch.float32)
    assert loaded.lora is not None
    for got, want in zip(score_batch(loaded, examples, image_root=image_root), scores):
        assert got == pytest.approx(want, abs=1e-5)
    m.save_pretrained(tmp_path / "merged", merge=True)  # tied families (Gemma 3) come back untied
    merged = load_reward_model(tmp_path / "merged", dtype=torch.float32)
    for got, want in zip(score_batch(merged, examples, image_root=image_root), scores):
        assert got == pytest.approx(want, abs=1e-4)
