"""Data layer: corpus reading and validation, selection, readers, labels, synthesis. Imports no torch.

``select_corpus``, ``SelectionSettings`` and ``SelectionResult`` are the selection's library API
(``mprm select``, training and the demo call it). They are resolved on first use, so importing
``mprm.data`` (or any of its modules) stays cheap: no msgspec, numpy or Pillow until needed.
"""

from __future__ import annotations

from typing import Any

from mprm.data.records import BenchItem

_LAZY = {
    "select_corpus": "mprm.data.pipeline",
    "SelectionSettings": "mprm.data.settings",
    "SelectionResult": "mprm.data.settings",
    "SourceCounts": "mprm.data.settings",
}

__all__ = ["BenchItem", "SelectionResult", "SelectionSettings", "SourceCounts", "select_corpus"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mprm.data' has no attribute {name!r}")
