"""Scoring with a reward model: batched, resumable, sharded with accelerate (METHOD.md 7).

:func:`score_items` scores every step of every item and appends one row per item to
``OUT/<name>.jsonl`` as it goes (flushed after every batch). Batches are fixed slices of the item
list (batch k = items ``k*B .. k*B+B-1``) whatever the number of processes; under
``accelerate launch`` rank ``r`` of ``w`` scores the batches ``k`` with ``k % w == r`` into its own
part file ``<name>.rank<r>.jsonl``, and after a barrier rank 0 merges everything into
``<name>.jsonl`` in item order. Since every item is scored in the same padded batch either way, 1
process and N give bit-identical scores (sharding items by ``i % w`` would change the batches and
with them the last float bits; decisions.md D-EVAL-3).

Resume (``resume=True``): rank 0 first consolidates whatever a killed run left (the main file and
any part files; a truncated last line is cut off) into ``<name>.jsonl``; after a barrier every rank
skips the ids found there. Without ``resume`` an existing non-empty output is an error, so two runs
never mix silently. The world size may change between a run and its resume.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm import tqdm

from mprm.eval.predictions import (
    PredictionWriter,
    PredictionsError,
    order_rows,
    read_predictions,
    recover,
    write_rows,
)


def _part_files(out_dir: Path, name: str) -> list[Path]:
    return sorted(out_dir.glob(f"{name}.rank*.jsonl"))


def _has_content(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def consolidate(out_dir: Path, name: str, order: Sequence[str], *, required: Sequence[str]) -> list[dict[str, Any]]:
    """Merge ``<name>.jsonl`` and every part file into ``<name>.jsonl`` (item order, no duplicates).

    Truncated last lines (a killed writer) are dropped; part files are removed afterwards.
    """
    main = out_dir / f"{name}.jsonl"
    rows = recover(main, required=required)
    parts = _part_files(out_dir, name)
    for part in parts:
        rows += recover(part, required=required)
    merged = order_rows(rows, order, origin=str(main))
    write_rows(main, merged)
    for part in parts:
        part.unlink()
    return merged


_LOADED: dict[tuple[str, int | None], Any] = {}


def _load_model(model_dir: str | Path, max_length: int | None, device: Any) -> Any:
    """The reward model of ``model_dir``; the last one loaded is kept (dev and test share it)."""
    from mprm.models import load_reward_model

    key = (str(Path(model_dir).resolve()), max_length)
    if key not in _LOADED:
        _LOADED.clear()
        model = load_reward_model(model_dir, **({"max_length": max_length} if max_length else {}))
        _LOADED[key] = model.to(device).eval()
    return _LOADED[key]


def example_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """The dict handed to the model layer (docs/design.md): id, images, question, steps."""
    return {"id": item["id"], "images": list(item["images"]), "question": item["question"],
            "steps": list(item["steps"])}


def score_items(
    items: Sequence[Mapping[str, Any]],
    *,
    model_dir: str | Path,
    image_root: str | Path,
    out_dir: str | Path,
    name: str = "predictions",
    batch_size: int = 8,
    resume: bool = False,
    row_fields: Sequence[str] = ("data_source", "labels"),
    desc: str = "scoring",
    max_length: int | None = None,
) -> list[dict[str, Any]] | None:
    """Score every step of ``items`` into ``out_dir/<name>.jsonl``; return the rows on rank 0.

    Each item is a dict with ``id`` (unique), ``images`` (paths relative to ``image_root``),
    ``question``, ``steps`` and the ``row_fields`` copied into its output row, which is
    ``{"id", *row_fields, "scores"}``. The model is loaded only when something is left to score;
    ``max_length`` overrides the token limit saved with the model. A step cut by that limit (the
    model layer scores it NaN) is an error: the benchmark metrics need every step scored.
    Returns ``None`` on ranks other than 0.
    """
    import torch
    from accelerate import PartialState

    out_dir, image_root = Path(out_dir), Path(image_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = PartialState(cpu=not torch.cuda.is_available())
    rank, world = state.process_index, state.num_processes
    order = [str(it["id"]) for it in items]
    if len(set(order)) != len(order):
        dup = sorted({i for i in order if order.count(i) > 1})[:5]
        raise ValueError(f"item ids must be unique to score and resume; duplicated: {dup}")
    required = ("id", *row_fields, "scores")
    main = out_dir / f"{name}.jsonl"

    existing = [p for p in [main, *_part_files(out_dir, name)] if _has_content(p)]
    if existing and not resume:
        raise FileExistsError(
            f"{existing[0]} already holds predictions; pass --resume to continue that run "
            f"or choose another --output"
        )
    if state.is_main_process and resume:
        consolidate(out_dir, name, order, required=required)
    state.wait_for_everyone()
    done = {r["id"] for r in read_predictions(main, required=required)} if main.exists() else set()
    state.wait_for_everyone()  # every rank has read the main file before anyone appends again

    batches = [
        todo for k in range(rank, (len(items) + batch_size - 1) // batch_size, world)
        if (todo := [it for it in items[k * batch_size:(k + 1) * batch_size] if str(it["id"]) not in done])
    ]
    pending = [it for b in batches for it in b]
    if pending:
        from mprm.models import score_batch

        model = _load_model(model_dir, max_length, state.device)
        target = main if world == 1 else out_dir / f"{name}.rank{rank}.jsonl"
        bar = tqdm(total=len(pending), desc=f"{desc} [{rank}/{world}]" if world > 1 else desc,
                   unit="item", disable=not state.is_main_process)
        with PredictionWriter(target) as writer, torch.no_grad():
            for batch in batches:
                scores = score_batch(model, [example_of(it) for it in batch], image_root=image_root,
                                     batch_size=batch_size, progress=False)
                rows = []
                for it, sc in zip(batch, scores, strict=True):
                    cut = sum(1 for x in sc if not math.isfinite(x))
                    if len(sc) != len(it["steps"]) or cut:
                        raise ValueError(
                            f"item {it['id']!r}: {max(cut, len(it['steps']) - len(sc))} of {len(it['steps'])} "
                            f"steps were not scored (cut by the model's maximum length); every step must be "
                            f"scored for the metrics: raise it with --max-length"
                        )
                    rows.append({"id": str(it["id"]), **{k: it[k] for k in row_fields},
                                 "scores": [float(x) for x in sc]})
                writer.write(rows)
                bar.update(len(batch))
        bar.close()
    state.wait_for_everyone()
    merged = consolidate(out_dir, name, order, required=required) if state.is_main_process else None
    state.wait_for_everyone()  # nobody moves on (e.g. to the next checkpoint) before the merge
    if merged is None:
        return None
    scored = {r["id"] for r in merged}
    missing = [i for i in order if i not in scored]
    if missing:
        raise PredictionsError(f"{main}: {len(missing)} item(s) were not scored, e.g. {missing[:5]}")
    return merged
