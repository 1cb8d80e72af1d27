"""Step heads: what turns the backbone's last hidden state into logits, a loss and P(step correct).

A head is a registered :class:`StepHead` subclass (``register_head``); the config's ``model.head``
choices and their error messages come from this registry. The interface is small:

* ``logits(inputs, lm_head)``: ``inputs`` is a :class:`HeadInputs`, the batch as the head sees it
  (the last hidden state ``[B, T, hidden]``, ``input_ids``, ``attention_mask`` and the ``<prm>``
  rows and positions); ``inputs.at_prm`` are the ``[n_prm, hidden]`` states at the ``<prm>``
  positions, gathered once. ``lm_head`` is the backbone's output embedding module (called on those
  rows only, so under ZeRO-3 its hooks gather the partitioned weight; decisions.md D-MODELS-4).
  One row of logits per ``<prm>`` position, in the batch's ``<prm>`` order;
* ``loss(logits, targets)``: summed loss over labelled steps and their count (the trainer
  normalises over a whole optimiser step, METHOD.md 10.6); ``targets`` are floats in [0, 1]
  (hard or soft), ``IGNORE_LABEL`` marks unlabelled steps;
* ``scores(logits)``: P(step correct) per step.

A head with parameters of its own keeps them directly on the module (``weight``, ``bias``): the
reward model holds it as ``score_head`` and saves them as ``score_head.safetensors``. A head that
needs more than the ``<prm>`` states (the tokens of each step, the token before ``<prm>``) computes
it in ``logits`` from ``inputs``, without changing the formatter or the tokenisation cache. A head
that reads ``lm_head`` sets ``uses_lm_head`` (LoRA then keeps the LM head trainable, and the FLOPs
formula counts the LM head at the ``<prm>`` rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import nn

from mprm.data.labels import IGNORE_LABEL


#: The head of ``model.head`` when none is named: the paper's (METHOD.md 6).
DEFAULT_HEAD = "yes_no"


@dataclass(frozen=True)
class HeadInputs:
    """What a head gets from one batch: the backbone's last hidden state and the batch's token and
    ``<prm>`` layout (:meth:`mprm.models.prompting.Formatter.collate`: right-padded, one
    ``prm_batch``/``prm_pos`` entry per ``<prm>`` in batch order)."""

    hidden: torch.Tensor  # [B, T, hidden]: the last hidden state (after the final norm)
    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]: 1 for real tokens, 0 for padding
    prm_batch: torch.Tensor  # [n_prm]: the sequence of each <prm>
    prm_pos: torch.Tensor  # [n_prm]: its position in that sequence

    @cached_property
    def at_prm(self) -> torch.Tensor:
        """``[n_prm, hidden]``: the hidden states at the ``<prm>`` positions (gathered on first use)."""
        return self.hidden[self.prm_batch, self.prm_pos]

    @property
    def n_prm(self) -> int:
        return int(self.prm_pos.shape[0])


class StepHead(nn.Module):
    """Base class of the step heads (see the module docstring)."""

    #: True when the head reads the backbone's LM head (LoRA must then keep it fully trainable).
    uses_lm_head: bool = False

    def __init__(self, *, hidden_size: int, yes_id: int, no_id: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.yes_id, self.no_id = yes_id, no_id

    def logits(self, inputs: HeadInputs, lm_head: nn.Module) -> torch.Tensor:
        """One row per ``<prm>`` position (``[n_prm, ...]``), in ``inputs``' ``<prm>`` order."""
        raise NotImplementedError

    def per_step_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sum of per-step losses over labelled steps, number of labelled steps)``."""
        mask = targets != IGNORE_LABEL
        y = torch.where(mask, targets, torch.zeros_like(targets)).float()
        return (self.per_step_loss(logits, y) * mask).sum(), mask.sum()

    @property
    def has_parameters(self) -> bool:
        return any(True for _ in self.parameters(recurse=False))


class YesNoHead(StepHead):
    """The paper's head (METHOD.md 6): logits of "Yes" and "No" at each ``<prm>`` (no shift), 2-way
    cross-entropy with target ``[y, 1 - y]``, score = softmax P("Yes")."""

    uses_lm_head = True

    def logits(self, inputs: HeadInputs, lm_head: nn.Module) -> torch.Tensor:
        return lm_head(inputs.at_prm)[:, [self.yes_id, self.no_id]]

    def per_step_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits.float(), dim=-1)
        return -(y * logp[:, 0] + (1.0 - y) * logp[:, 1])

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=-1)[:, 0]


class LinearHead(StepHead):
    """A new ``Linear(hidden, 1)`` on the ``<prm>`` state, BCE with logits, score = sigmoid."""

    def __init__(self, *, hidden_size: int, yes_id: int, no_id: int, dtype: torch.dtype) -> None:
        super().__init__(hidden_size=hidden_size, yes_id=yes_id, no_id=no_id, dtype=dtype)
        self.weight = nn.Parameter(torch.empty(1, hidden_size, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(1, dtype=dtype))
        nn.init.normal_(self.weight, std=hidden_size**-0.5)

    def logits(self, inputs: HeadInputs, lm_head: nn.Module) -> torch.Tensor:
        return F.linear(inputs.at_prm.to(self.weight.dtype), self.weight, self.bias).squeeze(-1)

    def per_step_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), y, reduction="none")

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())


_HEADS: dict[str, type[StepHead]] = {}


def register_head(name: str, cls: type[StepHead], *, replace: bool = False) -> None:
    """Make ``cls`` selectable as ``model.head=name`` (``replace=True`` to override an entry)."""
    if not (isinstance(cls, type) and issubclass(cls, StepHead)):
        raise TypeError(f"head {name!r}: {cls!r} is not a StepHead subclass")
    if name in _HEADS and not replace:
        raise ValueError(f"head {name!r} is already registered; pass replace=True to override it")
    _HEADS[name] = cls


def unregister_head(name: str) -> None:
    """Remove a registered head (tests, or to replace a built-in cleanly)."""
    get_head(name)
    del _HEADS[name]


def head_names() -> list[str]:
    return sorted(_HEADS)


def get_head(name: str) -> type[StepHead]:
    if name not in _HEADS:
        raise ValueError(f"head={name!r}: unknown step head; registered: {', '.join(head_names())}")
    return _HEADS[name]


def make_head(name: str, **kwargs: object) -> StepHead:
    return get_head(name)(**kwargs)


register_head(DEFAULT_HEAD, YesNoHead)
register_head("linear", LinearHead)
