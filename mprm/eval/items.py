"""Benchmark items as the scorer sees them: stable ids, image checks. No torch.

An item's id keys its predictions row, and so decides what ``--resume`` and checkpoint curves
count as already scored. It is the item's own ``id``; the real VisualProcessBench has none, and a
line number would let a predictions file of another benchmark pass for this one, so an item
without an id gets a digest of its content: images, question and steps (decisions.md D-EVAL-8).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from mprm.errors import UserError
from mprm.files import require_file

DIGEST_PREFIX = "sha256:"


def item_digest(images: Sequence[str], question: str, steps: Sequence[str]) -> str:
    """``sha256:`` + 16 hex digits of the canonical JSON of (images, question, steps)."""
    blob = json.dumps({"images": list(images), "question": question, "steps": list(steps)},
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return DIGEST_PREFIX + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def benchmark_items(path: str | Path, *, flag: str = "--benchmark") -> list[dict[str, Any]]:
    """The benchmark's items as scoring dicts (``id``, ``data_source``, ``images``, ``question``,
    ``steps``, ``labels`` in the internal coding); ids are the items' own or content digests."""
    from mprm.data.readers import read_benchmark

    path = require_file(path, flag)
    bench = read_benchmark(path)
    if not bench:
        raise UserError(f"{path}: no items (an empty benchmark file, {flag}): check the file")
    items, counts = [], {}
    for it in bench:
        if it.id is not None:  # the record's own id (read_benchmark keeps it, or None)
            id_ = it.id
        else:
            id_ = item_digest(it.images, it.question, it.steps)
            counts[id_] = counts.get(id_, 0) + 1
            if counts[id_] > 1:  # the same content twice: numbered in file order, still stable
                id_ = f"{id_}-{counts[id_]}"
        items.append({"id": id_, "data_source": it.data_source, "images": list(it.images),
                      "question": it.question, "steps": list(it.steps), "labels": [int(y) for y in it.labels]})
    seen: set[str] = set()
    for it in items:
        if it["id"] in seen:
            raise UserError(f"{path}: item id {it['id']!r} appears more than once: predictions are keyed by id; "
                            f"give every item a unique 'id'")
        seen.add(it["id"])
    return items


def check_images(
    items: Sequence[dict[str, Any]], image_root: str | Path, *, origin: str, skip: bool
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(items whose images all exist, [{id, path}] of the first missing image of each other item).

    Without ``skip`` a missing image is an error naming the file, item and path. With ``skip``,
    finding no image at all is an error too: it is a wrong ``--image-root``, not missing pictures.
    """
    root = Path(image_root)
    kept, skipped = [], []
    for it in items:
        missing = next((p for p in it["images"] if not (root / p).is_file()), None)
        if missing is None:
            kept.append(it)
            continue
        if not skip:
            raise UserError(f"{origin}: item {it['id']!r}: image {missing!r} not found under {root}: check "
                            f"--image-root, or pass --skip-missing-images to leave such items out (counted)")
        skipped.append({"id": it["id"], "path": str(missing)})
    if skip and items and not kept:
        raise UserError(f"{origin}: no image found for any of {len(items)} items under {root} "
                        f"(first tried: {root / skipped[0]['path']}): check --image-root")
    return kept, skipped
