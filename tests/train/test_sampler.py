"""Batch plan: deterministic, length-grouped within an optimiser step, resumable, rank-disjoint;
and the loss normalisation it feeds (loop.micro_batch_loss)."""

from __future__ import annotations

import numpy as np
import torch

from mprm.train.loop import micro_batch_loss
from mprm.train.sampler import BatchPlan, RankBatchSampler

LENGTHS = [5, 1, 9, 3, 7, 2, 8, 6, 4, 10, 11, 12, 13]  # 13 examples


def plan(**kw) -> BatchPlan:
    args = dict(global_batch_size=4, micro_batch_size=1, world_size=2, seed=0, epochs=2)
    args.update(kw)
    return BatchPlan(LENGTHS, **args)


def test_geometry_and_drop_last():
    p = plan()
    assert (p.accumulation, p.steps_per_epoch, p.total_steps) == (2, 3, 6)  # 13 // 4 = 3 per epoch, 1 dropped
    assert plan(max_steps=4).total_steps == 4
    assert p.step_micro_batches(0).shape == (2, 2, 1)


def test_deterministic_per_seed_and_epoch():
    a, b = plan(), plan()
    for s in range(6):
        assert np.array_equal(a.step_micro_batches(s), b.step_micro_batches(s))
    first_epoch = np.concatenate([a.step_micro_batches(s).ravel() for s in range(3)])
    second_epoch = np.concatenate([a.step_micro_batches(s).ravel() for s in range(3, 6)])
    assert len(set(first_epoch.tolist())) == 12 and len(set(second_epoch.tolist())) == 12
    assert not np.array_equal(first_epoch, second_epoch)
    assert not np.array_equal(plan(seed=1).step_micro_batches(0), a.step_micro_batches(0))


def test_length_grouping_keeps_each_steps_set_and_sorts_it():
    grouped, rand = plan(group_by_length=True), plan(group_by_length=False)
    lengths = np.asarray(LENGTHS)
    for s in range(6):
        g, r = grouped.step_micro_batches(s), rand.step_micro_batches(s)
        assert sorted(g.ravel().tolist()) == sorted(r.ravel().tolist())
        flat = lengths[g.reshape(-1)]  # slot-major, rank-minor = sorted order
        assert list(flat) == sorted(flat, reverse=True)


def test_padding_counts_by_hand():
    p = BatchPlan([1, 2, 3, 10], global_batch_size=4, micro_batch_size=2, world_size=1, seed=0)
    # sorted: 10, 3 | 2, 1 -> padded 2*10 + 2*2 = 24, real 16
    assert p.padding(0) == (16, 24)
    assert p.step_total(0, [1, 1, 2, 5]) == 9


def test_ranks_are_disjoint_and_resume_replays_nothing():
    p = plan()
    r0 = list(RankBatchSampler(p, 0))
    r1 = list(RankBatchSampler(p, 1))
    assert len(r0) == len(r1) == 12 == len(RankBatchSampler(p, 0))
    for s in range(6):
        a = {i for b in r0[2 * s:2 * s + 2] for i in b}
        b = {i for b in r1[2 * s:2 * s + 2] for i in b}
        assert not a & b
    resumed = list(RankBatchSampler(p, 0, start_step=4))
    assert resumed == r0[8:] and len(RankBatchSampler(p, 0, start_step=4)) == 4


def test_optimizer_step_normalisation_equals_one_process_gradient():
    """Two ranks x two micro batches, gradients averaged over ranks (as DDP does) and each loss
    divided by the accumulation count (as accelerate does), equal the gradient of the mean loss over
    all labelled steps of the optimiser step computed in one piece."""
    torch.manual_seed(0)
    w = torch.randn(3, requires_grad=True)
    x = torch.randn(10, 3)
    y = (torch.rand(10) > 0.5).float()
    micro = [[0, 1, 2], [3], [4, 5, 6, 7, 8], [9]]  # uneven labelled counts per micro batch
    rank_of = [0, 1, 0, 1]

    def loss_sum(idx):
        z = x[idx] @ w
        return torch.nn.functional.binary_cross_entropy_with_logits(z, y[idx], reduction="sum")

    full = torch.autograd.grad(loss_sum(list(range(10))) / 10, w)[0]
    grads = [torch.zeros(3), torch.zeros(3)]
    for idx, r in zip(micro, rank_of):
        loss = micro_batch_loss(loss_sum(idx), torch.tensor(len(idx)), mode="optimizer_step", step_total=10,
                                world_size=2, accumulation=2)
        grads[r] += torch.autograd.grad(loss / 2, w)[0]  # accelerate: / accumulation
    assert torch.allclose((grads[0] + grads[1]) / 2, full, atol=1e-6)  # DDP: mean over ranks

    paper = micro_batch_loss(loss_sum([3]), torch.tensor(1), mode="micro_batch", step_total=10, world_size=2,
                             accumulation=2)
    assert torch.allclose(paper, loss_sum([3]))
