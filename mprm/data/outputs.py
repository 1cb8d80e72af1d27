"""Pass 2 of selection: the kept rollouts in the training format (``selected.jsonl``) and one
manifest row per input line (``manifest.jsonl``), file by file, joined in file order.

Only the kept lines are read again (by byte offset, from pass 1 of ``mprm.data.jsonl``), each
decoded fully once with orjson, turned into the training format by the same functions the precise
validator uses (``build_checked``, ``training_dict``: labels by ``mprm.data.labels.mc_targets``)
and written with orjson. Manifest rows are formatted from the pass-1 columns with one template,
byte for byte what ``orjson.dumps`` of the row's dict gives. No numpy: this runs in workers.
"""

from __future__ import annotations

import heapq
import mmap
import os
import shutil
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import orjson

from mprm.data.jsonl import FileScan
from mprm.data.lines import dumps_line
from mprm.data.validation import build_checked, parse_json_line, training_dict


def training_line(
    raw: bytes, *, source: str, line: int, threshold: float = 0.0, soft: bool = False, unannotated: str = "negative"
) -> bytes:
    """One ``selected.jsonl`` line (newline-terminated) for a corpus line that passed validation:
    ``training_dict(build_checked(parse_json_line(raw)))``, labels as METHOD.md 2 (hard
    ``1[s_j > tau]`` or soft ``s_j``), truncation as ``unannotated``."""
    checked = build_checked(parse_json_line(raw), unannotated=unannotated)
    return dumps_line(training_dict(checked, source=source, line=line, threshold=threshold, soft=soft))


@dataclass
class OutputJob:
    """Pass 2 of one file: its scan (valid rows, rejected lines), each valid row's manifest
    score and whether it is kept (arrays, one item per valid row), and where and how to write
    (part files under ``out_dir``)."""

    scan: FileScan
    scores: np.ndarray
    kept: np.ndarray
    out_dir: str
    index: int
    threshold: float = 0.0
    soft: bool = False
    unannotated: str = "negative"


def kept_lines(job: OutputJob) -> bytes:
    """The training-format lines (``selected.jsonl``) of the job's kept rows, in file order."""
    scan = job.scan
    rows = np.flatnonzero(job.kept)
    if not len(rows):
        return b""
    lines, offsets = scan.line[rows].tolist(), scan.offset[rows].tolist()
    if scan.path.endswith(".parquet"):
        import pyarrow.parquet as pq

        objs = pq.read_table(scan.path).take(offsets).to_pylist()
        return b"".join(
            dumps_line(training_dict(build_checked(obj, unannotated=job.unannotated), source=scan.source, line=line,
                                     threshold=job.threshold, soft=job.soft))
            for line, obj in zip(lines, objs)
        )
    with open(scan.path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    options = dict(source=scan.source, threshold=job.threshold, soft=job.soft, unannotated=job.unannotated)
    try:
        return b"".join(
            training_line(data[start : start + size], line=line, **options)
            for line, start, size in zip(lines, offsets, scan.size[rows].tolist())
        )
    finally:
        data.close()


def manifest_lines(scan: FileScan, scores: np.ndarray, kept: np.ndarray) -> bytes:
    """``manifest.jsonl`` rows of one file, in line order: byte for byte what ``orjson.dumps``
    gives for ``{"file", "line", "source", "id", "score", "selected", "reason"}``."""
    file, source = orjson.dumps(scan.file), orjson.dumps(scan.source)
    head = (b'{"file":' + file + b',"line":').replace(b"%", b"%%") + b"%d"
    mid = (b',"source":' + source + b',"id":').replace(b"%", b"%%")
    tail = b',"score":%b,"selected":%b,"reason":null}\n'
    score_text = orjson.dumps(np.asarray(scores, np.float64), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
    flags = [(b"false", b"true")[k] for k in np.asarray(kept, bool).tolist()]
    lines = scan.line.tolist()
    if scan.ids is None:
        template = head + mid + b'"' + source[1:-1].replace(b"%", b"%%") + b':%d"' + tail
        valid = [template % (n, n, s, k) for n, s, k in zip(lines, score_text, flags)]
    else:
        template = head + mid + b"%b" + tail
        ids = (orjson.dumps(f"{scan.source}:{n}" if i is None else i) for n, i in zip(lines, scan.ids))
        valid = [template % (n, i, s, k) for n, i, s, k in zip(lines, ids, score_text, flags)]
    if not scan.rejected:
        return b"".join(valid)
    bad = [
        (line, orjson.dumps({"file": scan.file, "line": line, "source": scan.source, "id": rid, "score": None,
                             "selected": False, "reason": reason}, option=orjson.OPT_APPEND_NEWLINE))
        for line, rid, reason, _ in scan.rejected
    ]
    merged = heapq.merge(zip(lines, valid), bad, key=lambda pair: pair[0])
    return b"".join(row for _, row in merged)


def _part(job: OutputJob, name: str) -> str:
    return os.path.join(job.out_dir, f".{name}.part-{job.index:05d}")


def render_file(job: OutputJob) -> tuple[str, str]:
    """Pass 2 of one file: writes its selected and manifest rows to two part files under
    ``job.out_dir`` and returns their paths (joined in file order by :func:`write_outputs`)."""
    for name, data in (("selected", kept_lines(job)), ("manifest", manifest_lines(job.scan, job.scores, job.kept))):
        with open(_part(job, name), "wb") as f:
            f.write(data)
    return _part(job, "selected"), _part(job, "manifest")


def _append(dst: Any, part: str) -> None:
    """Append a part file to an unbuffered open file (in the kernel where it can) and delete it."""
    with open(part, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        done = 0
        if hasattr(os, "copy_file_range"):
            try:
                while done < size:
                    copied = os.copy_file_range(src.fileno(), dst.fileno(), size - done)
                    if copied == 0:
                        break
                    done += copied
            except OSError:
                pass
        src.seek(done)
        shutil.copyfileobj(src, dst)
    os.unlink(part)


def write_outputs(
    selected_path: str | os.PathLike,
    manifest_path: str | os.PathLike,
    jobs: list[OutputJob],
    *,
    pool: Any = None,
    progress: Any = None,
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """Pass 2 over every file, written in job order into ``selected.jsonl`` and ``manifest.jsonl``.

    With a ``pool`` each worker writes a file's rows to part files that are appended here in
    order (in the kernel, ``copy_file_range``): sending them back through the pool's pipe costs
    several times more CPU. ``meanwhile`` runs in this process while the workers write (the
    report and the plot), or first when there is no pool. ``progress``: a tqdm bar or None."""
    with open(selected_path, "wb", buffering=0) as selected, open(manifest_path, "wb", buffering=0) as manifest:
        if pool is None:
            if meanwhile is not None:
                meanwhile()
            for job in jobs:
                selected.write(kept_lines(job))
                manifest.write(manifest_lines(job.scan, job.scores, job.kept))
                if progress is not None:
                    progress.update(1)
        else:
            try:
                parts = pool.imap(render_file, jobs)
                if meanwhile is not None:
                    meanwhile()
                for selected_part, manifest_part in parts:
                    _append(selected, selected_part)
                    _append(manifest, manifest_part)
                    if progress is not None:
                        progress.update(1)
            finally:
                for job in jobs:
                    for name in ("selected", "manifest"):
                        if os.path.exists(_part(job, name)):
                            os.unlink(_part(job, name))
    if progress is not None:
        progress.close()
