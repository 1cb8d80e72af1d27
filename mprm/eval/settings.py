"""The evaluation's settings: one object, built once (by the CLI or a caller) and passed down. No torch.

Before this object the same six keywords (batch size, token limit, image root, missing-image
policy, ...) were threaded by hand through five functions, and every new one meant editing all of
them (issue 11). Checks live here, so a bad value fails before anything is loaded or scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mprm.config import PROMPT_STYLES
from mprm.errors import UserError


@dataclass(frozen=True)
class EvalSettings:
    """How to score items and compute the metrics (docs/evaluation.md, "Commands").

    * ``image_root``: the folder the items' image paths are relative to (scoring only);
    * ``batch_size``: items per forward pass; also fixes the batches, hence the last float bits
      of the scores (decisions.md D-EVAL-3);
    * ``max_length``: token limit per item, overriding the one saved with the model (``None``:
      keep it);
    * ``threshold``: the fixed threshold (a step is predicted correct when score >= it);
    * ``resume``: continue a killed run in the same output folder;
    * ``skip_missing_images``: leave out items with a missing image (counted) instead of failing;
    * ``strict_length``: a step cut by the token limit is an error instead of being left out of
      the metrics and counted (decisions.md D-EVAL-6);
    * ``device``: where the model runs (``None``: the process's device under accelerate);
    * ``prompt_style``: the input layout, overriding the model's (``None``: keep it): ``train``
      (the layout it was trained on) or ``authors_eval`` (the authors' VisualProcessBench script's
      input, to reproduce their numbers; decisions.md D-MODELS-10).
    """

    image_root: Path | None = None
    batch_size: int = 8
    max_length: int | None = None
    threshold: float = 0.5
    resume: bool = False
    skip_missing_images: bool = False
    strict_length: bool = False
    device: str | None = None
    prompt_style: str | None = None

    def __post_init__(self) -> None:
        if self.prompt_style is not None and self.prompt_style not in PROMPT_STYLES:
            raise UserError(f"prompt style {self.prompt_style!r}: choose {' or '.join(PROMPT_STYLES)} (--prompt-style)")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UserError(f"batch size {self.batch_size!r} is not a positive integer: pass --batch-size 1 or more")
        if self.max_length is not None and (isinstance(self.max_length, bool) or not isinstance(self.max_length, int)
                                            or self.max_length < 1):
            raise UserError(f"max length {self.max_length!r} is not a positive integer: pass --max-length 1 or more")
        if not 0.0 <= self.threshold <= 1.0:
            raise UserError(f"threshold {self.threshold!r} is outside [0, 1]: scores are probabilities; "
                            f"pass --threshold between 0 and 1")
        if self.image_root is not None:
            object.__setattr__(self, "image_root", Path(self.image_root))

    @classmethod
    def from_config(cls, cfg: Any, *, image_root: str | Path | None = None) -> "EvalSettings":
        """The run config's ``eval`` section as settings (training's held-out evaluation):
        ``eval.batch_size``, ``eval.threshold`` and the image root ``eval.image_root``, else
        ``image_root`` (training's resolved data image root), else ``data.image_root``. The model's
        own token limit and layout are kept; ``eval.dev`` and ``eval.max_items`` say what to score,
        not how."""
        root = cfg.eval.image_root or image_root or cfg.data.image_root or None
        return cls(image_root=root, batch_size=cfg.eval.batch_size, threshold=cfg.eval.threshold)

    def require_image_root(self, flag: str) -> Path:
        """The image root, which scoring needs; a UserError naming the mode's flag when it is unset or absent."""
        if self.image_root is None:
            raise UserError(f"{flag} needs --image-root (the folder the items' image paths are relative to)")
        if not self.image_root.is_dir():
            raise UserError(f"{self.image_root}: no such folder (--image-root): check the path")
        return self.image_root
