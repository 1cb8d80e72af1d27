"""Qwen-VL: Qwen2-VL, Qwen2.5-VL (the paper's backbone) and Qwen3-VL (dense).

All three take dynamic-resolution patches (``Qwen2VLImageProcessor``: 14-px patches for 2 and 2.5,
16-px for 3, merged 2x2 into one LM token) between ``<|vision_start|>`` and ``<|vision_end|>``, and
3-D rotary positions that need ``mm_token_type_ids``. Their chat templates are ChatML; Qwen2-VL and
Qwen2.5-VL insert "You are a helpful assistant." when no system message is given, Qwen3-VL none.
Image defaults: the paper's token budget, 1 to 256 merged tokens per image (784 to 200,704 pixels
with 28-px merged patches, 1,024 to 262,144 with Qwen3-VL's 32-px ones), overridable with
``min_pixels`` / ``max_pixels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from mprm.models.backbones import CHATML_EVAL_PREFIX, CHATML_TEMPLATE, QWEN_SYSTEM, BackboneSpec, register_backbone
from mprm.models.images import ImageHandler, QwenPatchImages, resolve_settings
from mprm.models.vision_flops import ImageCost, VisionDims, VisionFlops
from mprm.models.zoo import TinyFamily, lora_targets, register_tiny

QWEN2_PIXELS = {"min_pixels": 784, "max_pixels": 200704}  # 1..256 tokens of 28 x 28 pixels (the paper's)
QWEN3_PIXELS = {"min_pixels": 1024, "max_pixels": 262144}  # 1..256 tokens of 32 x 32 pixels
#: The Qwen-VL chat templates: ChatML, an image part as <|vision_start|><|image_pad|><|vision_end|>;
#: Qwen2/2.5-VL's adds their default system message when the conversation has none, Qwen3-VL's not.
_IMAGE_PART = "{%- elif part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
QWEN_VL_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' -%}{{- '<|im_start|>system\\n" + QWEN_SYSTEM + "<|im_end|>\\n' -}}"
    "{%- endif -%}" + CHATML_TEMPLATE.replace("{%- endif -%}{%- endfor -%}{%- endif -%}",
                                              _IMAGE_PART + "{%- endif -%}{%- endfor -%}{%- endif -%}", 1))
QWEN3_VL_TEMPLATE = CHATML_TEMPLATE.replace("{%- endif -%}{%- endfor -%}{%- endif -%}",
                                            _IMAGE_PART + "{%- endif -%}{%- endfor -%}{%- endif -%}", 1)
_QWEN_PARTS = dict(vision_modules=("model.visual",), language_modules=("model.language_model", "lm_head"),
                   lora_targets=lora_targets("language_model"),
                   forward_keys=("pixel_values", "image_grid_thw", "mm_token_type_ids"))


def qwen_images(directory: Path, config: Any, tokenizer: Any, settings: dict[str, Any], *,
                defaults: dict[str, int]) -> ImageHandler:
    resolve_settings(settings, {}, defaults)  # a knob of another family is an error naming these
    return QwenPatchImages(
        directory,
        image_token_id=int(config.image_token_id),
        vision_start_id=int(config.vision_start_token_id),
        vision_end_id=int(config.vision_end_token_id),
        min_pixels=settings.get("min_pixels"),
        max_pixels=settings.get("max_pixels"),
        defaults=defaults,
    )


# ---- vision FLOPs (Qwen2.5-VL: patch merger, windowed attention with a few full-attention layers) --
def qwen2_5_vision_dims(hf_config: Any) -> VisionDims:
    v = hf_config.vision_config
    m = v.spatial_merge_size
    return VisionDims("qwen2_5_vl", v.hidden_size, v.depth, v.intermediate_size, 3,
                      v.in_channels * v.temporal_patch_size * v.patch_size**2, m * m, m * m * v.hidden_size,
                      v.out_hidden_size, v.window_size // (v.patch_size * m), tuple(v.fullatt_block_indexes))


def _chunks(n: int, size: int) -> list[int]:
    return [min(size, n - i) for i in range(0, n, size)]


def qwen2_5_image_cost(v: VisionDims, shape: tuple[int, ...]) -> ImageCost:
    """A ``(t, h, w)`` patch grid: every patch is a tower token; the full-attention layers see the
    whole frame, the others windows of ``window`` x ``window`` merged tokens."""
    t, h, w = shape
    side = int(v.merge**0.5)
    windows = [a * b * v.merge for a in _chunks(h // side, v.window) for b in _chunks(w // side, v.window)]
    full = len(v.full_layers)
    pairs = full * t * (h * w) ** 2 + (v.layers - full) * t * sum(n * n for n in windows)
    return ImageCost(patches=t * h * w, tokens=t * h * w, pairs=pairs)


QWEN2_5_VISION_FLOPS = VisionFlops(
    dims=qwen2_5_vision_dims, image=qwen2_5_image_cost, projector_mid=lambda v: v.proj_in,  # the merger's MLP
    batch_images=lambda batch: [tuple(r) for r in batch["image_grid_thw"].tolist()])


def _spec(model_class: str, model_type: str, *, defaults: dict[str, int], system: str | None,
          template: str, projector: tuple[str, ...] = ("model.visual.merger",),
          vision_flops: VisionFlops | None = None) -> BackboneSpec:
    return BackboneSpec(
        model_class=model_class, model_types=(model_type,), make_images=partial(qwen_images, defaults=defaults),
        projector_modules=projector, system_prompt=system, chat_template=template,
        eval_chat_prefix=CHATML_EVAL_PREFIX if system is not None else None, image_defaults=dict(defaults),
        vision_flops=vision_flops, **_QWEN_PARTS)


register_backbone("qwen2_vl", _spec("Qwen2VLForConditionalGeneration", "qwen2_vl", defaults=QWEN2_PIXELS,
                                    system=QWEN_SYSTEM, template=QWEN_VL_TEMPLATE))
register_backbone("qwen2_5_vl", _spec("Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl", defaults=QWEN2_PIXELS,
                                      system=QWEN_SYSTEM, template=QWEN_VL_TEMPLATE,
                                      vision_flops=QWEN2_5_VISION_FLOPS))
#: Qwen3-VL's DeepStack mergers feed vision features into the first LM layers: projectors too. Named
#: one by one (peft's modules_to_save takes modules, not their ModuleList); the released sizes have 3.
QWEN3_DEEPSTACK_MERGERS = 3
register_backbone("qwen3_vl", _spec(
    "Qwen3VLForConditionalGeneration", "qwen3_vl", defaults=QWEN3_PIXELS, system=None, template=QWEN3_VL_TEMPLATE,
    projector=("model.visual.merger",) + tuple(f"model.visual.deepstack_merger_list.{i}"
                                               for i in range(QWEN3_DEEPSTACK_MERGERS))))


# ---- tiny checkpoints ---------------------------------------------------------------------------
_SPECIALS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
             "<|image_pad|>", "<|video_pad|>"]
#: Tiny image settings: at most 2 x 2 merged tokens per image.
TINY_PIXELS = {"min_pixels": 784, "max_pixels": 3136}
TINY_QWEN3_PIXELS = {"min_pixels": 1024, "max_pixels": 4096}
_CLIP_MEAN, _CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def _preprocessor(patch: int, pixels: dict[str, int], mean: list[float], std: list[float]) -> dict[str, Any]:
    return {"image_processor_type": "Qwen2VLImageProcessor", "patch_size": patch, "temporal_patch_size": 2,
            "merge_size": 2, **pixels, "image_mean": mean, "image_std": std}


def _token_ids(tok: Any) -> dict[str, int]:
    ids = {t: tok.convert_tokens_to_ids(t) for t in _SPECIALS}
    return dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])


def build_tiny_qwen2_5_vl(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    """Qwen2.5-VL: 2-block, 32-wide vision tower with windowed attention (block 1 full)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from mprm.models.tiny import mrope_section, save_tiny, tiny_tokenizer

    tok = tiny_tokenizer(_SPECIALS, words=words)
    cfg = Qwen2_5_VLConfig(
        text_config=dict(**text, vocab_size=len(tok),
                         rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": mrope_section(text)},
                         bos_token_id=0, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=0),
        vision_config=dict(depth=2, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=text["hidden_size"],
                           window_size=56, fullatt_block_indexes=[1], patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2),
        **_token_ids(tok), tie_word_embeddings=False,
    )
    model = Qwen2_5_VLForConditionalGeneration._from_config(cfg)
    save_tiny(out, model, tok, preprocessor=_preprocessor(14, TINY_PIXELS, _CLIP_MEAN, _CLIP_STD), settings=TINY_PIXELS,
              chat_template=QWEN_VL_TEMPLATE)


def build_tiny_qwen2_vl(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    """Qwen2-VL: 2-block, 32-wide vision tower (LayerNorm, quick-GELU MLP), merger to the text width."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from mprm.models.tiny import mrope_section, save_tiny, tiny_tokenizer

    tok = tiny_tokenizer(_SPECIALS, words=(" Yes", " No", *words))
    cfg = Qwen2VLConfig(
        text_config=dict(**text, vocab_size=len(tok),
                         rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": mrope_section(text)},
                         bos_token_id=0, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=0),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=text["hidden_size"], num_heads=2, mlp_ratio=2,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        **_token_ids(tok), tie_word_embeddings=False,
    )
    model = Qwen2VLForConditionalGeneration._from_config(cfg)
    save_tiny(out, model, tok, preprocessor=_preprocessor(14, TINY_PIXELS, _CLIP_MEAN, _CLIP_STD),
              settings=TINY_PIXELS, chat_template=QWEN_VL_TEMPLATE)


def build_tiny_qwen3_vl(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    """Qwen3-VL (dense): 2-block, 32-wide vision tower on 16-px patches with learned positions on a
    4 x 4 grid, two DeepStack mergers (blocks 0 and 1), a qwen3 text model (q/k norms, head_dim 16)."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from mprm.models.tiny import mrope_section, save_tiny, tiny_tokenizer

    tok = tiny_tokenizer(_SPECIALS, words=(" Yes", " No", *words))
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    cfg = Qwen3VLConfig(
        text_config=dict(**text, head_dim=head_dim, vocab_size=len(tok),
                         rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_interleaved": True,
                                          "mrope_section": mrope_section({**text, "head_dim": head_dim})},
                         bos_token_id=0, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=0),
        vision_config=dict(depth=2, hidden_size=32, num_heads=2, intermediate_size=64,
                           out_hidden_size=text["hidden_size"], num_position_embeddings=16,
                           deepstack_visual_indexes=[0, 1], patch_size=16, spatial_merge_size=2, temporal_patch_size=2),
        **_token_ids(tok), tie_word_embeddings=False,
    )
    model = Qwen3VLForConditionalGeneration._from_config(cfg)
    save_tiny(out, model, tok, preprocessor=_preprocessor(16, TINY_QWEN3_PIXELS, [0.5] * 3, [0.5] * 3),
              settings=TINY_QWEN3_PIXELS, chat_template=QWEN3_VL_TEMPLATE)


register_tiny("qwen2_vl", TinyFamily("qwen2_vl", build_tiny_qwen2_vl, "Qwen/Qwen2-VL-7B-Instruct", takes_words=True))
register_tiny("qwen2_5_vl", TinyFamily("qwen2_5_vl", build_tiny_qwen2_5_vl, "Qwen/Qwen2.5-VL-7B-Instruct",
                                       takes_words=True))
register_tiny("qwen3_vl", TinyFamily("qwen3_vl", build_tiny_qwen3_vl, "Qwen/Qwen3-VL-8B-Instruct", takes_words=True))
