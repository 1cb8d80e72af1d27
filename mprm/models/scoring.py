"""Single-pass step scoring (METHOD.md 6 and 7).

Every step of a rollout is scored in one forward pass: each step is followed by ``<prm>`` and the
model is causal, so the score at the k-th ``<prm>`` equals the score of the k-step prefix on its
own (tests/models/test_scoring.py checks it). Padded batches equal one-by-one scoring.

Images may be given as paths (relative to ``image_root``) or as in-memory PIL images, so that
callers which already hold the pictures (an RL trainer hands over PIL images, docs/rl.md) need not
write them to disk. Both go through the same RGB conversion, canvas and pixel processing, so the
same picture gives the same scores either way.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

TOO_LONG_MODES = ("raise", "nan")


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _first_step_too_long(formatter: Any, example: dict[str, Any], image_root: str | Path | None) -> bool:
    """Whether the prompt and the first step of ``example`` alone exceed the formatter's limit."""
    sizes = formatter.image_sizes(example, image_root) if example.get("images") else []
    first = {**example, "steps": list(example["steps"])[:1], "labels": None}
    encoded = formatter.encode_text(first, image_sizes=sizes, max_length=sys.maxsize)
    return len(encoded["input_ids"]) > formatter.max_length


@torch.no_grad()
def score_batch(model: Any, examples: Sequence[dict[str, Any]], *, image_root: str | Path | None = None,
                batch_size: int = 8, progress: bool = False, too_long: str = "raise") -> list[list[float]]:
    """P(correct) of every step of every example, one forward pass per batch of ``batch_size``.

    ``examples[i]["images"]`` holds paths under ``image_root`` or PIL images (or both); the same
    picture scores the same either way. Steps cut by truncation to the model's ``max_length`` get
    ``nan`` (their count is visible as the trailing nans); labels in the examples are ignored.
    An example whose prompt and first step already exceed ``max_length`` is an error naming it
    (``too_long="raise"``, the evaluation's choice) or gets ``nan`` for every step
    (``too_long="nan"``, for a reward that must answer for every sample). The model is put in
    eval mode for the call and restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if too_long not in TOO_LONG_MODES:
        raise ValueError(f"too_long must be one of {', '.join(TOO_LONG_MODES)}, got {too_long!r}")
    formatter = model.formatter
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results: list[list[float]] = []
    try:
        for start in tqdm(range(0, len(examples), batch_size), desc="scoring", unit="batch", file=sys.stderr,
                          disable=not progress):
            chunk = examples[start:start + batch_size]
            items: list[dict[str, Any] | None] = []
            for ex in chunk:
                try:
                    items.append(formatter.encode({**ex, "labels": None}, image_root))
                except ValueError:
                    if too_long != "nan" or not ex.get("steps") or not _first_step_too_long(formatter, ex, image_root):
                        raise
                    items.append(None)
            kept = [it for it in items if it is not None]
            flat = model(**_to_device(formatter.collate(kept), device)).scores.float().cpu().tolist() if kept else []
            offset = 0
            for ex, it in zip(chunk, items):
                if it is None:
                    results.append([math.nan] * len(ex["steps"]))
                    continue
                n = len(it["prm_positions"])
                results.append(flat[offset:offset + n] + [math.nan] * it["n_steps_cut"])
                offset += n
    finally:
        model.train(was_training)
    return results
