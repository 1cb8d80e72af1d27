"""The reward head: loss by hand, trainable parts, LM head only on <prm> rows, linear head."""

from __future__ import annotations

import math

import pytest
import torch

from mprm.models import IGNORE_LABEL, build_reward_model, get_head, head_names


def _head(name: str):
    return get_head(name)(hidden_size=4, yes_id=0, no_id=1, dtype=torch.float32)


def test_yes_no_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [5.0, -5.0]])
    targets = torch.tensor([1.0, 0.0, 0.25, IGNORE_LABEL])
    loss_sum, n = _head("yes_no").loss(logits, targets)
    # log(1 + e^-2) + log(1 + e^-1) + log 2; the ignored step adds nothing
    assert n.item() == 3
    assert loss_sum.item() == pytest.approx(0.12692801 + 0.31326169 + 0.69314718, abs=1e-6)
    assert _head("yes_no").scores(logits).tolist() == pytest.approx([0.88079708, 0.26894142, 0.5, 0.9999546], abs=1e-6)


def test_linear_loss_by_hand():
    logits = torch.tensor([0.0, 2.0, -3.0])
    targets = torch.tensor([1.0, 0.0, IGNORE_LABEL])
    loss_sum, n = _head("linear").loss(logits, targets)
    assert n.item() == 2
    assert loss_sum.item() == pytest.approx(math.log(2) + math.log(1 + math.exp(2)), abs=1e-6)
    assert _head("linear").scores(logits).tolist() == pytest.approx([0.5, 0.88079708, 0.04742587], abs=1e-6)


def test_no_labels_gives_zero_loss_with_graph():
    logits = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss_sum, n = _head("yes_no").loss(logits, torch.tensor([IGNORE_LABEL]))
    assert n.item() == 0 and loss_sum.item() == 0.0 and loss_sum.requires_grad


def test_forward_loss_matches_logits(reward_model, examples, image_root):
    f = reward_model.formatter
    batch = f.collate([f.encode(ex, image_root) for ex in examples])
    out = reward_model(**batch)
    assert out.logits.shape == (6, 2) and out.scores.shape == (6,)
    expected, n = _head("yes_no").loss(out.logits.detach(), batch["prm_labels"])
    assert out.n_labelled.item() == n.item() == 5
    assert out.loss_sum.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.scores.tolist() == pytest.approx(torch.softmax(out.logits.detach(), -1)[:, 0].tolist(), abs=1e-6)


def test_gradients_only_in_trainable_parts(reward_model, examples, image_root):
    spec = reward_model.spec
    f = reward_model.formatter
    reward_model(**f.collate([f.encode(ex, image_root) for ex in examples])).loss_sum.backward()
    parts = {"vision": 0, "projector": 0, "language": 0}
    for name, p in reward_model.hf_model.named_parameters():
        part = spec.part_of(name)
        if part == "vision":
            assert not p.requires_grad and p.grad is None, name
        elif p.grad is not None and p.grad.abs().sum() > 0:
            parts[part] += 1
    assert parts["projector"] > 0 and parts["language"] > 0 and parts["vision"] == 0
    names = reward_model.trainable_parameter_names()
    assert not any(spec.part_of(n.removeprefix("backbone.")) == "vision" for n in names)


def test_unfrozen_vision_gets_gradients(tiny_dir, examples, image_root):
    m = build_reward_model(tiny_dir, freeze_vision=False)
    f = m.formatter
    m(**f.collate([f.encode(examples[0], image_root)])).loss_sum.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for n, p in m.hf_model.named_parameters() if m.spec.part_of(n) == "vision")


def test_lm_head_sees_only_prm_rows(reward_model, examples, image_root):
    f = reward_model.formatter
    batch = f.collate([f.encode(ex, image_root) for ex in examples])
    seen = []
    lm_head = reward_model.hf_model.get_output_embeddings()
    handle = lm_head.register_forward_hook(lambda mod, inp, out: seen.append((tuple(inp[0].shape), tuple(out.shape))))
    try:
        reward_model(**batch)
    finally:
        handle.remove()
    hidden = reward_model.config.get_text_config().hidden_size
    assert seen == [((6, hidden), (6, lm_head.weight.shape[0]))]


def test_prm_token_added_and_initialised_to_mean(tiny_dir):
    from transformers import AutoTokenizer

    base_tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    m = build_reward_model(tiny_dir)
    prm = m.formatter.prm_token_id
    assert prm == len(base_tok)
    emb = m.hf_model.get_input_embeddings().weight
    assert emb.shape[0] == -(-(len(base_tok) + 1) // 64) * 64  # grown once, padded to a multiple of 64
    assert torch.allclose(emb[prm], emb[:len(base_tok)].mean(0), atol=1e-6)
    assert m.tokenizer.convert_ids_to_tokens(m.yes_id) == "Yes" and m.tokenizer.convert_ids_to_tokens(m.no_id) == "No"


def test_prm_token_takes_a_free_row_without_resizing(tiny_qwen_dir, tmp_path):
    """A checkpoint whose embedding has rows past its tokenizer (the real Qwen2.5-VL) keeps its size."""
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_qwen_dir)
    tok = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    base.resize_token_embeddings(len(tok) + 10, mean_resizing=False)
    base.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_bytes((tiny_qwen_dir / "preprocessor_config.json").read_bytes())
    m = build_reward_model(tmp_path)
    assert m.formatter.prm_token_id == len(tok)
    assert m.hf_model.get_input_embeddings().weight.shape[0] == len(tok) + 10
    assert m.hf_model.get_output_embeddings().weight.shape[0] == len(tok) + 10


def test_linear_head(tiny_dir, examples, image_root):
    torch.manual_seed(0)
    m = build_reward_model(tiny_dir, head="linear")
    f = m.formatter
    batch = f.collate([f.encode(ex, image_root) for ex in examples])
    seen = []
    handle = m.hf_model.get_output_embeddings().register_forward_hook(lambda *a: seen.append(1))
    out = m(**batch)
    handle.remove()
    assert seen == [] and out.logits.shape == (6,)
    expected, _ = _head("linear").loss(out.logits.detach(), batch["prm_labels"])
    assert out.loss_sum.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.scores.tolist() == pytest.approx(torch.sigmoid(out.logits.detach()).tolist(), abs=1e-6)
    out.loss_sum.backward()
    assert m.score_head.weight.grad.abs().sum() > 0
    assert "score_head.weight" in m.trainable_parameter_names()


def test_gradient_checkpointing_same_loss(tiny_dir, examples, image_root):
    plain = build_reward_model(tiny_dir)
    ckpt = build_reward_model(tiny_dir, gradient_checkpointing=True)
    f = plain.formatter
    batch = f.collate([f.encode(ex, image_root) for ex in examples])
    ckpt.train()
    a, b = plain(**batch).loss_sum, ckpt(**batch).loss_sum
    b.backward()
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    assert any(getattr(mod, "gradient_checkpointing", False) for mod in ckpt.hf_model.modules())


def test_unknown_backbone_and_head(tiny_dir):
    with pytest.raises(ValueError, match="head='mlp'"):
        build_reward_model(tiny_dir, head="mlp")
    with pytest.raises(KeyError, match="unknown backbone 'llava'"):
        build_reward_model(tiny_dir, backbone="llava")
