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
from PIL import Image
from tqdm import tqdm

from mprm.models.images import make_canvas

TOO_LONG_MODES = ("raise", "nan")


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _open_rgb(image: Image.Image | str | Path, root: str | Path | None, item: str) -> Image.Image:
    """One picture as RGB: a PIL image is converted as is, a path is read under ``root``."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if not isinstance(image, (str, Path)):
        raise TypeError(f"item {item}: an image must be a PIL image or a path, got {type(image).__name__}")
    path = (Path(root) if root is not None else Path(".")) / image
    if not path.is_file():
        raise FileNotFoundError(f"item {item}: image {path} not found (image_root={root!r})")
    with Image.open(path) as im:
        return im.convert("RGB")


def encode_example(formatter: Any, example: dict[str, Any], image_root: str | Path | None = None) -> dict[str, Any]:
    """Model inputs of one example whose ``images`` are paths, PIL images or a mix of both.

    Paths only: :meth:`Formatter.encode` unchanged. With in-memory images the same two stages run
    on the given pictures: their PIL sizes go to ``encode_text`` and the RGB pictures (one canvas
    for several under ``multi_image="canvas"``, as ``Formatter.load_images`` builds it) to
    ``attach_images``.
    """
    images = list(example.get("images") or [])
    if not any(isinstance(im, Image.Image) for im in images):
        return formatter.encode(example, image_root)
    item = str(example.get("id", "<no id>"))
    loaded = [_open_rgb(im, image_root, item) for im in images]
    encoded = formatter.encode_text(example, image_sizes=[im.size for im in loaded])
    if formatter.multi_image == "canvas" and len(loaded) > 1:
        loaded = [make_canvas(loaded, formatter.max_columns)]
    return formatter.attach_images(encoded, loaded)


def _first_step_too_long(formatter: Any, example: dict[str, Any], image_root: str | Path | None) -> bool:
    """Whether the prompt and the first step of ``example`` alone exceed the formatter's limit."""
    sizes = []
    for im in example.get("images") or []:
        if isinstance(im, Image.Image):
            sizes.append(im.size)
        else:
            with Image.open((Path(image_root) if image_root is not None else Path(".")) / im) as f:
                sizes.append(f.size)
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
                    items.append(encode_example(formatter, {**ex, "labels": None}, image_root))
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
