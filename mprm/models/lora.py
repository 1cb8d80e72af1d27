"""LoRA on the language model through peft (an option; the paper fine-tunes fully, METHOD.md 6).

Adapters go on the registry's ``lora_targets`` (the language model's linear layers). The reward
head stays trainable and is saved with the adapters: for head ``yes_no`` that is the LM head
(``modules_to_save``), for head ``linear`` the new Linear lives outside peft and is saved by
:class:`mprm.models.reward.StepRewardModel`. The projector is kept fully trainable too
(``train_projector``), mirroring the paper's "projector trainable".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from mprm.models.backbones import BackboneSpec


@dataclass
class LoraSettings:
    """LoRA hyper-parameters; ``target_modules=None`` means the backbone's registry targets."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] | None = None
    train_projector: bool = True
    extra_modules_to_save: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"lora.r must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LoraSettings":
        return cls(**data)


def modules_to_save(spec: BackboneSpec, settings: LoraSettings, *, keep_lm_head: bool) -> list[str]:
    names = list(settings.extra_modules_to_save)
    if keep_lm_head:
        names.append(spec.lm_head)
    if settings.train_projector:
        names += list(spec.projector_modules)
    return names


def apply_lora(backbone: nn.Module, spec: BackboneSpec, settings: LoraSettings, *, keep_lm_head: bool) -> nn.Module:
    """Wrap ``backbone`` in a peft model with adapters on the language model; ``keep_lm_head``
    (heads that read the LM head, like ``yes_no``) keeps the LM head fully trainable and saved."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules or spec.lora_targets,
        modules_to_save=modules_to_save(spec, settings, keep_lm_head=keep_lm_head) or None,
        bias="none",
    )
    return get_peft_model(backbone, config)
