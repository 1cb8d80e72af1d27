"""Backbone registry: everything mprm needs to know about a vision-language model family.

A backbone is one :class:`BackboneSpec` entry. Adding one (docs/models.md, "Bringing a new
backbone") means naming its transformers class, the module prefixes of its vision tower, projector
and language model, its LoRA targets, its chat markup and how its images become tokens.
``trust_remote_code`` is off unless a spec turns it on explicitly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mprm.models.images import ImageHandler, InternVLTileImages, QwenPatchImages

QWEN_SYSTEM = "You are a helpful assistant."
#: InternVL2.5's default system message (its conversation template "internvl2_5").
INTERNVL_SYSTEM = (
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
)
#: The authors' training layout (their PRM preprocess function; METHOD.md 6, decisions.md D-MODELS-10):
#: the system turn, an EMPTY user turn, then the assistant turn that holds the image and the
#: Question/Process text. The formatter appends the content after this prefix.
CHATML_PREFIX = "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n"
#: Their VisualProcessBench script renders the empty user turn without its <|im_end|> (the
#: conversation template skips the separator of an empty message): ``prompt_style="authors_eval"``.
CHATML_EVAL_PREFIX = "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<|im_start|>assistant\n"


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone family.

    ``make_images(directory, model_config, tokenizer, settings)`` returns the :class:`ImageHandler`
    (``settings`` holds the user's ``min_pixels``/``max_pixels``/``max_tiles``, ``None`` = default).
    Module names are prefixes of ``named_parameters()`` of the transformers model; a parameter under
    a projector prefix is a projector parameter even when it also lies under the vision prefix
    (Qwen2.5-VL keeps its merger inside ``model.visual``).
    """

    model_class: str
    model_types: tuple[str, ...]
    make_images: Callable[[Path, Any, Any, dict[str, Any]], ImageHandler]
    vision_modules: tuple[str, ...]
    projector_modules: tuple[str, ...]
    language_modules: tuple[str, ...]
    lora_targets: str
    forward_keys: tuple[str, ...]
    system_prompt: str = ""
    chat_prefix: str = CHATML_PREFIX
    eval_chat_prefix: str = CHATML_EVAL_PREFIX
    yes_token: str = "Yes"
    no_token: str = "No"
    lm_head: str = "lm_head"
    multi_image: bool = True
    trust_remote_code: bool = False
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


def _token_id(tokenizer: Any, token: str) -> int:
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == tokenizer.unk_token_id and token != tokenizer.unk_token:
        raise ValueError(f"tokenizer has no token {token!r}")
    return int(tid)


def _qwen_images(directory: Path, config: Any, tokenizer: Any, settings: dict[str, Any]) -> ImageHandler:
    return QwenPatchImages(
        directory,
        image_token_id=int(config.image_token_id),
        vision_start_id=int(config.vision_start_token_id),
        vision_end_id=int(config.vision_end_token_id),
        min_pixels=settings.get("min_pixels"),
        max_pixels=settings.get("max_pixels"),
    )


def _internvl_images(directory: Path, config: Any, tokenizer: Any, settings: dict[str, Any]) -> ImageHandler:
    vc = config.vision_config
    image_size = vc.image_size[0] if isinstance(vc.image_size, (list, tuple)) else vc.image_size
    patch = vc.patch_size[0] if isinstance(vc.patch_size, (list, tuple)) else vc.patch_size
    per_tile = int((image_size // patch) ** 2 * config.downsample_ratio**2)
    return InternVLTileImages(
        directory,
        image_token_id=int(config.image_token_id),
        start_id=_token_id(tokenizer, "<img>"),
        end_id=_token_id(tokenizer, "</img>"),
        tokens_per_tile=per_tile,
        max_tiles=settings.get("max_tiles"),
    )


_LM_LINEARS = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

register_backbone(
    "qwen2_5_vl",
    BackboneSpec(
        model_class="Qwen2_5_VLForConditionalGeneration",
        model_types=("qwen2_5_vl",),
        make_images=_qwen_images,
        vision_modules=("model.visual",),
        projector_modules=("model.visual.merger",),
        language_modules=("model.language_model", "lm_head"),
        lora_targets=rf".*language_model.*\.{_LM_LINEARS}",
        forward_keys=("pixel_values", "image_grid_thw", "mm_token_type_ids"),
        system_prompt=QWEN_SYSTEM,
    ),
)

register_backbone(
    "internvl",
    BackboneSpec(
        model_class="InternVLForConditionalGeneration",
        model_types=("internvl",),
        make_images=_internvl_images,
        vision_modules=("model.vision_tower",),
        projector_modules=("model.multi_modal_projector",),
        language_modules=("model.language_model", "lm_head"),
        lora_targets=rf".*language_model.*\.{_LM_LINEARS}",
        forward_keys=("pixel_values",),
        system_prompt=INTERNVL_SYSTEM,
    ),
)
