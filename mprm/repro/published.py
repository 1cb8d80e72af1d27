"""The paper's published VisualProcessBench numbers (METHOD.md 8) as data.

Keys are the setting keys of :mod:`mprm.repro.settings` (``full_hard0``, ``bis_10_a0.2``, ...),
per backbone family (the ``model.backbone`` value of a run's config). Values are percentages as
printed in the paper. Where the paper gives per-source numbers (the Full and BIS-10% rows) they
are kept in the paper's column order.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Column order of the paper's Table 2.
COLUMNS: tuple[str, ...] = ("Overall", "MathVision", "MathVerse", "MMMU", "DynaMath", "WeMath")
SOURCE_COLUMNS: tuple[str, ...] = COLUMNS[1:]


@dataclass(frozen=True)
class Published:
    """One published row: overall F1 (%) and, where the paper reports them, per-column values."""

    overall: float
    per_column: dict[str, float] | None = None

    def value(self, column: str) -> float | None:
        """The published value of ``column`` ("Overall" or a source column), or None if unpublished."""
        if column == "Overall":
            return self.overall
        if self.per_column is None:
            return None
        return self.per_column.get(column)


def _row(*values: float) -> Published:
    """A row given in the paper's column order (Overall first)."""
    if len(values) != len(COLUMNS):
        raise ValueError(f"a published row needs {len(COLUMNS)} values ({', '.join(COLUMNS)}), got {len(values)}")
    return Published(values[0], dict(zip(COLUMNS, values)))


#: Human-readable backbone names of the paper, per ``model.backbone`` family.
BACKBONE_TITLES: dict[str, str] = {"internvl": "InternVL2.5-8B", "qwen2_5_vl": "Qwen2.5-VL-7B"}

# METHOD.md 8. BIS-10% was run by the authors with alpha 0.2, every other BIS row with 0.05
# (METHOD.md 3 and 10.1; docs/decisions.md D-REPRO-1), hence the alpha in the keys.
PUBLISHED: dict[str, dict[str, Published]] = {
    "internvl": {
        "base": Published(52.28),
        "full_hard0": _row(65.12, 65.77, 65.43, 61.84, 66.17, 63.56),
        "full_hard1n": Published(64.26),
        "full_hard2n": Published(63.02),
        "full_soft": Published(61.54),
        "random_5": Published(63.34),
        "random_10": Published(62.86),
        "random_15": Published(63.27),
        "random_25": Published(63.37),
        "random_35": Published(63.52),
        "random_50": Published(64.02),
        "bis_5_a0.05": Published(64.51),
        "bis_10_a0.2": _row(65.46, 66.90, 65.07, 63.35, 65.56, 65.10),
        "bis_15_a0.05": Published(64.98),
        "bis_25_a0.05": Published(65.46),
        "bis_35_a0.05": Published(64.98),
        "bis_50_a0.05": Published(65.00),
        "mixed_25": Published(64.70),
        "reliable_25": Published(62.75),
        "low_mc_25": Published(64.18),
        "bis_25_a0.02": Published(64.84),
        "bis_25_a0.08": Published(64.86),
    },
    "qwen2_5_vl": {
        "base": Published(49.68),
        "full_hard0": _row(65.57, 66.05, 65.29, 63.23, 66.24, 66.40),
        "full_hard1n": Published(65.27),
        "full_hard2n": Published(62.72),
        "full_soft": Published(62.23),
        "random_5": Published(53.54),
        "random_10": Published(61.99),
        "random_15": Published(59.82),
        "random_25": Published(64.44),
        "random_35": Published(64.77),
        "random_50": Published(64.54),
        "bis_5_a0.05": Published(64.42),
        "bis_10_a0.2": _row(64.63, 66.05, 64.14, 61.33, 64.64, 66.05),
        "bis_15_a0.05": Published(65.29),
        "bis_25_a0.05": Published(65.53),
        "bis_35_a0.05": Published(65.69),
        "bis_50_a0.05": Published(65.02),
    },
}


def published(family: str, setting_key: str) -> Published | None:
    """The published row for a backbone family and setting key, or None when the paper has none."""
    return PUBLISHED.get(family, {}).get(setting_key)
