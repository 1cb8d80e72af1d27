"""What a run is: backbone family, selection strategy, kept fraction, alpha and label kind.

One :class:`Setting` names a row of the paper's Table 2 (METHOD.md 8). The same object is built
from the experiment grid (:mod:`mprm.repro.grid`, to write configs and commands) and from a
finished run's resolved config (:func:`setting_from_config`, to put the run in the right row), so
the sweep and the report can never disagree on a name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from mprm.data.settings import STRATEGIES

#: MC continuations per step in VisualPRM400K (METHOD.md 1): tau = k/N names "k/N".
NUM_MC = 16
_STRATEGY_TITLES = {"random": "Random", "bis": "BIS", "mixed": "Mixed", "reliable": "Reliable", "low_mc": "Low-MC"}
DEFAULT_ALPHA = 0.05
#: alpha the authors' public code used per kept fraction (METHOD.md 3, 10.1); others use 0.05.
AUTHORS_ALPHA: dict[float, float] = {0.10: 0.2, 0.25: 0.05}


def main_alpha(fraction: float) -> float:
    """The grid's alpha for a BIS run at ``fraction`` (docs/decisions.md D-REPRO-1).

    The authors' value where their code shows one (0.2 at 10%, 0.05 at 25%), the paper's default
    0.05 elsewhere (METHOD.md 3 and 10.1).
    """
    for frac, alpha in AUTHORS_ALPHA.items():
        if math.isclose(fraction, frac, abs_tol=1e-9):
            return alpha
    return DEFAULT_ALPHA


def _num(x: float) -> str:
    """Shortest faithful text of a number for names: 0.05 -> '0.05', 10.0 -> '10'."""
    return f"{x:g}"


@dataclass(frozen=True)
class Setting:
    """One experimental setting (a row of Table 2), independent of backbone and seed.

    ``fraction`` is the kept fraction rho in (0, 1] (1.0 for Full); ``alpha`` is only meaningful
    for BIS (None otherwise); ``threshold`` is the hard-label tau, ignored when ``soft``
    (METHOD.md 2). ``per_source`` (rank within each source file, METHOD.md 3) and ``unannotated``
    (how never-rolled-out steps are labelled, METHOD.md 9) keep the paper's choice by default; a
    run that departs from it gets its own row (``_global`` / ``_truncate`` in the key).
    """

    strategy: str
    fraction: float = 1.0
    alpha: float | None = None
    threshold: float = 0.0
    soft: bool = False
    per_source: bool = True
    unannotated: str = "negative"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must lie in (0, 1], got {self.fraction!r}")
        if self.strategy == "bis" and self.alpha is None:
            raise ValueError("a BIS setting needs alpha")

    @property
    def percent(self) -> str:
        """The kept fraction in percent as text: 0.1 -> '10', 0.125 -> '12.5'."""
        return _num(round(self.fraction * 100, 6))

    @property
    def label_kind(self) -> str:
        """'soft', 'hard0', 'hard1n', 'hard2n' or 'hard<tau>' (METHOD.md 2)."""
        if self.soft:
            return "soft"
        for k in range(3):
            if math.isclose(self.threshold, k / NUM_MC, abs_tol=1e-9):
                return "hard0" if k == 0 else f"hard{k}n"
        return f"hard{_num(self.threshold)}"

    @property
    def key(self) -> str:
        """File-system-safe name: full_hard0, random_10, bis_10_a0.2, low_mc_25, bis_25_a0.05_soft."""
        if self.strategy == "full":
            return f"full_{self.label_kind}{self._variant_suffix}"
        key = f"{self.strategy}_{self.percent}"
        if self.strategy == "bis":
            key += f"_a{_num(self.alpha)}"
        if self.label_kind != "hard0":
            key += f"_{self.label_kind}"
        return key + self._variant_suffix

    @property
    def _variant_suffix(self) -> str:
        suffix = "" if self.per_source or self.strategy == "full" else "_global"
        return suffix + ("" if self.unannotated == "negative" else f"_{self.unannotated}")

    @property
    def _variant_title(self) -> str:
        title = "" if self.per_source or self.strategy == "full" else ", global ranking"
        return title + ("" if self.unannotated == "negative" else f", unannotated steps: {self.unannotated}")

    @property
    def title(self) -> str:
        """The row label of Table 2: 'Full, hard tau=1/N', 'Random-10%', 'BIS-10% (alpha 0.2)'."""
        labels = {"soft": "soft", "hard0": "hard tau=0", "hard1n": "hard tau=1/N", "hard2n": "hard tau=2/N"}
        label = labels.get(self.label_kind, f"hard tau={_num(self.threshold)}")
        if self.strategy == "full":
            return f"Full, {label}{self._variant_title}"
        title = f"{_STRATEGY_TITLES[self.strategy]}-{self.percent}%"
        if self.strategy == "bis":
            title += f" (alpha {_num(self.alpha)})"
        if self.label_kind != "hard0":
            title += f", {label}"
        return title + self._variant_title

    @property
    def sort_key(self) -> tuple:
        """The paper's row order: Full rows, Random/BIS by fraction, the 25% baselines, alpha ablations."""
        label_rank = {"hard0": 0, "hard1n": 1, "hard2n": 2, "soft": 3}.get(self.label_kind, 4)
        if self.strategy == "full":
            return (1 if not self._variant_suffix else 5, label_rank, self.threshold, 0.0, 0, 0.0)
        if self.label_kind != "hard0" or self._variant_suffix:
            group = 5
        elif self.strategy in ("mixed", "reliable", "low_mc"):
            group = 3
        elif self.strategy == "bis" and not math.isclose(self.alpha or 0.0, main_alpha(self.fraction)):
            group = 4
        else:
            group = 2
        order = {"random": 0, "bis": 1, "mixed": 2, "reliable": 3, "low_mc": 4}[self.strategy]
        return (group, label_rank, self.threshold, self.fraction, order, self.alpha or 0.0)


def _get(cfg: Mapping[str, Any], dotted: str, source: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"{source}: key {dotted!r} is missing from the resolved config")
        node = node[part]
    return node


def setting_from_config(cfg: Mapping[str, Any], *, source: str = "config") -> tuple[str, Setting]:
    """Read (backbone family, setting) from a run's resolved config (nested dict).

    Uses ``model.backbone``, ``selection.strategy``, ``selection.fraction``, ``selection.alpha``,
    ``data.label_threshold`` and ``data.soft_labels``; ``selection.per_source`` and
    ``data.unannotated`` when present (the paper's choices otherwise). ``source`` names the file in
    errors.
    """
    family = str(_get(cfg, "model.backbone", source))
    strategy = str(_get(cfg, "selection.strategy", source))
    if strategy not in STRATEGIES:
        raise ValueError(f"{source}: selection.strategy = {strategy!r} is not one of {', '.join(STRATEGIES)}")
    soft = bool(_get(cfg, "data.soft_labels", source))
    threshold = float(_get(cfg, "data.label_threshold", source))
    variant = {"per_source": bool((cfg.get("selection") or {}).get("per_source", True)),
               "unannotated": str((cfg.get("data") or {}).get("unannotated", "negative"))}
    if strategy == "full":
        return family, Setting("full", threshold=threshold, soft=soft, **variant)
    fraction = float(_get(cfg, "selection.fraction", source))
    alpha = float(_get(cfg, "selection.alpha", source)) if strategy == "bis" else None
    return family, Setting(strategy, fraction=fraction, alpha=alpha, threshold=threshold, soft=soft, **variant)
