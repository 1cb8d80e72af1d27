"""What a selection is asked to do and what it did: :class:`SelectionSettings` in,
:class:`SelectionResult` out of :func:`mprm.data.pipeline.select_corpus` (no numpy, no torch).

The settings are the whole selection rule of METHOD.md 2-4 and decisions.md D-DATA-1..4: the same
typed object serves ``mprm select`` (built from its flags), training (built from the config's
``selection.*`` and ``data.*`` keys) and the demo, so no layer passes the rule around as a
command line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mprm.data.validation import UNANNOTATED_MODES
from mprm.errors import UserError

#: Selection rules: BIS (METHOD.md 3) and the baselines (METHOD.md 4).
STRATEGIES = ("full", "random", "bis", "mixed", "reliable", "low_mc")


class SelectionSettingsError(UserError):
    """A selection setting is out of range or conflicts with another one."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class SelectionSettings:
    """How to select (METHOD.md 2-4).

    ``strategy``: one of :data:`STRATEGIES`. ``fraction``: the kept share rho in (0, 1]
    (required except for ``full``, which keeps everything whatever the fraction).
    ``alpha``: BIS's mixture bonus (METHOD.md 3; the authors used 0.05 at 25%, 0.2 at 10%).
    ``seed``: the random and mixed baselines' draws. ``per_source``: rank within each source file
    (METHOD.md 3) or all files together. ``label_threshold`` tau and ``soft_labels``: the targets
    written to ``selected.jsonl`` (METHOD.md 2; a threshold with soft labels is a contradiction,
    refused). ``unannotated``: what a step with ``num_mc_total == 0`` means (D-DATA-2).
    ``lenient``: skip and count bad lines instead of stopping at the first (D-DATA-1).
    """

    strategy: str
    fraction: float | None = None
    alpha: float = 0.05
    seed: int = 0
    per_source: bool = True
    label_threshold: float = 0.0
    soft_labels: bool = False
    unannotated: str = "negative"
    lenient: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy = {self.strategy!r}: not one of {', '.join(STRATEGIES)}")
        if self.fraction is None:
            if self.strategy != "full":
                problems.append(f"fraction is required for strategy {self.strategy!r}: the kept share rho in (0, 1], "
                                "e.g. 0.1 for 10% (METHOD.md 3)")
        elif not _number(self.fraction) or not 0.0 < self.fraction <= 1.0:
            problems.append(f"fraction = {self.fraction!r}: must be a number in (0, 1], e.g. 0.1 for 10%")
        if not _number(self.alpha) or self.alpha < 0.0:
            problems.append(f"alpha = {self.alpha!r}: must be a finite number >= 0 (METHOD.md 3: 0.05 or 0.2)")
        if type(self.seed) is not int:
            problems.append(f"seed = {self.seed!r}: must be an integer")
        if not _number(self.label_threshold) or not 0.0 <= self.label_threshold < 1.0:
            problems.append(f"label_threshold = {self.label_threshold!r}: must be in [0, 1), e.g. 0, 1/16 or 2/16 "
                            "(METHOD.md 2)")
        elif self.soft_labels and self.label_threshold != 0.0:
            problems.append(f"label_threshold = {self.label_threshold!r} with soft_labels: soft targets are the MC "
                            "scores themselves; set label_threshold to 0 or soft_labels to False")
        if self.unannotated not in UNANNOTATED_MODES:
            problems.append(f"unannotated = {self.unannotated!r}: not one of {', '.join(UNANNOTATED_MODES)} "
                            "(decisions.md D-DATA-2)")
        for name in ("per_source", "soft_labels", "lenient"):
            if type(getattr(self, name)) is not bool:
                problems.append(f"{name} = {getattr(self, name)!r}: must be True or False")
        if problems:
            raise SelectionSettingsError("selection settings: " + "; ".join(problems))

    @property
    def kept_fraction(self) -> float:
        """rho as applied: 1.0 for ``full``, else ``fraction``."""
        return 1.0 if self.strategy == "full" or self.fraction is None else float(self.fraction)

    @property
    def threshold(self) -> float:
        """tau of the hard labels and of the report's error steps (0 with soft labels)."""
        return 0.0 if self.soft_labels else float(self.label_threshold)

    def parameters(self) -> dict[str, Any]:
        """The settings as applied, in ``report.json``'s ``parameters`` order (without ``input``)."""
        return {
            "strategy": self.strategy, "fraction": self.kept_fraction, "alpha": self.alpha, "seed": self.seed,
            "per_source": self.per_source, "label_threshold": self.threshold, "soft_labels": self.soft_labels,
            "unannotated": self.unannotated, "lenient": self.lenient,
        }


@dataclass(frozen=True)
class SourceCounts:
    """One source (input file): non-empty lines, valid rollouts, rejected lines, k and kept."""

    file: str
    lines: int
    valid: int
    rejected: int
    k: int
    kept: int


@dataclass(frozen=True)
class SelectionResult:
    """What :func:`~mprm.data.pipeline.select_corpus` wrote and counted.

    Paths of the outputs (``plot`` is None when not drawn), per-source counts (sources in file
    order), totals, and rejected lines by reason code (lenient mode; docs/data_formats.md).
    """

    out_dir: Path
    manifest: Path
    selected: Path
    report_json: Path
    report_md: Path
    plot: Path | None
    sources: Mapping[str, SourceCounts]
    lines: int
    valid: int
    rejected: int
    kept: int
    rejected_by_reason: Mapping[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for a log: kept / valid / rejected and where the outputs are."""
        return (f"kept {self.kept:,} of {self.valid:,} valid rollouts ({self.rejected:,} rejected) "
                f"-> {self.out_dir}")
