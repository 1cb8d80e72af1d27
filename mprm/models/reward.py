"""The step reward model: a backbone plus a head read at every ``<prm>`` position (METHOD.md 6).

Head ``yes_no`` (the paper's): the logits of the tokens "Yes" and "No" at each ``<prm>`` position
(the position itself, no shift), 2-way cross-entropy with target ``[y, 1 - y]`` (hard or soft),
score = softmax P("Yes"). Head ``linear``: a new ``Linear(hidden, 1)`` on the ``<prm>`` hidden
state with BCE, score = sigmoid. The loss comes back as a sum and a count of labelled steps so the
trainer can normalise over a whole optimiser step (METHOD.md 10.6).

The head gets the batch as :class:`~mprm.models.heads.HeadInputs` (last hidden state, token ids,
mask, ``<prm>`` rows and positions); the built-in heads read only the gathered ``[n_prm, hidden]``
``<prm>`` states. The LM head is only ever applied to those, never to the whole sequence. The full
``lm_head`` module is called on them and the two columns picked: cheap (n_prm rows), and under
DeepSpeed ZeRO-3 the module call is what triggers the gather of its partitioned weight
(decisions.md D-MODELS-4).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.utils import ModelOutput

from mprm.data.labels import IGNORE_LABEL
from mprm.models.backbones import BackboneSpec, detect_backbone, get_backbone
from mprm.models.heads import DEFAULT_HEAD, HeadInputs, StepHead, get_head, make_head
from mprm.files import looks_like_hub_id
from mprm.models.hub import CheckpointNotFound, resolve_checkpoint
from mprm.models.lora import LoraSettings, apply_lora
from mprm.models.prompting import DEFAULT_SEPARATOR, PRM_TOKEN, Formatter

CONFIG_FILE = "mprm_config.json"
SCORE_HEAD_FILE = "score_head.safetensors"
ADAPTER_DIR = "adapter"
FORMAT_VERSION = 1


@dataclass
class RewardOutput(ModelOutput):
    """``loss_sum`` over labelled ``<prm>`` positions, their count, P(correct) per position, logits.

    A transformers ``ModelOutput`` (a dict as well as a dataclass) so that DeepSpeed ZeRO-3 can see
    the tensors in it and hook the backward pass.
    """

    loss_sum: torch.Tensor | None = None
    n_labelled: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    logits: torch.Tensor | None = None

    @property
    def loss(self) -> torch.Tensor:
        """Mean over this batch's labelled steps (0 when none is labelled)."""
        return self.loss_sum / self.n_labelled.clamp(min=1)


def yes_no_ids(tokenizer: Any, yes: str = "Yes", no: str = "No") -> tuple[int, int]:
    """The vocabulary ids of the head's two tokens, as the authors take them:
    ``convert_tokens_to_ids(["Yes", "No"])`` (a vocabulary entry, not how the text "Yes" would be
    tokenised, which differs for SentencePiece tokenizers that prefix a space: "▁Yes").

    A clear error when either is not a single vocabulary entry, naming the entries that are.
    """
    vocab = tokenizer.get_vocab()
    ids = []
    for token in (yes, no):
        if token not in vocab:
            similar = sorted(t for t in vocab if t.strip("▁Ġ ").lower() == token.lower())[:6]
            raise ValueError(f"the reward head needs {token!r} as one vocabulary entry, but this tokenizer has none"
                             + (f"; similar entries: {similar} (set the backbone's yes_token/no_token, "
                                "docs/models.md)" if similar else ""))
        ids.append(int(tokenizer.convert_tokens_to_ids(token)))
    return ids[0], ids[1]


def _gathered(weight: torch.Tensor):
    """Context that makes a ZeRO-3 partitioned weight whole (and writable on rank 0)."""
    if hasattr(weight, "ds_id"):
        import deepspeed

        return deepspeed.zero.GatheredParameters([weight], modifier_rank=0)
    return contextlib.nullcontext()


#: A resized vocabulary is padded to a multiple of this (as transformers pads), so its size depends on
#: the tokenizer only, never on the strategy (decisions.md D-MODELS-11).
VOCAB_MULTIPLE = 64


def embedding_rows(weight: torch.Tensor) -> int:
    """Rows of an embedding weight; under ZeRO-3 the partitioned tensor is empty and ``ds_shape``
    holds the real shape."""
    return int(weight.ds_shape[0]) if hasattr(weight, "ds_shape") else int(weight.shape[0])


def add_prm_token(model: nn.Module, tokenizer: Any) -> int:
    """Add ``<prm>`` as a special token; its embedding row (and LM-head row) = mean of the real rows.

    A checkpoint whose embedding already has a free row past the tokenizer (the real Qwen2.5-VL:
    152,064 rows for 151,665 tokens) keeps its size. Otherwise the embedding grows once, to
    ``len(tokenizer)`` rounded up to a multiple of :data:`VOCAB_MULTIPLE`, the same size under
    every strategy (decisions.md D-MODELS-11). The mean of the existing rows (over the tokenizer's
    real vocabulary) keeps the new token's embedding in the distribution the model has seen
    (decisions.md D-MODELS-3); it is deterministic, so a LoRA checkpoint can rebuild its base
    exactly. No-op when present.
    """
    if PRM_TOKEN in tokenizer.get_vocab():
        return int(tokenizer.convert_tokens_to_ids(PRM_TOKEN))
    n_real = len(tokenizer)
    tokenizer.add_tokens([PRM_TOKEN], special_tokens=True)
    prm_id = int(tokenizer.convert_tokens_to_ids(PRM_TOKEN))
    if prm_id >= embedding_rows(model.get_input_embeddings().weight):
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=VOCAB_MULTIPLE, mean_resizing=False)
    weights = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and out.weight is not weights[0]:
        weights.append(out.weight)
    for w in weights:
        with _gathered(w), torch.no_grad():
            if w.numel() > 0:
                w[prm_id] = w[:n_real].float().mean(0).to(w.dtype)
    return prm_id


class StepRewardModel(nn.Module):
    """Backbone + step head. ``model(**formatter.collate(items)) -> RewardOutput``."""

    base_model_prefix = "backbone"

    def __init__(self, backbone: nn.Module, *, spec: BackboneSpec, backbone_name: str, formatter: Formatter,
                 head: str, yes_id: int, no_id: int, lora: LoraSettings | None = None,
                 base_model_path: str | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.spec = spec
        self.backbone_name = backbone_name
        self.formatter = formatter
        self.head = head
        self.yes_id, self.no_id = yes_id, no_id
        self.lora = lora
        self.base_model_path = base_model_path
        self.config = backbone.config
        self.score_head: StepHead = make_head(
            head, hidden_size=self.config.get_text_config().hidden_size, yes_id=yes_id, no_id=no_id,
            dtype=self.hf_model.get_input_embeddings().weight.dtype)

    @property
    def hf_model(self) -> nn.Module:
        """The transformers ``...ForConditionalGeneration`` (inside peft when LoRA is on)."""
        return self.backbone.get_base_model() if self.lora is not None else self.backbone

    @property
    def tokenizer(self) -> Any:
        return self.formatter.tokenizer

    def trainable_parameter_names(self) -> list[str]:
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def gradient_checkpointing_enable(self) -> None:
        """Activation checkpointing of the backbone's layers (non-reentrant: frozen inputs are fine)."""
        _enable_checkpointing(self.hf_model)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prm_batch_index: torch.Tensor,
                prm_positions: torch.Tensor, prm_labels: torch.Tensor | None = None,
                prm_counts: torch.Tensor | None = None, **vision: Any) -> RewardOutput:
        unknown = set(vision) - set(self.spec.forward_keys)
        if unknown:
            raise TypeError(f"unexpected batch keys {sorted(unknown)} for backbone {self.backbone_name!r}")
        hf = self.hf_model
        out = hf.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                       **{k: v for k, v in vision.items() if v is not None})
        inputs = HeadInputs(hidden=out.last_hidden_state, input_ids=input_ids, attention_mask=attention_mask,
                            prm_batch=prm_batch_index, prm_pos=prm_positions)
        logits = self.score_head.logits(inputs, hf.get_output_embeddings())
        if prm_labels is None:
            prm_labels = torch.full((inputs.n_prm,), IGNORE_LABEL, device=logits.device)
        loss_sum, n = self.score_head.loss(logits, prm_labels.to(logits.device))
        return RewardOutput(loss_sum=loss_sum, n_labelled=n, scores=self.score_head.scores(logits.detach()),
                            logits=logits)

    # ---- saving ------------------------------------------------------------------------------
    def mprm_config(self) -> dict[str, Any]:
        f = self.formatter
        return {
            "format_version": FORMAT_VERSION, "backbone": self.backbone_name, "head": self.head,
            "separator": f.separator, "max_length": f.max_length, "multi_image": f.multi_image,
            "max_columns": f.max_columns, "prompt_style": f.prompt_style, "image_settings": dict(f.images.settings),
            "prm_token": PRM_TOKEN,
            "yes_token_id": self.yes_id, "no_token_id": self.no_id,
            "lora": self.lora.to_dict() if self.lora is not None else None, "base_model": self.base_model_path,
        }

    def save_pretrained(self, directory: str | Path, *, merge: bool = False,
                        state_dict: dict[str, torch.Tensor] | None = None) -> Path:
        """Write backbone (safetensors), tokenizer, processor config, head and ``mprm_config.json``.

        LoRA models save only the adapters (plus the trainable head and projector) under
        ``adapter/`` and record the base checkpoint; ``merge=True`` writes a merged full backbone
        instead (a merged copy: the model itself stays LoRA). ``state_dict``: this module's full
        state dict as gathered by the trainer (ZeRO-3), used instead of the live parameters.
        """
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        cfg = self.mprm_config()
        sd = state_dict
        if self.lora is not None and not merge:
            backbone_sd = _strip(sd, "backbone.") if sd is not None else None
            self.backbone.save_pretrained(out / ADAPTER_DIR, state_dict=backbone_sd)
        else:
            model = self.hf_model
            if self.lora is not None:
                model = copy.deepcopy(self.backbone).merge_and_unload()
                cfg["lora"], cfg["base_model"] = None, None
            backbone_sd = _strip(sd, "backbone.") if sd is not None and self.lora is None else None
            model.save_pretrained(out, state_dict=backbone_sd, safe_serialization=True)
        if self.score_head.has_parameters:
            head_sd = _strip(sd, "score_head.") if sd is not None else self.score_head.state_dict()
            save_file({k: v.detach().contiguous().cpu() for k, v in head_sd.items()}, str(out / SCORE_HEAD_FILE))
        self.tokenizer.save_pretrained(out)
        self.formatter.images.save(out)
        (out / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
        return out


def set_trainable(model: nn.Module, spec: BackboneSpec, *, freeze_vision: bool) -> None:
    """The paper's trainable set (METHOD.md 6): language model and projector trained, the vision
    tower frozen under ``freeze_vision`` (the memory plan builds the same set on the meta device)."""
    for name, p in model.named_parameters():
        p.requires_grad_(not (freeze_vision and spec.part_of(name) == "vision"))


def _enable_checkpointing(model: nn.Module) -> None:
    model.config.use_cache = False
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _strip(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _attn(attn_implementation: str | None) -> str:
    if attn_implementation is None:
        return "sdpa"
    if attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise ImportError("attn_implementation='flash_attention_2' needs the flash-attn package (pip install 'mprm[flash]')")
    return attn_implementation


def build_reward_model(
    path: str | Path, *, backbone: str | None = None, head: str = DEFAULT_HEAD, separator: str = DEFAULT_SEPARATOR,
    max_length: int = 8192, dtype: torch.dtype | str | None = None, attn_implementation: str | None = None,
    freeze_vision: bool = True, lora: LoraSettings | None = None,
    gradient_checkpointing: bool = False,
    multi_image: str = "canvas", max_tiles: int | None = None, min_pixels: int | None = None,
    max_pixels: int | None = None, max_columns: int = 3, prompt_style: str = "train", revision: str | None = None,
) -> StepRewardModel:
    """Load a base checkpoint (folder or hub id) through ``from_pretrained`` and add the step head.

    ``backbone`` defaults to the one matching ``config.json``'s ``model_type``. Image settings left
    ``None`` come from the checkpoint's ``mprm_image_settings`` (tiny models) or else the paper's
    defaults (METHOD.md 6: ``max_tiles`` 6, ``min_pixels`` 784, ``max_pixels`` 200704).
    Under ZeRO-3 the caller opens the ``zero.Init`` context (``HfDeepSpeedConfig``) first:
    ``from_pretrained`` then builds partitioned, and the ``<prm>`` resize works on the shards.
    """
    from transformers import AutoTokenizer

    head_cls = get_head(head)
    source = str(path)
    path = resolve_checkpoint(path, revision=revision)  # a hub id -> its local snapshot (mprm/models/hub.py)
    name = backbone or detect_backbone(path)
    spec = get_backbone(name)
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=spec.trust_remote_code)
    kwargs: dict[str, Any] = {"attn_implementation": _attn(attn_implementation),
                              "trust_remote_code": spec.trust_remote_code}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
    model = spec.model_cls().from_pretrained(str(path), **kwargs)
    add_prm_token(model, tokenizer)
    yes_id, no_id = yes_no_ids(tokenizer, spec.yes_token, spec.no_token)
    images = spec.make_images(Path(path), model.config, tokenizer,
                              {"max_tiles": max_tiles, "min_pixels": min_pixels, "max_pixels": max_pixels})
    formatter = Formatter(tokenizer=tokenizer, spec=spec, images=images, separator=separator, max_length=max_length,
                          multi_image=multi_image, max_columns=max_columns, prompt_style=prompt_style)
    set_trainable(model, spec, freeze_vision=freeze_vision)
    if gradient_checkpointing:
        _enable_checkpointing(model)
    if lora is not None:
        model = apply_lora(model, spec, lora, keep_lm_head=head_cls.uses_lm_head)
    return StepRewardModel(model, spec=spec, backbone_name=name, formatter=formatter, head=head, yes_id=yes_id,
                           no_id=no_id, lora=lora,
                           base_model_path=source if looks_like_hub_id(source) else str(Path(source).resolve()))


def load_reward_model(directory: str | Path, *, dtype: torch.dtype | str | None = None, **overrides: Any) -> StepRewardModel:
    """Restore what :meth:`StepRewardModel.save_pretrained` wrote (equal scores).

    ``overrides`` are further :func:`build_reward_model` keywords (``attn_implementation``,
    ``freeze_vision``, ``gradient_checkpointing``, ``max_length``, ...).
    """
    from safetensors.torch import load_file

    directory = resolve_checkpoint(directory, revision=overrides.pop("revision", None))
    cfg_path = directory / CONFIG_FILE
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: not found; {directory} is not a saved mprm reward model")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{cfg_path}: format_version {cfg.get('format_version')!r}, this mprm reads {FORMAT_VERSION}")
    image = cfg.get("image_settings", {})
    kwargs: dict[str, Any] = dict(
        backbone=cfg["backbone"], head=cfg["head"], separator=cfg["separator"], max_length=cfg["max_length"],
        multi_image=cfg["multi_image"], max_columns=cfg.get("max_columns", 3), dtype=dtype,
        prompt_style=cfg.get("prompt_style", "train"),
        max_tiles=image.get("max_tiles"), min_pixels=image.get("min_pixels"), max_pixels=image.get("max_pixels"),
    )
    kwargs.update(overrides)
    if cfg.get("lora"):
        from peft.utils import load_peft_weights, set_peft_model_state_dict

        base = cfg.get("base_model")
        if not base:
            raise CheckpointNotFound(f"{cfg_path}: LoRA adapters need their base checkpoint, but base_model is empty")
        model = build_reward_model(base, lora=LoraSettings.from_dict(cfg["lora"]), **kwargs)
        result = set_peft_model_state_dict(model.backbone, load_peft_weights(str(directory / ADAPTER_DIR)))
        missing = [k for k in getattr(result, "unexpected_keys", [])]
        if missing:
            raise ValueError(f"{directory / ADAPTER_DIR}: adapter keys not in the model: {missing[:5]}")
    else:
        model = build_reward_model(directory, **kwargs)
    if model.score_head.has_parameters:
        model.score_head.load_state_dict(load_file(str(directory / SCORE_HEAD_FILE)))
    return model
