"""VisualProcessBench step metrics (METHOD.md 7), numpy only.

Definitions (docs/evaluation.md has the full text and the edge cases):

* Labels are mprm's internal coding (1 correct, 0 incorrect, -1 neutral; mprm.data.labels): the
  files speak the benchmark's, and their readers convert.
* A step is predicted correct when its score >= threshold; neutral steps (label -1) are excluded,
  and so are steps without a score (cut by the token limit; counted in ``StepData.cut``).
* Per source: macro-F1 = mean of the F1 of the correct class and the F1 of the incorrect class.
* ``overall`` = the per-source macro-F1 averaged with weights = each source's number of
  non-neutral steps (the paper's "micro" column).
* Extras: pooled macro-F1 / F1s over all non-neutral steps, and ROC-AUC with tied scores given
  their average rank.
* F1 of a class = 2 TP / (2 TP + FP + FN); when the class has no true and no predicted member the
  ratio is 0/0 and is defined as 0.0 (sklearn's ``zero_division=0``; decisions.md D-EVAL-1).
* A source with no non-neutral step has weight 0 and reports ``null`` F1s.
* AUC is ``null`` when either class is absent.

Everything is expressed through per-source counts of "steps scored below the threshold", which
``np.searchsorted`` gives for any number of thresholds at once: the same code computes the metrics
at one threshold and the whole oracle sweep (mprm.eval.thresholds), so the two cannot disagree.
This module imports no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from mprm.data.labels import CORRECT, INCORRECT, NEUTRAL, VALID_LABELS
from mprm.errors import UserError


@dataclass(frozen=True)
class StepData:
    """The scored non-neutral steps of a benchmark, flattened.

    ``scores`` (float64), ``labels`` (bool, True = correct) and ``source`` (index into
    ``sources``) are parallel arrays. ``sources`` lists every source seen, in order of first
    appearance, including sources whose steps are all neutral (they get ``n_steps`` 0). ``cut``
    lists ``(id, steps cut, steps)`` for every item with steps the token limit cut (no score):
    they are left out of the arrays and counted here (decisions.md D-EVAL-6).
    """

    scores: np.ndarray
    labels: np.ndarray
    source: np.ndarray
    sources: tuple[str, ...]
    cut: tuple[tuple[str, int, int], ...] = ()
    _sorted: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_steps(self) -> int:
        return int(self.scores.size)

    @property
    def n_cut(self) -> int:
        """Steps without a score (cut by the token limit), neutral ones included."""
        return sum(c for _, c, _ in self.cut)

    def sorted_by_source(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per source, the sorted scores of its correct steps and of its incorrect steps."""
        if not self._sorted:
            pos, neg = [], []
            for s in range(len(self.sources)):
                mine = self.source == s
                pos.append(np.sort(self.scores[mine & self.labels]))
                neg.append(np.sort(self.scores[mine & ~self.labels]))
            self._sorted["pos"], self._sorted["neg"] = pos, neg
        return self._sorted["pos"], self._sorted["neg"]


def step_data_from_rows(rows: Iterable[Mapping[str, Any]], *, origin: str = "predictions") -> StepData:
    """Flatten prediction rows (``data_source``, ``labels``, ``scores``) into :class:`StepData`.

    Labels are in the internal coding (1 correct, 0 incorrect, -1 neutral; the readers of
    predictions files convert). A ``None`` score is a step cut by the token limit: left out and
    counted in ``cut``. A malformed row (length mismatch, a label outside {1, 0, -1}, a
    non-finite score) is a UserError naming ``origin``, the row number, the item id and the value.
    """
    sources: dict[str, int] = {}
    scores: list[float] = []
    labels: list[bool] = []
    index: list[int] = []
    cut: list[tuple[str, int, int]] = []
    for n, row in enumerate(rows, start=1):
        where = f"{origin}: row {n} (id {row.get('id')!r})"
        try:
            src, lab, sco = str(row["data_source"]), row["labels"], row["scores"]
        except KeyError as exc:
            raise UserError(f"{where}: missing field {exc.args[0]!r}") from None
        if len(lab) != len(sco):
            raise UserError(f"{where}: {len(lab)} labels but {len(sco)} scores: one score per step")
        s = sources.setdefault(src, len(sources))
        n_cut = 0
        for j, (y, x) in enumerate(zip(lab, sco)):
            if isinstance(y, bool) or y not in VALID_LABELS:
                raise UserError(f"{where}: labels[{j}] = {y!r}, expected 1, 0 or -1 (internal coding)")
            if x is None:
                n_cut += 1
                continue
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise UserError(f"{where}: scores[{j}] = {x!r}, expected a finite number")
            if y == NEUTRAL:
                continue
            scores.append(float(x))
            labels.append(y == CORRECT)
            index.append(s)
        if n_cut:
            cut.append((str(row.get("id")), n_cut, len(sco)))
    return StepData(
        scores=np.asarray(scores, dtype=np.float64),
        labels=np.asarray(labels, dtype=bool),
        source=np.asarray(index, dtype=np.int64),
        sources=tuple(sources),
        cut=tuple(cut),
    )


def class_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 = 2TP / (2TP + FP + FN), elementwise; 0/0 (class absent, never predicted) is 0.0."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    denom = 2.0 * tp + fp + fn
    return np.divide(2.0 * tp, denom, out=np.zeros(np.broadcast(tp, denom).shape), where=denom > 0)


@dataclass(frozen=True)
class Counts:
    """Per-source confusion counts at K thresholds: arrays of shape (S, K)."""

    tp: np.ndarray  # correct steps predicted correct
    fn: np.ndarray  # correct steps predicted incorrect
    fp: np.ndarray  # incorrect steps predicted correct
    tn: np.ndarray  # incorrect steps predicted incorrect

    @property
    def n(self) -> np.ndarray:
        return self.tp + self.fn + self.fp + self.tn

    def f1_positive(self) -> np.ndarray:
        return class_f1(self.tp, self.fp, self.fn)

    def f1_negative(self) -> np.ndarray:
        return class_f1(self.tn, self.fn, self.fp)

    def macro_f1(self) -> np.ndarray:
        return 0.5 * (self.f1_positive() + self.f1_negative())

    def pooled(self) -> "Counts":
        return Counts(*(a.sum(axis=0, keepdims=True) for a in (self.tp, self.fn, self.fp, self.tn)))

    def overall(self) -> np.ndarray:
        """Per-source macro-F1 weighted by non-neutral step counts (METHOD.md 7), shape (K,).

        NaN at every threshold when there is no non-neutral step at all.
        """
        n = self.n.astype(np.float64)
        total = n.sum(axis=0)
        weighted = (n * self.macro_f1()).sum(axis=0)
        return np.divide(weighted, total, out=np.full(total.shape, np.nan), where=total > 0)


def counts_at(data: StepData, thresholds: np.ndarray) -> Counts:
    """Confusion counts per source at every threshold at once (predicted correct: score >= t).

    For each source, ``searchsorted(sorted_scores, t, 'left')`` is the number of steps scored
    strictly below ``t``, i.e. predicted incorrect: O(S K log n) after one sort per source.
    """
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    pos, neg = data.sorted_by_source()
    s, k = len(data.sources), t.size
    fn = np.zeros((s, k), dtype=np.int64)
    tn = np.zeros((s, k), dtype=np.int64)
    n_pos = np.zeros((s, 1), dtype=np.int64)
    n_neg = np.zeros((s, 1), dtype=np.int64)
    for i in range(s):
        fn[i] = np.searchsorted(pos[i], t, side="left")
        tn[i] = np.searchsorted(neg[i], t, side="left")
        n_pos[i], n_neg[i] = pos[i].size, neg[i].size
    return Counts(tp=n_pos - fn, fn=fn, fp=n_neg - tn, tn=tn)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC-AUC (Mann-Whitney U over average ranks, so tied scores count one half).

    ``None`` when either class is absent (the AUC is undefined).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, tie_counts = np.unique(scores, return_inverse=True, return_counts=True)
    upper = np.cumsum(tie_counts)
    avg_rank = upper - (tie_counts - 1) / 2.0  # ranks are 1-based
    rank_sum = avg_rank[inverse][labels].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def first_error_auc(rows: Iterable[Mapping[str, Any]]) -> float | None:
    """ROC-AUC of correct steps against the FIRST incorrect step of each item (docs/demo.md).

    A verifier must catch the step where a solution goes wrong; later wrong steps are easier (a
    solution that went wrong tends to stay wrong), so the pooled AUC flatters a model that only
    learned "late steps of bad solutions are bad". Rows carry ``labels`` in the internal coding
    (1 correct, 0 incorrect, -1 neutral: what :func:`mprm.eval.predictions.read_predictions`
    returns) and ``scores``; steps without a score (``None``, cut by the token limit) are left out.
    ``None`` when either class is absent.
    """
    scores: list[float] = []
    labels: list[bool] = []
    for row in rows:
        seen_error = False
        for y, x in zip(row["labels"], row["scores"]):
            if x is None:
                continue
            if y == CORRECT:
                scores.append(float(x))
                labels.append(True)
            elif y == INCORRECT and not seen_error:
                seen_error = True
                scores.append(float(x))
                labels.append(False)
    return roc_auc(np.asarray(scores), np.asarray(labels, dtype=bool))


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def metrics_at(data: StepData, threshold: float) -> dict[str, Any]:
    """The metric block ``M`` of metrics.json at one threshold (METHOD.md 7).

    Keys: ``overall``, ``macro_f1_pooled``, ``f1_positive``, ``f1_negative``, ``auc``,
    ``n_steps`` and ``per_source`` {source: {``macro_f1``, ``f1_positive``, ``f1_negative``,
    ``n_steps``}}. Values are fractions in [0, 1] (``null`` where undefined).
    """
    c = counts_at(data, np.array([threshold]))
    n = c.n[:, 0]
    f1p, f1n, macro = c.f1_positive()[:, 0], c.f1_negative()[:, 0], c.macro_f1()[:, 0]
    per_source = {
        name: {
            "macro_f1": _num(macro[i]) if n[i] else None,
            "f1_positive": _num(f1p[i]) if n[i] else None,
            "f1_negative": _num(f1n[i]) if n[i] else None,
            "n_steps": int(n[i]),
        }
        for i, name in enumerate(data.sources)
    }
    pooled = c.pooled()
    has_steps = data.n_steps > 0
    return {
        "overall": _num(c.overall()[0]),
        "macro_f1_pooled": _num(pooled.macro_f1()[0, 0]) if has_steps else None,
        "f1_positive": _num(pooled.f1_positive()[0, 0]) if has_steps else None,
        "f1_negative": _num(pooled.f1_negative()[0, 0]) if has_steps else None,
        "auc": roc_auc(data.scores, data.labels),
        "n_steps": data.n_steps,
        "per_source": per_source,
    }
