"""Which examples each process sees, per optimiser step: deterministic, length-grouped, resumable.

The plan is a pure function of (number of examples, lengths, seed, epoch, batch sizes, world
size): every rank computes the same plan without communication. Each epoch draws a seeded
permutation; optimiser step ``s`` takes the next ``global_batch_size`` examples of it (the last
incomplete global batch is dropped, decisions.md D-TRAIN-2). With ``group_by_length`` the examples
of one optimiser step are sorted by token length (longest first, stable) before being cut into
micro batches, so padding stays low (METHOD.md 6: length-grouped batches) while the *set* of
examples per optimiser step is exactly that of random batching: under ``optimizer_step`` loss
normalisation the update is the same either way, only padding changes.

Micro batch ``j`` of a step (in sorted order) goes to accumulation slot ``j // world`` of rank
``j % world``: at every slot all ranks hold similar lengths and wait little for each other.

The data cursor is the number of completed optimiser steps; resuming from it replays nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import numpy as np


class BatchPlan:
    """The assignment of examples to optimiser steps, accumulation slots, ranks and micro batches."""

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        global_batch_size: int,
        micro_batch_size: int,
        world_size: int,
        seed: int,
        epochs: int = 1,
        max_steps: int = 0,
        group_by_length: bool = True,
    ) -> None:
        per_slot = micro_batch_size * world_size
        if global_batch_size % per_slot:
            raise ValueError(f"global_batch_size {global_batch_size} is not a multiple of micro x world = {per_slot}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.n = len(self.lengths)
        self.global_batch_size = global_batch_size
        self.micro_batch_size = micro_batch_size
        self.world_size = world_size
        self.accumulation = global_batch_size // per_slot
        self.seed = seed
        self.epochs = epochs
        self.group_by_length = group_by_length
        self.steps_per_epoch = self.n // global_batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{self.n} training examples are fewer than train.global_batch_size = {global_batch_size}: "
                "lower the global batch size or add data")
        full = self.steps_per_epoch * epochs
        self.total_steps = min(full, max_steps) if max_steps > 0 else full
        self._perms: dict[int, np.ndarray] = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n)}
        return self._perms[epoch]

    def step_micro_batches(self, step: int) -> np.ndarray:
        """Indices of optimiser step ``step``, shaped ``(accumulation, world, micro)``."""
        if not 0 <= step < self.total_steps:
            raise IndexError(f"optimiser step {step} outside [0, {self.total_steps})")
        epoch, k = divmod(step, self.steps_per_epoch)
        g = self.global_batch_size
        idx = self._permutation(epoch)[k * g:(k + 1) * g]
        if self.group_by_length:
            idx = idx[np.argsort(-self.lengths[idx], kind="stable")]
        return idx.reshape(self.accumulation, self.world_size, self.micro_batch_size)

    def rank_batches(self, rank: int, start_step: int = 0) -> Iterator[list[int]]:
        """Micro batches of ``rank`` from optimiser step ``start_step`` (the resume cursor) on."""
        for step in range(start_step, self.total_steps):
            for slot in self.step_micro_batches(step)[:, rank]:
                yield [int(i) for i in slot]

    def step_total(self, step: int, per_example: Sequence[int] | np.ndarray) -> int:
        """Sum of a per-example count over every example of optimiser step ``step`` (all ranks)."""
        return int(np.asarray(per_example)[self.step_micro_batches(step)].sum())

    def padding(self, step: int) -> tuple[int, int]:
        """(real tokens, padded tokens) of optimiser step ``step`` over all ranks."""
        lens = self.lengths[self.step_micro_batches(step)]
        return int(lens.sum()), int(lens.max(axis=-1).sum() * self.micro_batch_size)


class RankBatchSampler:
    """A DataLoader ``batch_sampler`` serving one rank's micro batches from a cursor."""

    def __init__(self, plan: BatchPlan, rank: int, start_step: int = 0) -> None:
        self.plan, self.rank, self.start_step = plan, rank, start_step

    def __iter__(self) -> Iterator[list[int]]:
        return self.plan.rank_batches(self.rank, self.start_step)

    def __len__(self) -> int:
        return (self.plan.total_steps - self.start_step) * self.plan.accumulation
