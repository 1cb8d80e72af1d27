"""Learning-rate schedule: linear warm-up, then cosine decay to 0 (METHOD.md 6).

The schedule is a pure function of the optimiser step, so a checkpoint only needs the step to
restore it, and the trainer sets the rate on the optimiser's parameter groups itself before each
step (identical under DDP and DeepSpeed, where accelerate would otherwise wrap schedulers
differently).
"""

from __future__ import annotations

import math


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Number of warm-up steps: ``ceil(ratio * total)`` (5% of the run in the paper)."""
    if total_steps <= 0:
        raise ValueError(f"total_steps = {total_steps}: must be > 0")
    return math.ceil(warmup_ratio * total_steps)


def lr_at(step: int, *, peak_lr: float, total_steps: int, warmup_ratio: float, min_lr: float = 0.0) -> float:
    """Learning rate used for optimiser step ``step`` (0-based).

    Warm-up: ``peak * (step + 1) / W`` for ``step < W`` so the first update is not wasted at 0.
    Then cosine: ``min + (peak - min) * 0.5 * (1 + cos(pi * p))`` with
    ``p = (step - W) / (total - W)``, which starts at the peak and reaches ``min`` after the last step.
    """
    w = warmup_steps(total_steps, warmup_ratio)
    if step < w:
        return peak_lr * (step + 1) / w
    decay = max(1, total_steps - w)
    progress = min(1.0, (step - w) / decay)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
