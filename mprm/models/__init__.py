"""The model layer: backbone registry, ``<prm>`` step reward head, formatting, scoring, tiny models.

Public API (docs/design.md, docs/models.md): :func:`build_reward_model`, :func:`load_reward_model`,
:class:`StepRewardModel`, :class:`RewardOutput`, :func:`score_batch`, :class:`LoraSettings`,
:func:`register_backbone` / :class:`BackboneSpec`, :func:`register_head` / :class:`StepHead` /
:class:`HeadInputs`, :func:`mprm.models.tiny.build_tiny`.
"""

from mprm.models.backbones import BackboneSpec, backbone_names, detect_backbone, get_backbone, register_backbone
from mprm.data.labels import IGNORE_LABEL
from mprm.models.heads import (DEFAULT_HEAD, HeadInputs, StepHead, get_head, head_names, register_head,
                               unregister_head)
from mprm.models.lora import LoraSettings
from mprm.models.prompting import DEFAULT_SEPARATOR, PRM_TOKEN, Formatter, clean_question
from mprm.models.reward import RewardOutput, StepRewardModel, build_reward_model, load_reward_model
from mprm.models.scoring import score_batch

__all__ = [
    "BackboneSpec", "DEFAULT_HEAD", "DEFAULT_SEPARATOR", "Formatter", "HeadInputs", "IGNORE_LABEL", "LoraSettings",
    "PRM_TOKEN", "RewardOutput", "StepHead", "StepRewardModel", "backbone_names", "build_reward_model", "clean_question", "detect_backbone",
    "get_backbone", "get_head", "head_names", "load_reward_model", "register_backbone", "register_head", "score_batch",
    "unregister_head",
]
