"""Threshold choice: fixed, held-out ("dev") and oracle (METHOD.md 7 and 10.3), numpy only.

The paper says its threshold was tuned on a held-out split, while the authors' code sweeps it on
the benchmark itself. We report all three, labelled (decisions.md D-EVAL-2):

* ``fixed``: the value given on the command line (0.5 by default);
* ``dev``: the threshold that maximises ``overall`` on a separate labelled file, applied to the
  test set;
* ``oracle``: the threshold that maximises ``overall`` on the test set itself.

Both sweeps try every distinct score of the file plus one value just above the maximum (every
step predicted incorrect); ties in ``overall`` go to the lowest threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mprm.errors import UserError
from mprm.eval.metrics import StepData, counts_at, metrics_at


@dataclass(frozen=True)
class Sweep:
    """``overall`` at every candidate threshold (both arrays of shape (K,), thresholds ascending)."""

    thresholds: np.ndarray
    overall: np.ndarray

    def best(self) -> tuple[float, float]:
        """(threshold, overall) of the first (lowest) threshold reaching the maximum."""
        i = int(np.argmax(self.overall))
        return float(self.thresholds[i]), float(self.overall[i])


def candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    """Every distinct score, ascending, plus the next float above the maximum."""
    distinct = np.unique(np.asarray(scores, dtype=np.float64))
    if distinct.size == 0:
        return distinct
    return np.append(distinct, np.nextafter(distinct[-1], np.inf))


def sweep(data: StepData) -> Sweep:
    """``overall`` at every candidate threshold, vectorised (one searchsorted per source and class).

    Raises UserError when the data has no non-neutral step (no threshold can be chosen).
    """
    if data.n_steps == 0:
        raise UserError("cannot sweep thresholds: no non-neutral step (every label is -1)")
    t = candidate_thresholds(data.scores)
    return Sweep(thresholds=t, overall=counts_at(data, t).overall())


def best_threshold(data: StepData) -> float:
    """The threshold maximising ``overall`` on ``data`` (oracle on the test set, or dev)."""
    return sweep(data).best()[0]


def summarise(test: StepData, *, fixed: float, dev: StepData | None = None) -> dict[str, Any]:
    """The content of ``metrics.json``: thresholds and metric blocks for fixed, dev and oracle.

    ``dev`` entries are ``None`` when no dev file was given.
    """
    oracle = best_threshold(test)
    dev_t = best_threshold(dev) if dev is not None else None
    return {
        "thresholds": {"fixed": float(fixed), "dev": dev_t, "oracle": oracle},
        "results": {
            "fixed": metrics_at(test, fixed),
            "dev": metrics_at(test, dev_t) if dev_t is not None else None,
            "oracle": metrics_at(test, oracle),
        },
    }
