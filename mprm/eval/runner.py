"""Scoring with a reward model: batched, resumable, sharded over the processes of ``accelerate launch``
(rank and device from :func:`mprm.train.strategy.process_state`; METHOD.md 7).

:func:`score_to_file` scores every step of every item. Batches are fixed slices of the item list
(batch k = items ``k*B .. k*B+B-1``) whatever the number of processes; rank ``r`` of ``w`` scores
the batches with ``k % w == r`` and appends their rows to its part file ``<name>.rank<r>.jsonl``
(flushed after every batch). Only when every item has a row does rank 0 merge the parts, in item
order, into ``<name>.jsonl`` (atomically) and remove them: a ``<name>.jsonl`` exists only complete.
Every item is scored in the same padded batch whatever the number of processes, so 1 process and
N give bit-identical scores (decisions.md D-EVAL-3).

Resume (``settings.resume``): every rank reads the rows already written (main file and part files,
a truncated last line dropped) and checks that they belong to these items (ids, labels, sources,
step counts: a file of another benchmark is refused naming its first foreign row). A batch with a
missing item is scored whole again and only the missing rows are written, so a resumed run's rows
equal an unbroken run's bit for bit (decisions.md D-EVAL-10). Without resume, rows already in
the folder are an error, so two runs never mix.

A step cut by the token limit has no score (``None`` in memory, ``null`` in the file); it is
counted and left out of the metrics, or is an error with ``settings.strict_length``
(decisions.md D-EVAL-6).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm import tqdm

from mprm.errors import UserError
from mprm.eval.loading import LazyModel
from mprm.eval.predictions import (
    PredictionWriter,
    PredictionsError,
    file_fields,
    has_rows,
    match_rows,
    read_located,
    write_rows,
)
from mprm.eval.settings import EvalSettings


def part_files(out_dir: Path, name: str) -> list[Path]:
    return sorted(out_dir.glob(f"{name}.rank*.jsonl"))


def example_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """The dict handed to the model layer (docs/design.md): id, images, question, steps."""
    return {"id": item["id"], "images": list(item["images"]), "question": item["question"],
            "steps": list(item["steps"])}


def _written_rows(out_dir: Path, name: str, items: Sequence[Mapping[str, Any]], row_fields: Sequence[str],
                  origin: str) -> dict[str, dict[str, Any]]:
    files = [p for p in [out_dir / f"{name}.jsonl", *part_files(out_dir, name)] if p.exists()]
    fields = file_fields(row_fields)
    located = [loc for p in files for loc in read_located(p, fields=fields, tolerate_truncation=True)]
    return match_rows(located, items, row_fields=row_fields, origin=origin)


def _cut_count(scores: Sequence[float]) -> int:
    return sum(1 for x in scores if not math.isfinite(x))


def score_to_file(
    items: Sequence[Mapping[str, Any]],
    model: Any,
    *,
    settings: EvalSettings,
    out_dir: str | Path,
    name: str = "predictions",
    row_fields: Sequence[str] = ("data_source", "labels"),
    desc: str = "scoring",
    origin: str = "the items",
) -> list[dict[str, Any]] | None:
    """Score every step of ``items`` into ``out_dir/<name>.jsonl``; the rows on rank 0, else None.

    Each item has ``id`` (unique), ``images`` (paths under ``settings.image_root``), ``question``,
    ``steps`` and the ``row_fields`` copied into its row ``{"id", *row_fields, "scores"}``.
    ``model`` is a :class:`LazyModel` (loaded only if something is left to score) or a loaded
    reward model. ``origin`` names the items in errors (the benchmark file).
    """
    import torch

    from mprm.train.strategy import process_state

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = process_state()
    rank, world = state.process_index, state.num_processes
    order = [str(it["id"]) for it in items]
    if len(set(order)) != len(order):
        dup = sorted({i for i in order if order.count(i) > 1})[:5]
        raise UserError(f"{origin}: item ids must be unique to score and resume; duplicated: {dup}")
    main = out / f"{name}.jsonl"
    existing = [p for p in [main, *part_files(out, name)] if has_rows(p)]
    if existing and not settings.resume:
        raise PredictionsError(f"{existing[0]}: already holds predictions: pass --resume to continue that run, "
                               f"or choose another --output")
    done = _written_rows(out, name, items, row_fields, origin) if settings.resume else {}
    state.wait_for_everyone()  # every rank has read (and checked) the files before anyone appends

    batches = [items[k * settings.batch_size:(k + 1) * settings.batch_size]
               for k in range(rank, (len(items) + settings.batch_size - 1) // settings.batch_size, world)]
    batches = [b for b in batches if any(str(it["id"]) not in done for it in b)]
    if batches:
        from mprm.models import score_batch

        net = model.get(state.device) if isinstance(model, LazyModel) else model
        pending = sum(1 for b in batches for it in b if str(it["id"]) not in done)
        with tqdm(total=pending, desc=f"{desc} [{rank}/{world}]" if world > 1 else desc, unit="item",
                  disable=not state.is_main_process) as bar, \
                PredictionWriter(out / f"{name}.rank{rank}.jsonl") as writer, torch.no_grad():
            for batch in batches:
                scores = score_batch(net, [example_of(it) for it in batch], image_root=settings.image_root,
                                     batch_size=len(batch), progress=False, too_long="nan")
                rows = []
                for it, sc in zip(batch, scores, strict=True):
                    if str(it["id"]) in done:
                        continue  # scored again only to keep the batch (and its padding) unchanged
                    cut = _cut_count(sc)
                    if cut and settings.strict_length:
                        limit = getattr(getattr(net, "formatter", None), "max_length", None)
                        raise UserError(
                            f"{origin}: item {it['id']!r}: {cut} of {len(sc)} steps cut by the token limit "
                            f"({limit}): raise it with --max-length, or drop --strict-length to leave cut steps "
                            f"out of the metrics (counted)")
                    rows.append({"id": str(it["id"]), **{k: it[k] for k in row_fields},
                                 "scores": [float(x) if math.isfinite(x) else None for x in sc]})
                writer.write(rows)
                bar.update(len(rows))
    state.wait_for_everyone()
    merged = None
    if state.is_main_process:
        rows_by_id = _written_rows(out, name, items, row_fields, origin)
        missing = [i for i in order if i not in rows_by_id]
        if missing:
            raise PredictionsError(f"{main}: {len(missing)} item(s) have no row after scoring, e.g. {missing[:5]}: "
                                   f"rerun with --resume")
        merged = [rows_by_id[i] for i in order]
        write_rows(main, merged)
        for part in part_files(out, name):
            part.unlink()
    state.wait_for_everyone()  # nobody moves on (e.g. to the next checkpoint) before the merge
    return merged
