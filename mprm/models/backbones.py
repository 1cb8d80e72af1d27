"""Backbone registry: everything mprm needs to know about a vision-language model family.

A backbone is one :class:`BackboneSpec` entry. Adding one (docs/models.md, "Bringing a new
backbone") means naming its transformers class, the module prefixes of its vision tower, projector
and language model, its LoRA targets, how its images become tokens and how it says "Yes"/"No";
its chat markup comes from the family's own chat template (:mod:`mprm.models.chat`). The built-in
families live in :mod:`mprm.models.zoo`, one module each, registered when this module is imported.
``trust_remote_code`` is off unless a spec turns it on explicitly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mprm.models.images import ImageHandler
from mprm.models.vision_flops import VisionFlops

QWEN_SYSTEM = "You are a helpful assistant."
#: InternVL2.5's default system message (its conversation template "internvl2_5").
INTERNVL_SYSTEM = (
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
)
#: The authors' layout in ChatML (their PRM preprocess function; METHOD.md 6, decisions.md D-MODELS-10),
#: as the ChatML chat templates render it: the system turn, an EMPTY user turn, then the assistant
#: turn that holds the image and the Question/Process text. Kept for specs that set a fixed prefix.
CHATML_PREFIX = "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n"
#: Their VisualProcessBench script renders the empty user turn without its <|im_end|> (the
#: conversation template skips the separator of an empty message): ``prompt_style="authors_eval"``.
CHATML_EVAL_PREFIX = "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<|im_start|>assistant\n"
#: A plain ChatML chat template: one ``<|im_start|>{role}\n{content}<|im_end|>\n`` block per message
#: (string content or text/image parts). The fallback of the ChatML families for checkpoints saved
#: without a template (converted or tiny ones); it renders the authors' layout as CHATML_PREFIX.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone family.

    ``make_images(directory, model_config, tokenizer, settings)`` returns the :class:`ImageHandler`
    (``settings`` holds the user's ``min_pixels``/``max_pixels``/``max_tiles``, ``None`` = the
    checkpoint's saved settings, else ``image_defaults``). Module names are prefixes of
    ``named_parameters()`` of the transformers model; a parameter under a projector prefix is a
    projector parameter even when it also lies under the vision prefix (Qwen2.5-VL keeps its merger
    inside ``model.visual``).

    The prompt prefix (decisions.md D-MODELS-14): ``chat_prefix`` when set (a fixed text, ``{system}``
    filled in), else the authors' layout rendered through the checkpoint's own chat template, or
    ``chat_template`` when the checkpoint has none. ``system_prompt`` ``None`` means no system turn.
    ``eval_chat_prefix`` is the fixed prefix of ``prompt_style="authors_eval"`` (``None``: the same
    prefix as training).

    ``vision_flops`` is the vision tower's cost model for the FLOPs formula
    (:mod:`mprm.models.vision_flops`); ``None``: no vision FLOPs formula for this family.
    """

    model_class: str
    model_types: tuple[str, ...]
    make_images: Callable[[Path, Any, Any, dict[str, Any]], ImageHandler]
    vision_modules: tuple[str, ...]
    projector_modules: tuple[str, ...]
    language_modules: tuple[str, ...]
    lora_targets: str
    forward_keys: tuple[str, ...]
    system_prompt: str | None = None
    chat_template: str | None = None
    chat_prefix: str | None = None
    eval_chat_prefix: str | None = None
    yes_token: str = "Yes"
    no_token: str = "No"
    lm_head: str = "lm_head"
    multi_image: bool = True
    image_defaults: dict[str, Any] = field(default_factory=dict)
    trust_remote_code: bool = False
    vision_flops: VisionFlops | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def model_cls(self) -> type:
        import transformers

        try:
            return getattr(transformers, self.model_class)
        except AttributeError as exc:
            raise ImportError(f"transformers {transformers.__version__} has no class {self.model_class}") from exc

    def part_of(self, name: str) -> str:
        """Which part a parameter name belongs to: 'projector', 'vision', 'language' or 'other'."""
        if any(name.startswith(p + ".") for p in self.projector_modules):
            return "projector"
        if any(name.startswith(p + ".") for p in self.vision_modules):
            return "vision"
        if any(name.startswith(p + ".") for p in self.language_modules):
            return "language"
        return "other"


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name: str, spec: BackboneSpec, *, replace: bool = False) -> None:
    """Add a backbone under ``name`` (``replace=True`` to override an existing entry)."""
    if name in _REGISTRY and not replace:
        raise ValueError(f"backbone {name!r} is already registered; pass replace=True to override it")
    _REGISTRY[name] = spec


def unregister_backbone(name: str) -> None:
    """Remove a registered backbone (tests, or to replace a built-in cleanly)."""
    get_backbone(name)
    del _REGISTRY[name]


def get_backbone(name: str) -> BackboneSpec:
    if name not in _REGISTRY:
        raise KeyError(f"unknown backbone {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def backbone_names() -> list[str]:
    return sorted(_REGISTRY)


def detect_backbone(path: str | Path) -> str:
    """The registered backbone whose ``model_types`` contain ``config.json``'s ``model_type``."""
    cfg_path = Path(path) / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: not found; pass backbone= explicitly or point at a checkpoint folder")
    model_type = json.loads(cfg_path.read_text()).get("model_type")
    for name, spec in _REGISTRY.items():
        if model_type in spec.model_types:
            return name
    raise ValueError(
        f"{cfg_path}: model_type {model_type!r} matches no registered backbone "
        f"({', '.join(f'{n}: {s.model_types}' for n, s in _REGISTRY.items())}); register one (docs/models.md)"
    )


def token_id(tokenizer: Any, token: str) -> int:
    """The id of a vocabulary entry; a clear error when the tokenizer lacks it."""
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == tokenizer.unk_token_id and token != tokenizer.unk_token:
        raise ValueError(f"tokenizer has no token {token!r}")
    return int(tid)


_token_id = token_id

# The built-in families register themselves (after the definitions above, which they import).
from mprm.models import zoo  # noqa: E402,F401
