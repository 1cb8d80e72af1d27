"""One solution score from its step scores: the single aggregation path of mprm.

Best-of-N reranking (``eval.py --bon``, :mod:`mprm.eval.bon`) and the RL reward
(:class:`mprm.rewards.StepReward`) both turn a list of step scores P(step correct) into one number
here, so a reward used in training and the same reward used to rerank at test time cannot drift
apart. Torch-free (numpy only).

The rules, and what each one rewards (docs/rl.md discusses the choice):

* ``min``: the weakest step. A solution is only as good as its worst step, so one wrong step
  sinks it however good the rest is; the usual choice for a process reward in RL, because a
  policy cannot raise it by padding a bad derivation with many easy, correct steps.
* ``mean``: the average step (the paper's Best-of-N rule, METHOD.md 7). Rewards overall quality
  and tolerates a single doubtful step; it can be gamed by adding easy steps.
* ``last``: the score of the final step. The reward model reads the whole solution before its
  last ``<prm>``, so this is close to an outcome reward judged by the PRM.
* ``prod``: the product, i.e. P(every step correct) if the step judgements were independent.
  Strictest; it also falls with the number of steps, so it favours short solutions.

Steps that were not scored (``nan``: cut by the reward model's token limit) are left out and
counted; a solution with no scored step has no aggregate (``None``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mprm.errors import UserError

#: name -> function of a non-empty sequence of finite step scores. ``mean`` is numpy's (pairwise
#: summation), as Best-of-N has always used, so its picks are unchanged.
AGGREGATES: dict[str, Callable[[Sequence[float]], float]] = {
    "min": lambda s: float(np.min(s)),
    "mean": lambda s: float(np.mean(s)),
    "last": lambda s: float(s[-1]),
    "prod": lambda s: float(np.prod(np.asarray(s, dtype=np.float64))),
}


@dataclass(frozen=True)
class Aggregated:
    """An aggregate with its bookkeeping: ``value`` (``None`` when no step was scored),
    ``n_scored`` steps that entered it and ``n_cut`` steps left out because they had no score."""

    value: float | None
    n_scored: int
    n_cut: int


def check_aggregate(name: str) -> str:
    """``name`` if it is a known rule, else a :class:`UserError` listing the rules."""
    if name not in AGGREGATES:
        raise UserError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {name!r}")
    return name


def aggregate_steps(scores: Sequence[float], how: str) -> Aggregated:
    """Aggregate the finite scores of ``scores`` with rule ``how``; non-finite ones are counted as cut."""
    fn = AGGREGATES[check_aggregate(how)]
    kept = [float(x) for x in scores if math.isfinite(x)]
    cut = len(scores) - len(kept)
    return Aggregated(fn(kept) if kept else None, len(kept), cut)


def aggregate(scores: Sequence[float], how: str) -> float | None:
    """The aggregate value alone (``None`` when no step has a score)."""
    return aggregate_steps(scores, how).value
