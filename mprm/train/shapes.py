"""Shapes and model FLOPs of a backbone, from its transformers config alone (docs/training.md).

The published configs of the paper's releases (Qwen2.5-VL-7B-Instruct, InternVL2.5-8B) and how a
run's model config is found without reading weights (:func:`model_config`); the language model's
numbers (:class:`TextDims`), which the memory plan (:mod:`mprm.train.plan`) uses too; the vision
tower's (:class:`VisionDims`, from the backbone registry's ``vision_flops`` entry,
:mod:`mprm.models.vision_flops`); and the model FLOPs of one micro batch (:func:`train_flops`),
which benchmarks/gpu_check.py turns into MFU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mprm.errors import UserError
from mprm.models.heads import DEFAULT_HEAD
from mprm.models.vision_flops import VisionDims

#: Qwen/Qwen2.5-VL-7B-Instruct config.json (the published numbers).
QWEN2_5_VL_7B: dict[str, Any] = dict(
    text_config=dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                     intermediate_size=18944, vocab_size=152064, max_position_embeddings=128000, rms_norm_eps=1e-6,
                     hidden_act="silu", tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151645,
                     rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}),
    vision_config=dict(depth=32, hidden_size=1280, num_heads=16, intermediate_size=3420, out_hidden_size=3584,
                       hidden_act="silu", patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                       fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2, in_chans=3),
    image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653,
    tie_word_embeddings=False,
)
#: OpenGVLab/InternVL2_5-8B config.json (remote-code layout: InternViT-300M-448px + mlp1 + InternLM2-7B),
#: turned into the native layout by ``convert_internvl.native_config``; ``<IMG_CONTEXT>`` is id 92546.
INTERNVL2_5_8B: dict[str, Any] = dict(
    vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       image_size=448, patch_size=14, num_channels=3, qkv_bias=True, qk_normalization=False,
                       norm_type="layer_norm", layer_norm_eps=1e-6, hidden_act="gelu", initializer_factor=1.0),
    llm_config=dict(architectures=["InternLM2ForCausalLM"], model_type="internlm2", vocab_size=92553, hidden_size=4096,
                    intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                    hidden_act="silu", max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=1000000.0,
                    rope_scaling={"type": "dynamic", "factor": 2.0}, bias=False, tie_word_embeddings=False,
                    bos_token_id=1, eos_token_id=2, pad_token_id=2),
    force_image_size=448, downsample_ratio=0.5, select_layer=-1, ps_version="v2", template="internvl2_5",
    dynamic_image_size=True, use_thumbnail=True, min_dynamic_patch=1, max_dynamic_patch=12,
)
INTERNVL_IMAGE_TOKEN_ID = 92546


class PlanError(UserError):
    """A run that cannot be planned; the message names what is missing."""


def release_config(name: str) -> tuple[str, Any] | None:
    """``(backbone, transformers config)`` of a known release named in ``name`` (a hub id or a
    folder such as ``checkpoints/InternVL2_5-8B-hf``), built from the published numbers; else None."""
    key = Path(str(name)).name.lower().replace("_", ".")
    if "qwen2.5-vl-7b" in key:
        from transformers import Qwen2_5_VLConfig

        return "qwen2_5_vl", Qwen2_5_VLConfig(**QWEN2_5_VL_7B)
    if "internvl2.5-8b" in key:
        from mprm.models.convert_internvl import native_config

        return "internvl", native_config(INTERNVL2_5_8B, image_token_id=INTERNVL_IMAGE_TOKEN_ID)
    return None


def model_config(path: str, backbone: str) -> tuple[Any, str]:
    """The transformers config of ``model.path`` and where it came from. A folder's config.json wins
    (an original InternVL release is converted on the fly); else a known release's numbers."""
    cfg_file = Path(path) / "config.json"
    if cfg_file.is_file():
        raw = json.loads(cfg_file.read_text())
        if raw.get("model_type") == "internvl_chat":
            from mprm.models.convert_internvl import native_config

            return native_config(raw, image_token_id=INTERNVL_IMAGE_TOKEN_ID), f"{cfg_file} (converted layout)"
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(str(path)), str(cfg_file)
    known = release_config(path)
    if known is not None:
        if known[0] != backbone:
            raise PlanError(f"model.path {path!r} is a {known[0]} release but model.backbone is {backbone!r}")
        return known[1], f"published config of {Path(str(path)).name} (built in, nothing read)"
    raise PlanError(f"model.path {path!r}: no config.json there and not a release the plan knows "
                    "(Qwen2.5-VL-7B, InternVL2.5-8B); point model.path at a checkpoint folder")


# ---- architecture numbers ------------------------------------------------------------------
@dataclass(frozen=True)
class TextDims:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int

    @property
    def layer_matmul_params(self) -> int:
        """Weights of one decoder layer's matmuls: q, k, v, o, gate, up, down (biases left out)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return self.hidden * (2 * q + 2 * kv) + 3 * self.hidden * self.intermediate

    @property
    def lora_width(self) -> int:
        """Sum of (in + out) over the seven LoRA targets of one layer (rank-1 adapter size)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return 7 * self.hidden + 2 * q + 2 * kv + 3 * self.intermediate


def text_dims(hf_config: Any) -> TextDims:
    t = hf_config.get_text_config()
    head_dim = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    return TextDims(hidden=t.hidden_size, layers=t.num_hidden_layers, heads=t.num_attention_heads,
                    kv_heads=getattr(t, "num_key_value_heads", None) or t.num_attention_heads, head_dim=head_dim,
                    intermediate=t.intermediate_size, vocab=t.vocab_size)


def _vision_flops(backbone: str) -> Any:
    """The backbone registry's ``vision_flops`` entry of ``backbone`` (set by the families that have
    a FLOPs formula: Qwen2.5-VL, InternVL); PlanError for an unknown family or one without it."""
    from mprm.models.backbones import get_backbone

    try:
        flops = get_backbone(backbone).vision_flops
    except KeyError:
        flops = None
    if flops is None:
        raise PlanError(f"no FLOPs formula for the vision tower of backbone {backbone!r}")
    return flops


def vision_dims(backbone: str, hf_config: Any) -> VisionDims:
    """The vision tower's numbers, by the backbone registry's ``vision_flops`` entry."""
    return _vision_flops(backbone).dims(hf_config)


# ---- FLOPs ---------------------------------------------------------------------------------
def vision_forward_flops(v: VisionDims, images: list[tuple[int, ...]]) -> dict[str, float]:
    """Forward FLOPs of the vision tower and projector. ``images``: Qwen ``(t, h, w)`` patch grids
    (``image_grid_thw`` rows); InternVL ``(tiles,)``. A matmul of an [n, a] by [a, b] is 2nab. How
    an image becomes patches, tokens and attention pairs, and the projector's middle width, come
    from the registry entry of ``v.family`` (``BackboneSpec.vision_flops``)."""
    flops = _vision_flops(v.family)
    layer = 2 * (4 * v.hidden**2 + v.mlp_matrices * v.hidden * v.intermediate)
    mid = flops.projector_mid(v)
    out = {"vision_patch": 0.0, "vision_linear": 0.0, "vision_attention": 0.0, "projector_1": 0.0, "projector_2": 0.0}
    for shape in images:
        cost = flops.image(v, shape)
        out["vision_patch"] += 2 * cost.patches * v.patch_in * v.hidden
        out["vision_linear"] += cost.tokens * v.layers * layer
        out["vision_attention"] += 4 * v.hidden * cost.pairs
        lm_tokens = cost.patches // v.merge
        out["projector_1"] += 2 * lm_tokens * v.proj_in * mid
        out["projector_2"] += 2 * lm_tokens * mid * v.proj_out
    return out


def train_flops(text: TextDims, vision: VisionDims | None, *, seq_lens: list[int], n_prm: int,
                images: list[tuple[int, ...]], lora_rank: int = 0, head: str = DEFAULT_HEAD,
                vision_trainable: bool = False, attention: str = "causal", backward: bool = True) -> dict[str, float]:
    """Model FLOPs of one micro batch (forward + backward; ``backward=False``: forward only).

    Forward: each matmul 2 x its weights per token; attention 4 x heads x head_dim x context per
    query (QK^T and AV), context = all s keys (``attention="full"``) or s(s+1)/2 in total for a
    causal sequence (``"causal"``, what the kernels compute; MFU uses it). The reward head reads the
    LM head at the ``<prm>`` rows only (2 h V each; ``linear``: 2 h). Backward: 2x forward for a
    trainable matmul whose input needs a gradient (input and weight gradients; the projector too:
    its trainable norm comes first), 1x for a frozen LM weight under LoRA (input gradient only),
    2x for attention; the frozen vision tower has no backward. Gradient checkpointing's recompute
    is not model FLOPs (``recompute`` is returned for hardware FLOPs). Biases, norms, activations
    and softmax are left out (under 1%).
    """
    from mprm.models.heads import get_head

    if attention not in ("causal", "full"):
        raise ValueError(f"attention={attention!r}: choose causal or full")
    tokens = sum(seq_lens)
    pairs = sum(s * (s + 1) / 2 if attention == "causal" else s * s for s in seq_lens)
    lm = 2 * tokens * text.layers * text.layer_matmul_params
    attn = 4 * text.heads * text.head_dim * pairs * text.layers
    adapters = 2 * tokens * text.layers * lora_rank * text.lora_width
    head_fwd = 2 * n_prm * text.hidden * (text.vocab if get_head(head).uses_lm_head else 1)
    vis = vision_forward_flops(vision, images) if vision is not None and images else {}
    f = {"lm_linear": lm, "lm_attention": attn, "lora": adapters, "head": head_fwd, **vis}
    if not backward:
        return {**f, "total": sum(f.values()), "recompute": 0.0}
    b = 1 if vision_trainable else 0  # a trainable tower: weight and input gradients (the patch conv: weight only)
    out = {"lm_linear": lm * (2 if lora_rank else 3), "lm_attention": 3 * attn, "lora": 3 * adapters,
           "head": 3 * head_fwd}
    if vis:
        out.update(vision_patch=vis["vision_patch"] * (1 + b), vision_linear=vis["vision_linear"] * (1 + 2 * b),
                   vision_attention=vis["vision_attention"] * (1 + 2 * b), projector_1=vis["projector_1"] * 3,
                   projector_2=vis["projector_2"] * 3)
    out["total"] = sum(out.values())
    out["recompute"] = lm + attn + adapters
    return out

