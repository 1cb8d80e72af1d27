"""Files mprm reads and writes: checked inputs, outputs written whole or not at all. No torch.

Every result file (evaluation: metrics.json, metrics.md, a merged predictions.jsonl, curve.json,
curve.png, bon.json; ``mprm report``: report.json, report.md) is written to a hidden temporary file
in the same folder and renamed over its name, so a run that fails or is killed never leaves a file
that looks complete (docs/evaluation.md, "Files written"). Checkpoints and the final model are
folders written as ``NAME.tmp`` and renamed (mprm/train/checkpoint.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from mprm.errors import UserError


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def looks_like_hub_id(path: str | Path) -> bool:
    """True for ``ORG/NAME`` (or ``NAME``) naming no local path: not existing, not absolute, and
    no existing parent folder (``runs/missing`` is a mistyped folder, not a hub id)."""
    text = str(path)
    local = Path(text)
    if local.exists() or local.is_absolute() or not _HUB_ID.match(text):
        return False
    return str(local.parent) == "." or not local.parent.exists()


def require_file(path: str | Path, flag: str) -> Path:
    """``path`` as a Path when it is an existing file; a UserError naming it and ``flag`` otherwise."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file ({flag}): check the path")
    if not path.is_file():
        raise UserError(f"{path}: is a folder, expected a file ({flag})")
    return path


def prepare_output_dir(path: str | Path) -> Path:
    """Create the output folder if needed and check that files can be created in it.

    Checked up front so that an unwritable ``--output`` fails before minutes of scoring, with a
    message naming it rather than a traceback from the first write.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder (--output): choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{path}: cannot write into the output folder ({exc.strerror or exc}): "
                        f"choose another --output or fix its permissions") from None
    return path


@contextlib.contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    Temporary files of ``path`` that a killed writer left behind are removed first.
    """
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # created by the writer, so the umask applies
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, synced to disk before the rename."""
    with atomic_target(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def remove_files(folder: Path, names: tuple[str, ...]) -> None:
    """Delete result files left by an earlier run, so a failing run cannot leave them looking new."""
    for name in names:
        (folder / name).unlink(missing_ok=True)
