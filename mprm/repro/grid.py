"""The paper's experiment grid as data (METHOD.md 2-4, 8; issue 6 item 2).

Per backbone: Full with hard tau = 0, 1/N, 2/N and soft labels; Random and BIS at 5, 10, 15, 25,
35 and 50%; Mixed, Reliable and Low-MC at 25%; BIS-25% with alpha 0.02, 0.05 and 0.08 (0.05 is the
main BIS-25% cell, so the ablation adds two runs). 21 runs per backbone, 42 in all.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from mprm.repro.settings import NUM_MC, Setting, main_alpha

FRACTIONS: tuple[float, ...] = (0.05, 0.10, 0.15, 0.25, 0.35, 0.50)
BASELINE_FRACTION = 0.25
ALPHA_ABLATION: tuple[float, ...] = (0.02, 0.05, 0.08)


@dataclass(frozen=True)
class Backbone:
    """A paper backbone: ``name`` is its configs/ folder, ``family`` its ``model.backbone`` value."""

    name: str
    family: str
    title: str

    @property
    def base_config(self) -> str:
        """The training helper's paper config this backbone's grid configs derive from."""
        return f"configs/{self.name}/full.yaml"


BACKBONES: tuple[Backbone, ...] = (
    Backbone("internvl2_5_8b", "internvl", "InternVL2.5-8B"),
    Backbone("qwen2_5_vl_7b", "qwen2_5_vl", "Qwen2.5-VL-7B"),
)


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a backbone and a setting. ``name`` is its run folder below RUNS_DIR."""

    backbone: Backbone
    setting: Setting

    @property
    def name(self) -> str:
        return f"{self.backbone.name}/{self.setting.key}"

    @property
    def config_path(self) -> str:
        """Where the generated config lives (relative to the repository root)."""
        return f"configs/paper/{self.name}.yaml"


def paper_settings() -> list[Setting]:
    """The settings of one backbone's grid, in the paper's row order."""
    settings = [
        Setting("full", threshold=0.0),
        Setting("full", threshold=1 / NUM_MC),
        Setting("full", threshold=2 / NUM_MC),
        Setting("full", soft=True),
    ]
    for fraction in FRACTIONS:
        settings.append(Setting("random", fraction=fraction))
        settings.append(Setting("bis", fraction=fraction, alpha=main_alpha(fraction)))
    for strategy in ("mixed", "reliable", "low_mc"):
        settings.append(Setting(strategy, fraction=BASELINE_FRACTION))
    main = main_alpha(BASELINE_FRACTION)
    for alpha in ALPHA_ABLATION:
        if alpha != main:
            settings.append(Setting("bis", fraction=BASELINE_FRACTION, alpha=alpha))
    return settings


def paper_grid(backbones: list[str] | None = None, pattern: str | None = None) -> list[Cell]:
    """Every grid cell, optionally restricted to backbone names and a shell-style name pattern.

    ``pattern`` is matched against the run name (``internvl2_5_8b/bis_10_a0.2``) with fnmatch;
    a pattern without a wildcard matches as a substring.
    """
    known = {b.name: b for b in BACKBONES}
    if backbones:
        unknown = [b for b in backbones if b not in known]
        if unknown:
            raise ValueError(f"unknown backbone(s) {', '.join(unknown)}; choose from {', '.join(known)}")
        chosen = [known[b] for b in backbones]
    else:
        chosen = list(BACKBONES)
    cells = [Cell(b, s) for b in chosen for s in paper_settings()]
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        cells = [c for c in cells if fnmatch.fnmatchcase(c.name, glob)]
    return cells


def setting_for_key(key: str) -> Setting | None:
    """The grid setting with this key (``bis_10_a0.2``), or None when the key is not in the grid."""
    return next((s for s in paper_settings() if s.key == key), None)
