"""A registered head that reads more than the ``<prm>`` states trains through the unchanged formatter
and forward: its logits come from the batch it gets (``HeadInputs``), checked by hand against the
backbone's own ``output_hidden_states``; it saves and loads by its registered name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mprm.models import HeadInputs, build_reward_model, head_names, load_reward_model, register_head, unregister_head
from mprm.models.heads import LinearHead

NAME = "step_mean_test"


class StepMeanHead(LinearHead):
    """The linear head on the mean hidden state of each step: the positions after the previous
    ``<prm>`` of the same sequence (the sequence start for the first step) up to this ``<prm>``."""

    def logits(self, inputs: HeadInputs, lm_head: torch.nn.Module) -> torch.Tensor:
        b, pos = inputs.prm_batch, inputs.prm_pos
        h = inputs.hidden.float()
        csum = torch.cat([h.new_zeros(h.shape[0], 1, h.shape[2]), h.cumsum(1)], dim=1)  # csum[:, t] = sum of h[:, :t]
        first = torch.ones_like(b, dtype=torch.bool)
        first[1:] = b[1:] != b[:-1]
        start = torch.where(first, torch.zeros_like(pos), torch.roll(pos, 1) + 1)
        mean = (csum[b, pos + 1] - csum[b, start]) / (pos + 1 - start).unsqueeze(-1)
        return F.linear(mean.to(self.weight.dtype), self.weight, self.bias).squeeze(-1)


@pytest.fixture()
def step_mean_head():
    register_head(NAME, StepMeanHead)
    yield NAME
    unregister_head(NAME)
    assert NAME not in head_names()


def _by_hand(model, batch) -> torch.Tensor:
    """The head's logits from the backbone's own hidden states, one step at a time: the ``<prm>``
    tokens found in ``input_ids`` (not the batch's ``prm_positions``)."""
    keys = ("input_ids", "attention_mask", *model.spec.forward_keys)
    with torch.no_grad():
        out = model.hf_model(**{k: batch[k] for k in keys if batch.get(k) is not None}, output_hidden_states=True)
    hidden = out.hidden_states[-1]
    w, bias = model.score_head.weight.detach()[0], model.score_head.bias.detach()[0]
    logits = []
    for b in range(batch["input_ids"].shape[0]):
        start = 0
        for p in (batch["input_ids"][b] == model.formatter.prm_token_id).nonzero().flatten().tolist():
            logits.append(hidden[b, start:p + 1].mean(0) @ w + bias)
            start = p + 1
    return torch.stack(logits)


def test_a_head_beyond_prm_trains_and_saves(step_mean_head, tiny_dir, examples, image_root, tmp_path):
    torch.manual_seed(0)
    m = build_reward_model(tiny_dir, head=step_mean_head, dtype=torch.float32)
    f = m.formatter
    batch = f.collate([f.encode(ex, image_root) for ex in examples])
    out = m(**batch)
    assert out.logits.shape == (6,)
    assert out.logits.detach().tolist() == pytest.approx(_by_hand(m, batch).tolist(), abs=1e-5)
    # not the linear head on the <prm> states: the step's other tokens count
    at_prm = F.linear(m.hf_model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                       **{k: batch[k] for k in m.spec.forward_keys if batch.get(k) is not None}
                                       ).last_hidden_state[batch["prm_batch_index"], batch["prm_positions"]],
                      m.score_head.weight, m.score_head.bias).squeeze(-1)
    assert not torch.allclose(at_prm.detach(), out.logits.detach(), atol=1e-3)

    # two optimiser steps on this batch lower its loss; the head's weight and the LM get gradients
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        out = m(**batch)
        losses.append(out.loss.item())
        out.loss.backward()
        if len(losses) == 1:
            assert m.score_head.weight.grad.abs().sum() > 0
            assert m.hf_model.get_input_embeddings().weight.grad.abs().sum() > 0
        opt.step()
    assert losses[2] < losses[0], losses

    m.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "score_head.safetensors").is_file()
    loaded = load_reward_model(tmp_path / "saved", dtype=torch.float32)
    assert loaded.head == step_mean_head and isinstance(loaded.score_head, StepMeanHead)
    with torch.no_grad():
        assert loaded(**batch).logits.tolist() == pytest.approx(m(**batch).logits.detach().tolist(), abs=1e-5)
