"""InternVL through the native ``InternVLForConditionalGeneration`` (InternViT + pixel-shuffle MLP).

One registry entry serves every checkpoint in the native ("-hf") layout: InternVL3 and InternVL3.5
as published by OpenGVLab (Qwen2.5 / Qwen3 language models, ``OpenGVLab/InternVL3-8B-hf``,
``OpenGVLab/InternVL3_5-8B-HF``), and InternVL2.5 on InternLM2 (the paper's InternVL2.5-8B) after
``mprm convert-internvl`` (InternLM2 becomes a Llama-shaped model; its tokenizer adds ``<s>``). Images
are 448-px tiles (at most ``max_tiles``, the paper's 6, plus a thumbnail), each ``image_seq_length``
context tokens between ``<img>`` and ``</img>``. The system turn holds InternVL2.5's default system
message (their conversation template's, which the authors trained with), whatever the checkpoint's
template defaults to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from mprm.models.backbones import (
    CHATML_EVAL_PREFIX,
    CHATML_TEMPLATE,
    INTERNVL_SYSTEM,
    BackboneSpec,
    register_backbone,
    token_id,
)
from mprm.models.images import PREPROCESSOR_FILE, SETTINGS_KEY, ImageHandler, InternVLTileImages, resolve_settings
from mprm.models.vision_flops import ImageCost, VisionDims, VisionFlops
from mprm.models.zoo import TinyFamily, lora_targets, register_tiny

TILES = {"max_tiles": 6}
#: The -hf checkpoints' chat template: ChatML without a default system message, an image part as
#: ``<IMG_CONTEXT>\n`` (which their processor expands to ``<img>`` + context tokens + ``</img>``).
INTERNVL_HF_TEMPLATE = CHATML_TEMPLATE.replace(
    "{%- endif -%}{%- endfor -%}{%- endif -%}",
    "{%- elif part['type'] == 'image' -%}{{- '<IMG_CONTEXT>\\n' -}}{%- endif -%}{%- endfor -%}{%- endif -%}", 1)


def internvl_images(directory: Path, config: Any, tokenizer: Any, settings: dict[str, Any], *,
                    defaults: dict[str, int] = TILES) -> ImageHandler:
    resolve_settings(settings, {}, defaults)  # a knob of another family is an error naming these
    vc = config.vision_config
    image_size = vc.image_size[0] if isinstance(vc.image_size, (list, tuple)) else vc.image_size
    patch = vc.patch_size[0] if isinstance(vc.patch_size, (list, tuple)) else vc.patch_size
    per_tile = int((image_size // patch) ** 2 * config.downsample_ratio**2)
    return InternVLTileImages(
        directory,
        image_token_id=int(config.image_token_id),
        start_id=token_id(tokenizer, "<img>"),
        end_id=token_id(tokenizer, "</img>"),
        tokens_per_tile=per_tile,
        max_tiles=settings.get("max_tiles"),
        defaults=defaults,
    )


# ---- vision FLOPs (tiles of full attention with a class token, pixel shuffle, MLP projector) ---------
def internvl_vision_dims(hf_config: Any) -> VisionDims:
    v = hf_config.vision_config
    size = v.image_size[0] if isinstance(v.image_size, (list, tuple)) else v.image_size
    patch = v.patch_size[0] if isinstance(v.patch_size, (list, tuple)) else v.patch_size
    r = round(1 / hf_config.downsample_ratio)
    return VisionDims("internvl", v.hidden_size, v.num_hidden_layers, v.intermediate_size, 2,
                      v.num_channels * patch * patch, r * r, r * r * v.hidden_size,
                      hf_config.get_text_config().hidden_size, tile_tokens=(size // patch) ** 2 + 1)


def internvl_image_cost(v: VisionDims, shape: tuple[int, ...]) -> ImageCost:
    """``(tiles,)``: each tile is its patches plus a class token, attending to its own tile only."""
    return ImageCost(patches=shape[0] * (v.tile_tokens - 1), tokens=shape[0] * v.tile_tokens,
                     pairs=v.layers * shape[0] * v.tile_tokens**2)


INTERNVL_VISION_FLOPS = VisionFlops(
    dims=internvl_vision_dims, image=internvl_image_cost, projector_mid=lambda v: v.proj_out,
    batch_images=lambda batch: [(int(batch["pixel_values"].shape[0]),)])


register_backbone(
    "internvl",
    BackboneSpec(
        model_class="InternVLForConditionalGeneration",
        model_types=("internvl",),
        make_images=partial(internvl_images, defaults=TILES),
        vision_modules=("model.vision_tower",),
        projector_modules=("model.multi_modal_projector",),
        language_modules=("model.language_model", "lm_head"),
        lora_targets=lora_targets("language_model"),
        forward_keys=("pixel_values",),
        system_prompt=INTERNVL_SYSTEM,
        chat_template=INTERNVL_HF_TEMPLATE,
        eval_chat_prefix=CHATML_EVAL_PREFIX,
        image_defaults=dict(TILES),
        vision_flops=INTERNVL_VISION_FLOPS,
    ),
)


# ---- tiny checkpoints ---------------------------------------------------------------------------
#: Tiny image settings: 56-px tiles, at most 2 plus the thumbnail, 4 context tokens each.
TINY_TILES = 2
_VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
               image_size=[56, 56], patch_size=[14, 14])
_IMAGE_TOKENS = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>"}


def _tiles_preprocessor() -> dict[str, Any]:
    return {"image_processor_type": "GotOcr2ImageProcessor", "size": {"height": 56, "width": 56},
            "crop_to_patches": True, "min_patches": 1, "max_patches": TINY_TILES,
            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}


def build_tiny_internvl(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    """The tiny InternVL of the tests and the demo: 2-layer, 32-wide InternViT on 56-px tiles (4 LM
    tokens per tile), a 2-layer qwen2 text model and a tokenizer that opens texts with ``<s>`` as
    InternLM2's does (so the BOS handling of the converted InternVL2.5-8B is covered)."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    from mprm.models.tiny import open_with_bos, save_tiny, tiny_tokenizer

    specials = ["<s>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<|video_pad|>"]
    tok = tiny_tokenizer(specials, {**_IMAGE_TOKENS, "video_token": "<|video_pad|>"}, words=words)
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    open_with_bos(tok, "<s>", ids["<s>"])
    cfg = InternVLConfig(
        vision_config=dict(_VISION),
        text_config=dict(model_type="qwen2", **text, vocab_size=len(tok), rope_parameters={"rope_type": "default", "rope_theta": 1e4},
                         bos_token_id=ids["<s>"], eos_token_id=ids["<|im_end|>"], pad_token_id=0,
                         tie_word_embeddings=False),
        image_token_id=ids["<IMG_CONTEXT>"], image_seq_length=4, downsample_ratio=0.5, tie_word_embeddings=False,
    )
    model = InternVLForConditionalGeneration._from_config(cfg)
    save_tiny(out, model, tok, preprocessor=_tiles_preprocessor(), settings={"max_tiles": TINY_TILES, "tile_size": 56})


def build_tiny_internvl_hf(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    """InternVL3.5 in the -hf layout: the tiny InternViT, a qwen3 text model (q/k norms), a
    byte-level tokenizer without BOS, the -hf chat template and ``processor_config.json``."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    from mprm.models.tiny import save_tiny, tiny_tokenizer

    specials = ["<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
    tok = tiny_tokenizer(specials, {**_IMAGE_TOKENS, "video_token": "<video>"}, words=(" Yes", " No", *words))
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    cfg = InternVLConfig(
        vision_config=dict(_VISION),
        text_config=dict(model_type="qwen3", **text, head_dim=text["hidden_size"] // text["num_attention_heads"],
                         vocab_size=len(tok), rope_parameters={"rope_type": "default", "rope_theta": 1e4},
                         bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=0, tie_word_embeddings=False),
        image_token_id=ids["<IMG_CONTEXT>"], image_seq_length=4, downsample_ratio=0.5, tie_word_embeddings=False,
    )
    model = InternVLForConditionalGeneration._from_config(cfg)
    save_tiny(out, model, tok, preprocessor=_tiles_preprocessor(), settings={"max_tiles": TINY_TILES, "tile_size": 56},
              chat_template=INTERNVL_HF_TEMPLATE, processor={"image_seq_length": 4, "processor_class": "InternVLProcessor"})


def _original_shapes(vis: dict[str, int], llm: dict[str, int], patches: int) -> dict[str, tuple[int, ...]]:
    """Every tensor of an original InternVL2.5 release (InternViT + mlp1 + InternLM2 with fused
    grouped ``wqkv``) for the given widths: what ``mprm convert-internvl`` reads."""
    vh, vi, h, inter, vocab = vis["hidden_size"], vis["intermediate_size"], llm["hidden_size"], \
        llm["intermediate_size"], llm["vocab_size"]
    heads, kv = llm["num_attention_heads"], llm["num_key_value_heads"]
    shapes: dict[str, tuple[int, ...]] = {
        "vision_model.embeddings.class_embedding": (1, 1, vh),
        "vision_model.embeddings.position_embedding": (1, patches + 1, vh),
        "vision_model.embeddings.patch_embedding.weight": (vh, 3, vis["patch_size"], vis["patch_size"]),
        "vision_model.embeddings.patch_embedding.bias": (vh,),
        "mlp1.0.weight": (4 * vh,), "mlp1.0.bias": (4 * vh,), "mlp1.1.weight": (h, 4 * vh), "mlp1.1.bias": (h,),
        "mlp1.3.weight": (h, h), "mlp1.3.bias": (h,),
        "language_model.model.tok_embeddings.weight": (vocab, h), "language_model.model.norm.weight": (h,),
        "language_model.output.weight": (vocab, h),
    }
    for i in range(vis["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{i}."
        shapes.update({p + "attn.qkv.weight": (3 * vh, vh), p + "attn.qkv.bias": (3 * vh,), p + "attn.proj.weight": (vh, vh),
                       p + "attn.proj.bias": (vh,), p + "mlp.fc1.weight": (vi, vh), p + "mlp.fc1.bias": (vi,),
                       p + "mlp.fc2.weight": (vh, vi), p + "mlp.fc2.bias": (vh,), p + "ls1": (vh,), p + "ls2": (vh,),
                       p + "norm1.weight": (vh,), p + "norm1.bias": (vh,), p + "norm2.weight": (vh,), p + "norm2.bias": (vh,)})
    for i in range(llm["num_hidden_layers"]):
        p = f"language_model.model.layers.{i}."
        shapes.update({p + "attention.wqkv.weight": ((heads + 2 * kv) * (h // heads), h), p + "attention.wo.weight": (h, h),
                       p + "feed_forward.w1.weight": (inter, h), p + "feed_forward.w3.weight": (inter, h),
                       p + "feed_forward.w2.weight": (h, inter), p + "attention_norm.weight": (h,),
                       p + "ffn_norm.weight": (h,)})
    return shapes


def build_tiny_internvl_internlm2(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    """InternVL2.5 on InternLM2 through today's converter path: a tiny checkpoint in the ORIGINAL
    release layout (``internvl_chat`` config, fused ``wqkv``, an InternLM2 tokenizer config) is
    written to a temporary folder and converted into ``out`` by ``mprm convert-internvl``'s code."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _write_tiny_original(Path(tmp), words, text)
        convert_internvl_quietly(Path(tmp), out)
    pre = json.loads((out / PREPROCESSOR_FILE).read_text())
    pre[SETTINGS_KEY] = {"max_tiles": TINY_TILES, "tile_size": 56}
    (out / PREPROCESSOR_FILE).write_text(json.dumps(pre, indent=2) + "\n")


def convert_internvl_quietly(original: Path, out: Path) -> None:
    import contextlib
    import io

    from mprm.models.convert_internvl import convert_internvl

    with contextlib.redirect_stderr(io.StringIO()):
        convert_internvl(original, out)


def _write_tiny_original(original: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    from mprm.models.tiny import tiny_tokenizer

    specials = ["<s>", "</s>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>"]
    tok = tiny_tokenizer([], words=words)
    base = len(tok)
    tok.save_pretrained(original)
    added = {str(base + i): {"content": t, "special": True, "normalized": False, "lstrip": False, "rstrip": False,
                             "single_word": False} for i, t in enumerate(specials)}
    (original / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "InternLM2Tokenizer", "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
        "bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>", "added_tokens_decoder": added}))
    vis = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14)
    llm = dict(vocab_size=base + len(specials), hidden_size=text["hidden_size"], intermediate_size=text["intermediate_size"],
               num_hidden_layers=text["num_hidden_layers"], num_attention_heads=text["num_attention_heads"],
               num_key_value_heads=text["num_key_value_heads"])
    (original / "config.json").write_text(json.dumps(dict(
        architectures=["InternVLChatModel"], model_type="internvl_chat", template="internvl2_5",
        vision_config=dict(vis, architectures=["InternVisionModel"], model_type="intern_vit_6b", num_channels=3,
                           qkv_bias=True, qk_normalization=False, norm_type="layer_norm", layer_norm_eps=1e-6,
                           hidden_act="gelu", initializer_factor=0.1),
        llm_config=dict(llm, architectures=["InternLM2ForCausalLM"], model_type="internlm2", hidden_act="silu",
                        max_position_embeddings=text["max_position_embeddings"], rms_norm_eps=1e-5, rope_theta=1e6,
                        bias=False, tie_word_embeddings=False, bos_token_id=base, eos_token_id=base + 1,
                        pad_token_id=base + 1),
        force_image_size=56, downsample_ratio=0.5, select_layer=-1, ps_version="v2", dynamic_image_size=True,
        use_thumbnail=True, min_dynamic_patch=1, max_dynamic_patch=TINY_TILES, use_backbone_lora=0, use_llm_lora=0)))
    std = text.get("initializer_range", 0.02)
    state = {}
    for key, shape in _original_shapes(vis, llm, patches=16).items():
        one = key.endswith(("norm.weight", "norm1.weight", "norm2.weight", "mlp1.0.weight")) or key.endswith("ls1") \
            or key.endswith("ls2")
        state[key] = torch.ones(shape) if one else torch.randn(shape) * std
    save_file(state, str(original / "model.safetensors"), metadata={"format": "pt"})


register_tiny("internvl", TinyFamily("internvl", build_tiny_internvl, "OpenGVLab/InternVL3-8B-hf", takes_words=True))
register_tiny("internvl_hf", TinyFamily("internvl", build_tiny_internvl_hf, "OpenGVLab/InternVL3_5-8B-HF",
                                        takes_words=True))
register_tiny("internvl_internlm2", TinyFamily("internvl", build_tiny_internvl_internlm2,
                                               "OpenGVLab/InternVL2_5-8B (mprm convert-internvl)", takes_words=True))
