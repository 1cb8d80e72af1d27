"""Single-pass step scoring (METHOD.md 6 and 7).

Every step of a rollout is scored in one forward pass: each step is followed by ``<prm>`` and the
model is causal, so the score at the k-th ``<prm>`` equals the score of the k-step prefix on its
own (tests/models/test_scoring.py checks it). Padded batches equal one-by-one scoring.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def score_batch(model: Any, examples: Sequence[dict[str, Any]], *, image_root: str | Path | None = None,
                batch_size: int = 8, progress: bool = False) -> list[list[float]]:
    """P(correct) of every step of every example, one forward pass per batch of ``batch_size``.

    Steps cut by truncation to the model's ``max_length`` get ``nan`` (their count is visible as
    the trailing nans); labels in the examples are ignored. The model is put in eval mode for the
    call and restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    formatter = model.formatter
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results: list[list[float]] = []
    try:
        for start in tqdm(range(0, len(examples), batch_size), desc="scoring", unit="batch", file=sys.stderr,
                          disable=not progress):
            chunk = examples[start:start + batch_size]
            items = [formatter.encode({**ex, "labels": None}, image_root) for ex in chunk]
            out = model(**_to_device(formatter.collate(items), device))
            flat = out.scores.float().cpu().tolist()
            offset = 0
            for it in items:
                n = len(it["prm_positions"])
                results.append(flat[offset:offset + n] + [math.nan] * it["n_steps_cut"])
                offset += n
    finally:
        model.train(was_training)
    return results
