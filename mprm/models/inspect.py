"""What the model sees for one example (``mprm format``): the decoded sequence, every ``<prm>``
with its label, truncation. Users debug their data with it; tests use it to check layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mprm.data.labels import IGNORE_LABEL


def format_view(formatter: Any, example: dict[str, Any], *, image_root: str | Path | None = None) -> dict[str, Any]:
    """``{"text", "input_ids", "prm_positions", "labels", "n_steps", "n_steps_cut"}`` of one example.

    ``text`` is the full decode with special tokens kept (nothing shortened); ``labels`` are the
    training targets at each ``<prm>`` (``null`` for a step that is not scored: benchmark neutral).
    """
    enc = formatter.encode_text(example, image_root=image_root)
    ids = enc["input_ids"]
    return {
        "id": enc["id"],
        "text": formatter.tokenizer.decode(ids, skip_special_tokens=False),
        "input_ids": ids,
        "prm_positions": enc["prm_positions"],
        "labels": [None if y == IGNORE_LABEL else y for y in enc["labels"]],
        "n_steps": enc["n_steps"],
        "n_steps_cut": enc["n_steps_cut"],
    }


def human_view(formatter: Any, view: dict[str, Any]) -> str:
    """The decoded sequence for a person: runs of an image placeholder token shortened
    (``<|image_pad|>x234``) and a ``[label=...]`` after each ``<prm>``."""
    tok = formatter.tokenizer
    image_id = formatter.images.image_token_id
    ids, positions = view["input_ids"], view["prm_positions"]
    label_at = dict(zip(positions, view["labels"]))
    parts: list[str] = []
    run: list[int] = []

    def flush_text() -> None:
        if run:
            parts.append(tok.decode(run, skip_special_tokens=False))
            run.clear()

    i = 0
    while i < len(ids):
        if ids[i] == image_id:
            j = i
            while j < len(ids) and ids[j] == image_id:
                j += 1
            flush_text()
            parts.append(f"{tok.convert_ids_to_tokens(image_id)}x{j - i}")
            i = j
            continue
        run.append(ids[i])
        if i in label_at:
            flush_text()
            y = label_at[i]
            parts.append(f"[label={'neutral (not scored)' if y is None else f'{y:g}'}]")
        i += 1
    flush_text()
    lines = ["".join(parts), "",
             f"{len(ids)} tokens; {view['n_steps']} <prm> at positions {positions}"]
    if view["n_steps_cut"]:
        lines.append(f"TRUNCATED: {view['n_steps_cut']} trailing step(s) cut by max_length {formatter.max_length}")
    return "\n".join(lines)
