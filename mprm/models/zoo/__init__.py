"""The backbone zoo: every built-in family, one module each (docs/models.md, the zoo table).

A family module holds what truly differs between families and nothing else: its
:class:`~mprm.models.backbones.BackboneSpec` entry (transformers class, module prefixes, LoRA
targets, forward inputs, system message, image defaults, "Yes"/"No" entries), its image handler
where no shared one fits, and the builder of its tiny random checkpoint (``mprm tiny --backbone
NAME``). The layout itself, the authors' system / empty user / assistant turns, is rendered by each
family's own chat template (mprm.models.chat), so no family carries prompt code.

Importing :mod:`mprm.models.backbones` imports this package, which registers every family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The language model's linear layers: the LoRA targets of every family in the zoo.
LM_LINEARS = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def lora_targets(language_prefix: str) -> str:
    """A peft ``target_modules`` regex: the linear layers under the language model only (vision
    towers have ``q_proj``/``k_proj``/... too, which must stay frozen)."""
    return rf".*{language_prefix}.*\.{LM_LINEARS}"


@dataclass(frozen=True)
class TinyFamily:
    """A tiny random checkpoint of a family: ``build(folder, words, text)`` writes it, ``backbone``
    is the registry entry that loads it, ``example`` a real checkpoint of the same layout."""

    backbone: str
    build: Callable[[Path, Sequence[str], dict[str, Any]], None]
    example: str
    takes_words: bool = False


#: ``mprm tiny --backbone NAME``: tiny family name -> builder (mprm.models.tiny.build_tiny).
TINY: dict[str, TinyFamily] = {}


def register_tiny(name: str, family: TinyFamily) -> None:
    if name in TINY:
        raise ValueError(f"tiny family {name!r} is already registered")
    TINY[name] = family


# Imported after the definitions above, which the family modules use.
from mprm.models.zoo import gemma3, idefics3, internvl, llava_onevision, mistral3, qwen  # noqa: E402,F401
