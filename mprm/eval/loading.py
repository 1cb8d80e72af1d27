"""Which reward model ``--model`` names, and loading it once, on first use (torch only when loading).

``--model`` takes three kinds of source (docs/evaluation.md, "Models"):

* a saved reward model (a folder with ``mprm_config.json``, what ``save_pretrained`` wrote):
  :func:`mprm.models.load_reward_model`;
* a base checkpoint folder (``config.json``, no ``mprm_config.json``): the *zero-shot* reward
  model :func:`mprm.models.build_reward_model` makes from it, the head read at a fresh ``<prm>``
  with no reward training (``--backbone``, ``--head``); labelled "zero-shot" in the results;
* a hub id (``org/name``, not a local path): passed unchanged to ``build_reward_model``, also
  zero-shot.

:class:`LazyModel` holds the model for its owner (the pipeline for one benchmark and its dev file,
the curve for one checkpoint) instead of a module-level cache: the caller decides what is shared
and when it is released. It loads only when something is left to score, so resuming a finished
run, or re-drawing a checkpoint curve, loads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mprm.errors import UserError
from mprm.files import looks_like_hub_id
from mprm.eval.settings import EvalSettings

MODEL_MARKER = "mprm_config.json"


@dataclass(frozen=True)
class ModelSource:
    """A reward model to load: ``name`` (folder or hub id) and whether it is zero-shot."""

    name: str
    zero_shot: bool
    backbone: str | None = None
    head: str | None = None

    def describe(self) -> dict[str, Any]:
        """metrics.json's ``model`` field."""
        out: dict[str, Any] = {"name": self.name, "zero_shot": self.zero_shot}
        if self.zero_shot:
            out.update(backbone=self.backbone, head=self.head or "yes_no")
        return out


def saved_model(path: str | Path) -> ModelSource:
    """A saved reward model folder (checkpoint curves); an error naming it when it is not one."""
    path = Path(path)
    if not (path / MODEL_MARKER).is_file():
        raise UserError(f"{path}: no {MODEL_MARKER}: not a saved reward model (an incomplete checkpoint?); "
                        f"remove the folder or finish the save")
    return ModelSource(str(path), zero_shot=False)


def resolve_model(spec: str | Path, *, backbone: str | None = None, head: str | None = None) -> ModelSource:
    """What ``--model SPEC`` names (see the module docstring); errors name SPEC and the fix.

    ``backbone`` / ``head`` apply to a base checkpoint or hub id only: a saved reward model
    records its own, and overriding them would score a different model than the one trained.
    """
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        if (path / MODEL_MARKER).is_file():
            if backbone is not None or head is not None:
                raise UserError(f"{path}: a saved reward model ({MODEL_MARKER}) records its backbone and head: "
                                f"drop --backbone / --head (they apply to a base checkpoint)")
            return ModelSource(text, zero_shot=False)
        if (path / "config.json").is_file():
            return ModelSource(text, zero_shot=True, backbone=backbone, head=head)
        raise UserError(f"{path}: neither a saved reward model ({MODEL_MARKER}) nor a base checkpoint "
                        f"(config.json): point --model at a model folder")
    if path.exists():
        raise UserError(f"{path}: is a file, expected a model folder or a hub id (--model)")
    if not looks_like_hub_id(text):
        raise UserError(f"{path}: no such model folder (--model): check the path")
    return ModelSource(text, zero_shot=True, backbone=backbone, head=head)


class LazyModel:
    """A reward model that is loaded on the first :meth:`get` and kept by whoever holds this object."""

    def __init__(self, source: ModelSource, settings: EvalSettings) -> None:
        self.source = source
        self.max_length = settings.max_length
        self.prompt_style = settings.prompt_style
        self.device = settings.device
        self._model: Any = None

    @classmethod
    def from_spec(cls, spec: str | Path, settings: EvalSettings, *, backbone: str | None = None,
                  head: str | None = None) -> "LazyModel":
        return cls(resolve_model(spec, backbone=backbone, head=head), settings)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self, device: Any = None) -> Any:
        """The model in eval mode on ``settings.device`` (else ``device``), loaded once."""
        if self._model is None:
            from mprm.models import DEFAULT_HEAD, build_reward_model, load_reward_model

            src, kw = self.source, ({"max_length": self.max_length} if self.max_length else {})
            if self.prompt_style:
                kw["prompt_style"] = self.prompt_style
            try:
                if src.zero_shot:
                    model = build_reward_model(src.name, backbone=src.backbone, head=src.head or DEFAULT_HEAD, **kw)
                else:
                    model = load_reward_model(src.name, **kw)
            except UserError:
                raise
            except ValueError as exc:  # a bad --head / --backbone, a format version: the user's to fix
                raise UserError(f"{src.name}: cannot load the reward model: {' '.join(str(exc).split())}") from exc
            self._model = model.to(self.device or device or "cpu").eval()
        return self._model

    def release(self) -> None:
        """Drop the model (before the next checkpoint of a curve is loaded)."""
        self._model = None


def model_info(model: Any) -> dict[str, Any] | None:
    """metrics.json's ``model`` field for what the caller passed (``None`` for an in-memory model)."""
    return model.source.describe() if isinstance(model, LazyModel) else None
