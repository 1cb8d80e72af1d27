"""Data selection: the Balanced-Information Score and the baselines (METHOD.md 3 and 4).

The exact rule (docs/selection.md):

* Each valid rollout has n scored steps with MC scores s_j; n_pos counts s_j > 0 (independent of
  the label threshold tau); p = n_pos / n; R = mean of the positive s_j (R = 1 when n_pos = 0);
  ``BIS = (p * (1 - p) + alpha) * R``, evaluated in IEEE double in exactly that order, the sum of
  the positives taken exactly (``math.fsum``) before the one division.
* Per source (one file), k = max(1, floor(m * rho)) where m counts the source's valid rollouts
  (validation first, then ranking; METHOD.md 10.2); ``floor(m * rho)`` is computed exactly on the
  decimal value of rho (``Fraction(repr(rho))``), so rho = 0.1 and m = 30 gives 3 and rho = 0.29,
  m = 100 gives 29. A source with m = 0 keeps nothing. ``per_source=False`` (``--global``) ranks
  all rollouts at once with k = max(1, floor(M * rho)).
* The ranking is a stable descending sort: equal scores keep file order. Chosen rollouts are
  returned in file order.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from mprm.data.settings import STRATEGIES


def keep_count(m: int, fraction: float) -> int:
    """k = max(1, floor(m * fraction)) for m > 0 (0 when m = 0), exact in decimal arithmetic."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if m <= 0:
        return 0
    return max(1, math.floor(m * Fraction(repr(float(fraction)))))


@dataclass
class ScoreTable:
    """Per-rollout numbers selection needs, as columns (one row per valid rollout, file order).

    ``n_steps``: scored steps n; ``n_pos``: steps with s_j > 0; ``sum_mc``: exact-then-rounded
    sum of s_j (= the sum over the positives, since negatives are 0).
    """

    n_steps: np.ndarray
    n_pos: np.ndarray
    sum_mc: np.ndarray

    def __len__(self) -> int:
        return len(self.n_steps)

    def reliability(self) -> np.ndarray:
        """R: mean MC of the positive steps, 1 for an all-negative rollout (METHOD.md 3)."""
        out = np.ones(len(self), np.float64)
        has = self.n_pos > 0
        out[has] = self.sum_mc[has] / self.n_pos[has]
        return out

    def bis(self, alpha: float) -> np.ndarray:
        """BIS per rollout (METHOD.md 3): ``(p * (1 - p) + alpha) * R`` with ``p = n_pos / n``, in IEEE
        double in exactly that order."""
        p = self.n_pos / self.n_steps
        return (p * (1 - p) + alpha) * self.reliability()

    def mean_mc(self) -> np.ndarray:
        return self.sum_mc / self.n_steps

    def mixed(self) -> np.ndarray:
        """Rollouts with both a positive (s_j > 0) and a negative (s_j = 0) step."""
        return (self.n_pos > 0) & (self.n_pos < self.n_steps)


def ranking_score(table: ScoreTable, strategy: str, alpha: float) -> np.ndarray:
    """The score listed in the manifest: what the strategy ranks by.

    ``bis``: BIS; ``reliable``: R; ``low_mc``: mean step MC (ranked ascending). ``full``,
    ``random`` and ``mixed`` rank by nothing; their manifest shows BIS for reference.
    """
    if strategy == "reliable":
        return table.reliability()
    if strategy == "low_mc":
        return table.mean_mc()
    return table.bis(alpha)


def _rng(seed: int, group: str) -> random.Random:
    """One generator per group, seeded from (seed, group name), so groups do not affect each other."""
    return random.Random(f"{seed}:{group}")


def choose_group(
    table: ScoreTable,
    rows: np.ndarray,
    k: int,
    *,
    strategy: str,
    alpha: float,
    seed: int,
    group: str,
    score: np.ndarray | None = None,
) -> np.ndarray:
    """Indices (into the table, sorted = file order) that one group keeps (METHOD.md 3-4).

    ``score`` is :func:`ranking_score` of the whole table when the caller has it already.
    """
    m = len(rows)
    if k >= m:
        return rows.copy()
    if strategy == "full":
        return rows.copy()
    if strategy == "random":
        return np.sort(rows[sorted(_rng(seed, group).sample(range(m), k))])
    if strategy == "mixed":
        rng = _rng(seed, group)
        mixed_mask = table.mixed()[rows]
        mixed, other = rows[mixed_mask], rows[~mixed_mask]
        if len(mixed) >= k:
            return np.sort(mixed[rng.sample(range(len(mixed)), k)])
        fill = other[rng.sample(range(len(other)), k - len(mixed))]
        return np.sort(np.concatenate([mixed, fill]))
    score = (ranking_score(table, strategy, alpha) if score is None else score)[rows]
    if strategy in ("bis", "reliable"):
        order = np.argsort(-score, kind="stable")
    elif strategy == "low_mc":
        order = np.argsort(score, kind="stable")
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    return np.sort(rows[order[:k]])


@dataclass
class Selection:
    """Chosen rows (indices into the table, file order), the ranking score of every row, and k."""

    chosen: np.ndarray
    scores: np.ndarray
    k: dict[str, int]


def select_table(
    table: ScoreTable,
    group_ids: np.ndarray,
    group_names: Sequence[str],
    *,
    strategy: str,
    fraction: float = 1.0,
    alpha: float = 0.05,
    seed: int = 0,
    per_source: bool = True,
) -> Selection:
    """Select rows of a table; row i belongs to source ``group_names[group_ids[i]]``.

    Per source (default) every source is ranked on its own with its own k; with
    ``per_source=False`` all rows form one group named ``__global__``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if strategy == "full":
        fraction = 1.0
    group_ids = np.asarray(group_ids, np.int64)
    if per_source:
        order = np.argsort(group_ids, kind="stable")
        bounds = np.searchsorted(group_ids[order], np.arange(len(group_names) + 1))
        groups = [(name, order[bounds[g] : bounds[g + 1]]) for g, name in enumerate(group_names)]
    else:
        groups = [("__global__", np.arange(len(table)))]
    score = ranking_score(table, strategy, alpha)
    chosen, ks = [], {}
    for name, rows in groups:
        k = keep_count(len(rows), fraction)
        ks[name] = k
        chosen.append(choose_group(table, rows, k, strategy=strategy, alpha=alpha, seed=seed, group=name, score=score))
    picked = np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, np.int64)
    return Selection(picked, score, ks)

