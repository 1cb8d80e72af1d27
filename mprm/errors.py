"""The one error convention of every entry point (``train.py``, ``eval.py``, ``mprm ...``, sweep).

A *user* error (bad input, a missing file, a config typo) is a :class:`UserError` (or one of its
subclasses: ``ConfigError``, ``DataError``, ``PredictionsError``, ...). :func:`run_entry` turns it
into exit code 2 and ONE line on stderr, ``PROG: error: FILE[:LINE]: what is wrong (value): how
to fix it``, with no traceback unless ``--debug`` is on the command line or ``MPRM_DEBUG=1``.
Anything else is an internal bug and raises as usual, traceback included.

No torch here: the data layer and metrics raise these errors too.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

DEBUG_ENV = "MPRM_DEBUG"


class UserError(ValueError):
    """Something the user can fix: the message names where (file, line, field), what and how."""


class Refusal(Exception):
    """Not a mistake in the input: the library declines to start something it judges would fail
    (training that the memory plan says does not fit, ``mprm.train.loop.PlanRefusal``).
    :func:`run_entry` prints the message as it is (several lines) and exits with ``exit_code``,
    with or without ``--debug``."""

    exit_code = 3


def debug_requested(argv: Sequence[str] | None = None) -> bool:
    """True when ``--debug`` is in ``argv`` or ``MPRM_DEBUG`` is set to a true value."""
    if os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return "--debug" in (argv or ())


def take_debug_flag(argv: list[str]) -> list[str]:
    """``argv`` without ``--debug``; when it was there, ``MPRM_DEBUG=1`` for this process (and its
    children), so every handler below the entry point sees it."""
    if "--debug" not in argv:
        return argv
    os.environ[DEBUG_ENV] = "1"
    return [a for a in argv if a != "--debug"]


def warn(message: str) -> None:
    """A warning the user should see (stderr, one line): something was worked around, not ignored."""
    print(f"mprm: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename is not None and str(exc.filename) not in text:
        text = f"{exc.filename}: {exc.strerror or text}"
    return text or type(exc).__name__


def run_entry(prog: str, main: Callable[[], int | None], argv: Sequence[str] | None = None) -> int:
    """Run an entry point's ``main`` under the convention; returns the exit code.

    :class:`UserError` -> exit 2, one line. ``OSError`` about a path the user named (a missing
    file, a folder where a file is expected, an unwritable output folder, a full disk) is reported
    the same way: it is the user's environment, not a bug. :class:`Refusal` -> its message as it
    is and its exit code (3). ``KeyboardInterrupt`` -> exit 130.
    """
    debug = debug_requested(sys.argv[1:] if argv is None else argv)
    try:
        return int(main() or 0)
    except Refusal as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return exc.exit_code
    except (UserError, OSError) as exc:
        if debug:
            raise
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return 130
