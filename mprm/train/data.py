"""Training data: selection into the run folder, a memory-mapped table, cached tokenisation,
image loading in DataLoader workers.

Pipeline (issue 4, METHOD.md 6):

1. ``data.train`` is a corpus (annotations folder, a raw ``.jsonl`` or ``.parquet``): ``mprm select``
   runs into ``OUTPUT_DIR/selection/`` (the run folder keeps the selection manifest) and training
   reads its ``selected.jsonl``. A given ``selected.jsonl`` is used as is.
2. The selected rows become a ``datasets`` table on disk (memory-mapped, so 500k rollouts cost no
   RAM per worker), with labels recomputed from the MC scores under ``data.label_threshold`` /
   ``data.soft_labels`` (METHOD.md 2) so the training config is the one source of truth.
3. ``formatter.encode_text`` runs once in a batched ``map`` whose cache file name is keyed by the
   formatting settings, the tokenizer and the data: reruns and resumes skip tokenisation.
4. Each DataLoader worker loads the images of its micro batch and attaches pixels; the main
   process only sees collated tensors.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch

from mprm.data.labels import IGNORE_LABEL, mc_targets
from mprm.data.pipeline import select_corpus
from mprm.data.settings import SelectionSettings, SelectionSettingsError
from mprm.data.validation import InputPathError


# ---- 1. what file to train on ------------------------------------------------------------------
def _first_row(path: Path) -> dict[str, Any] | None:
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError:
                    return None
                return row if isinstance(row, dict) else None
    return None


def is_training_jsonl(path: str | Path) -> bool:
    """True for the training format (``selected.jsonl``: ``steps`` as strings plus ``labels`` or
    ``mc_scores``), False for a raw corpus (``steps_with_score``)."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".jsonl" or not path.is_file():
        return False
    row = _first_row(path)
    return bool(row) and "steps_with_score" not in row and "steps" in row and ("labels" in row or "mc_scores" in row)


def selection_settings(cfg: Any) -> SelectionSettings:
    """The one :class:`SelectionSettings` of a training config: ``selection.*`` plus the ``data.*``
    keys that shape the written labels (``label_threshold``, ``soft_labels``, ``unannotated``,
    ``lenient``). Raises ``SelectionSettingsError`` for a bad combination.

    ``data.label_threshold`` is documented as ignored under ``data.soft_labels`` (a config may
    keep a threshold while trying soft labels), whereas ``SelectionSettings`` refuses the pair as a
    contradiction; so the threshold is left out here, the one place a config becomes settings.
    """
    s, d = cfg.selection, cfg.data
    return SelectionSettings(strategy=s.strategy, fraction=s.fraction, alpha=s.alpha, seed=s.seed,
                             per_source=s.per_source, label_threshold=0.0 if d.soft_labels else d.label_threshold,
                             soft_labels=d.soft_labels, unannotated=d.unannotated, lenient=d.lenient)


def resolve_training_file(train: str | Path, settings: SelectionSettings, *, output_dir: Path,
                          is_main: bool) -> Path:
    """Path of the ``selected.jsonl`` to train on; for a corpus, rank 0 selects into
    ``OUTPUT_DIR/selection/`` with :func:`mprm.data.pipeline.select_corpus` (METHOD.md 3-4).

    ``train`` is ``data.train``; ``settings`` come from :func:`selection_settings`. A stamp file
    holds the corpus path and the settings as applied, so a rerun or a resume with the same ones
    reuses the selection. A missing ``data.train`` raises ``InputPathError``, a given
    ``selected.jsonl`` with a strategy other than ``full`` ``SelectionSettingsError``, bad records
    ``DataError`` (``FILE:LINE: ...``): all user errors, one line each. Call on every rank, then
    barrier: other ranks return the same path without writing.
    """
    src = Path(train)
    if not src.exists():
        raise InputPathError(f"{train}: no such file or folder (data.train): set data.train to a corpus folder "
                             "(annotations/*.jsonl), a .jsonl/.parquet corpus or a selected.jsonl")
    if is_training_jsonl(src):
        if settings.strategy != "full":
            raise SelectionSettingsError(
                f"{train}: already a training selection (a selected.jsonl) but selection.strategy = "
                f"{settings.strategy!r}: set selection.strategy=full to train on it as it is, or point data.train "
                f"at the corpus to select from with {settings.strategy!r}")
        return src
    out_dir = output_dir / "selection"
    selected = out_dir / "selected.jsonl"
    stamp = out_dir / ".mprm-train-select.json"
    key = {"input": str(src), **settings.parameters()}
    if is_main:
        try:
            same = selected.is_file() and json.loads(stamp.read_text()) == key
        except (OSError, ValueError):
            same = False
        if not same:
            stamp.unlink(missing_ok=True)
            result = select_corpus(src, settings, out_dir)
            print(f"mprm select: {result.summary()}", file=sys.stderr, flush=True)
            stamp.write_text(json.dumps(key))
    return selected


# ---- 2. rows -> memory-mapped table ------------------------------------------------------------
def training_labels(row: dict[str, Any], *, threshold: float, soft: bool) -> list[float]:
    """Per-step targets of one training row (METHOD.md 2): from ``mc_scores`` when present, by the
    one labelling rule (``mprm.data.labels.mc_targets``), so the training config decides them."""
    scores = row.get("mc_scores")
    if scores is None:
        return [float(y) for y in row["labels"]]
    return mc_targets(scores, threshold=threshold, soft=soft)


def _rows(path: str, threshold: float, soft: bool, size: int, mtime: float):  # noqa: ARG001 (cache key)
    from mprm.data.readers import read_training_jsonl

    for row in read_training_jsonl(path):
        yield {
            "id": str(row.get("id", "")),
            "source": str(row.get("source", "")),
            "images": [str(p) for p in row.get("images") or []],
            "question": str(row.get("question", "")),
            "steps": [str(s) for s in row["steps"]],
            "labels": training_labels(row, threshold=threshold, soft=soft),
        }


def load_table(path: Path, *, threshold: float, soft: bool, cache_dir: Path):
    """The training rows as a ``datasets.Dataset`` backed by an Arrow file under ``cache_dir``."""
    import datasets

    features = datasets.Features({
        "id": datasets.Value("string"), "source": datasets.Value("string"),
        "images": datasets.Sequence(datasets.Value("string")), "question": datasets.Value("string"),
        "steps": datasets.Sequence(datasets.Value("string")), "labels": datasets.Sequence(datasets.Value("float32")),
    })
    st = path.stat()
    return datasets.Dataset.from_generator(
        _rows, features=features, cache_dir=str(cache_dir),
        gen_kwargs={"path": str(path.resolve()), "threshold": threshold, "soft": soft,
                    "size": st.st_size, "mtime": st.st_mtime})


# ---- 3. cached tokenisation --------------------------------------------------------------------
def _tokenizer_digest(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()


def encoding_key(formatter: Any, *, image_root: str, table_fingerprint: str) -> str:
    """Cache key of the tokenised table: formatting settings + tokenizer + image handling + data."""
    simple = (str, int, float, bool, type(None))
    images = {k: v for k, v in sorted(vars(formatter.images).items()) if isinstance(v, simple)}
    payload = {
        "separator": formatter.separator, "max_length": formatter.max_length,
        "multi_image": formatter.multi_image, "max_columns": formatter.max_columns,
        "prompt_style": formatter.prompt_style, "prefix_ids": formatter.prefix_ids,
        "images": images, "image_handler": type(formatter.images).__name__,
        "tokenizer": _tokenizer_digest(formatter.tokenizer), "image_root": str(Path(image_root).resolve()),
        "table": table_fingerprint, "version": 4,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _encode_batch(batch: dict[str, list], *, formatter: Any, image_root: str) -> dict[str, list]:
    out: dict[str, list] = {k: [] for k in ("input_ids", "prm_positions", "enc_labels", "image_token_counts",
                                            "length", "n_labelled", "n_steps_cut")}
    for i in range(len(batch["id"])):
        ex = {k: batch[k][i] for k in ("id", "images", "question", "steps", "labels")}
        sizes = formatter.image_sizes(ex, image_root) if ex["images"] else []
        enc = formatter.encode_text(ex, image_sizes=sizes)
        out["input_ids"].append(enc["input_ids"])
        out["prm_positions"].append(enc["prm_positions"])
        out["enc_labels"].append(enc["labels"])
        out["image_token_counts"].append(enc.get("image_token_counts", []))
        out["length"].append(len(enc["input_ids"]))
        out["n_labelled"].append(sum(1 for y in enc["labels"] if y != IGNORE_LABEL))
        out["n_steps_cut"].append(enc.get("n_steps_cut", 0))
    return out


def encode_table(table: Any, formatter: Any, *, image_root: str, cache_dir: Path, show_progress: bool = True):
    """Tokenise every row once (batched map, cached by :func:`encoding_key`)."""
    key = encoding_key(formatter, image_root=image_root, table_fingerprint=table._fingerprint)
    cache_dir.mkdir(parents=True, exist_ok=True)
    return table.map(
        _encode_batch, batched=True, batch_size=64, fn_kwargs={"formatter": formatter, "image_root": image_root},
        new_fingerprint=key, cache_file_name=str(cache_dir / f"encoded-{key}.arrow"),
        load_from_cache_file=True, desc="tokenising (cached)" if show_progress else None)


# ---- 4. examples with pixels, in workers -------------------------------------------------------
class EncodedExamples(torch.utils.data.Dataset):
    """Item ``i``: the cached token ids of row ``i`` plus its pixels (loaded here, in a worker)."""

    def __init__(self, table: Any, formatter: Any, image_root: str) -> None:
        self.table, self.formatter, self.image_root = table, formatter, image_root

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.table[int(i)]
        enc = {"id": row["id"], "input_ids": row["input_ids"], "prm_positions": row["prm_positions"],
               "labels": row["enc_labels"], "image_token_counts": row["image_token_counts"]}
        images = self.formatter.load_images({"id": row["id"], "images": row["images"]}, self.image_root) \
            if row["images"] else []
        return self.formatter.attach_images(enc, images)


def make_loader(examples: EncodedExamples, batch_sampler: Any, *, num_workers: int, seed: int) -> torch.utils.data.DataLoader:
    """DataLoader over our own batch sampler (the sampler is the resume cursor; no accelerate sharding)."""
    return torch.utils.data.DataLoader(
        examples, batch_sampler=batch_sampler, collate_fn=examples.formatter.collate,
        num_workers=num_workers, persistent_workers=False, pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed), prefetch_factor=2 if num_workers else None)


def column(table: Any, name: str) -> np.ndarray:
    """One integer column of the encoded table as a numpy array (lengths, labelled counts)."""
    return np.asarray(table.with_format("numpy")[name], dtype=np.int64)


def counts_summary(lengths: Sequence[int], n_labelled: Sequence[int], cut: Sequence[int]) -> dict[str, Any]:
    return {"examples": len(lengths), "tokens": int(np.sum(lengths)), "labelled_steps": int(np.sum(n_labelled)),
            "max_length": int(np.max(lengths)) if len(lengths) else 0, "steps_cut": int(np.sum(cut))}
