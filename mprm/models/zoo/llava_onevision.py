"""LLaVA-OneVision (``LlavaOnevisionForConditionalGeneration``: SigLIP + 2-layer MLP + Qwen2).

Images go through "anyres": the picture is resized onto the best grid of ``image_grid_pinpoints``
(384-px cells for the released models), each cell and a base view are encoded (729 features
each), the cells' features are unpadded back to the picture's aspect ratio, pooled down when they
exceed 9 cells' worth (``anyres_max_9``), and every feature row ends in a learned newline vector.
The model needs each image's size (``image_sizes``). An item with several images is encoded
differently by this family (base view only), so items take one image: the canvas of several
(``multi_image="canvas"``). Settings are fixed by the checkpoint's processor (no knobs). The
system turn holds "You are a helpful assistant." (LLaVA-OneVision's Qwen conversation template).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mprm.models.backbones import CHATML_TEMPLATE, QWEN_SYSTEM, BackboneSpec, register_backbone
from mprm.models.images import PREPROCESSOR_FILE, SETTINGS_KEY, config_digest, pil_processor, read_preprocessor_config, resolve_settings
from mprm.models.zoo import TinyFamily, lora_targets, register_tiny

#: ChatML with an image part as ``<image>\n``.
LLAVA_OV_TEMPLATE = CHATML_TEMPLATE.replace(
    "{%- endif -%}{%- endfor -%}{%- endif -%}",
    "{%- elif part['type'] == 'image' -%}{{- '<image>\\n' -}}{%- endif -%}{%- endfor -%}{%- endif -%}", 1)


class LlavaOnevisionImages:
    """Anyres tiles of ``LlavaOnevisionImageProcessorPil``; token counts as the family's processor."""

    def __init__(self, directory: Path, *, image_token_id: int, base_tokens: int, aspect: str,
                 select_strategy: str) -> None:
        from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
            LlavaOnevisionImageProcessorPil,
        )

        self.config = read_preprocessor_config(directory)
        self.config_digest = config_digest(self.config)
        self.settings = resolve_settings({}, {}, {})
        self.processor = pil_processor(LlavaOnevisionImageProcessorPil, self.config)
        self.pinpoints = [list(p) for p in self.processor.image_grid_pinpoints]
        self.cell = int(self.processor.size["height"])
        self.image_token_id = image_token_id
        self.base_tokens = base_tokens
        self.max_cells = int(aspect.removeprefix("anyres_max_"))
        self.drop_cls = select_strategy == "default"

    def num_tokens(self, width: int, height: int) -> int:
        side = math.isqrt(self.base_tokens)
        from transformers.image_processing_utils import select_best_resolution

        best_h, best_w = select_best_resolution((height, width), self.pinpoints)
        cur_h, cur_w = side * (best_h // self.cell), side * (best_w // self.cell)
        if width / height > cur_w / cur_h:
            cur_h -= ((cur_h - int(round(height * (cur_w / width), 7))) // 2) * 2
        else:
            cur_w -= ((cur_w - int(round(width * (cur_h / height), 7))) // 2) * 2
        features, newlines = cur_h * cur_w, cur_h
        ratio = math.sqrt(cur_h * cur_w / (self.max_cells * side**2))
        if ratio > 1.1:
            features, newlines = int(cur_h // ratio) * int(cur_w // ratio), int(cur_h // ratio)
        return features + newlines + self.base_tokens - (1 if self.drop_cls else 0)

    def placeholder_ids(self, n_tokens: int) -> list[int]:
        return [self.image_token_id] * n_tokens

    def process(self, images: Sequence[Image.Image]) -> tuple[dict[str, torch.Tensor], list[int]]:
        images = [im.convert("RGB") for im in images]
        out = self.processor(images=images, return_tensors="pt")
        return ({"pixel_values": out["pixel_values"].float(), "image_sizes": out["image_sizes"].long()},
                [self.num_tokens(*im.size) for im in images])

    def concat(self, parts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Cells padded with zeros to the most of any image (the model reads each image's own)."""
        cells = max(p["pixel_values"].shape[1] for p in parts)
        pixels = [torch.nn.functional.pad(p["pixel_values"], (0, 0, 0, 0, 0, 0, 0, cells - p["pixel_values"].shape[1]))
                  for p in parts]
        return {"pixel_values": torch.cat(pixels), "image_sizes": torch.cat([p["image_sizes"] for p in parts])}

    def save(self, directory: Path) -> None:
        import json

        (Path(directory) / PREPROCESSOR_FILE).write_text(
            json.dumps({**self.config, SETTINGS_KEY: dict(self.settings)}, indent=2) + "\n")


def llava_onevision_images(directory: Path, config: Any, tokenizer: Any, settings: dict[str, Any]) -> LlavaOnevisionImages:
    resolve_settings(settings, {}, {})  # no knobs: an explicit one is an error naming that
    vc = config.vision_config
    return LlavaOnevisionImages(directory, image_token_id=int(config.image_token_id),
                                base_tokens=(vc.image_size // vc.patch_size) ** 2, aspect=config.vision_aspect_ratio,
                                select_strategy=config.vision_feature_select_strategy)


register_backbone(
    "llava_onevision",
    BackboneSpec(
        model_class="LlavaOnevisionForConditionalGeneration",
        model_types=("llava_onevision",),
        make_images=llava_onevision_images,
        vision_modules=("model.vision_tower",),
        projector_modules=("model.multi_modal_projector",),
        language_modules=("model.language_model", "lm_head"),
        lora_targets=lora_targets("language_model"),
        forward_keys=("pixel_values", "image_sizes"),
        system_prompt=QWEN_SYSTEM,
        chat_template=LLAVA_OV_TEMPLATE,
        multi_image=False,
    ),
)


def build_tiny_llava_onevision(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    """SigLIP (2 layers, 32 wide) on 28-px cells of 14-px patches (4 features each), a grid of up to
    2 x 2 cells, a qwen2 text model, the Qwen2 tokenizer with ``<image>``."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    from mprm.models.tiny import VISION, save_tiny, tiny_tokenizer

    specials = ["<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tok = tiny_tokenizer(specials, {"image_token": "<image>", "video_token": "<video>"}, words=(" Yes", " No", *words))
    pinpoints = [[28, 28], [28, 56], [56, 28], [56, 56]]
    cfg = LlavaOnevisionConfig(
        vision_config=dict(model_type="siglip_vision_model", **VISION, image_size=28, patch_size=14),
        text_config=dict(model_type="qwen2", **text, vocab_size=len(tok), rope_parameters={"rope_type": "default", "rope_theta": 1e4},
                         bos_token_id=None, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=0,
                         tie_word_embeddings=False),
        image_token_index=tok.convert_tokens_to_ids("<image>"), video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=pinpoints, vision_feature_select_strategy="full", vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9", tie_word_embeddings=False,
    )
    model = LlavaOnevisionForConditionalGeneration._from_config(cfg)
    save_tiny(out, model, tok, chat_template=LLAVA_OV_TEMPLATE, settings={}, preprocessor={
        "image_processor_type": "LlavaOnevisionImageProcessor", "size": {"height": 28, "width": 28},
        "image_grid_pinpoints": pinpoints, "do_pad": True, "resample": 3,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
        processor={"num_image_tokens": 4, "vision_feature_select_strategy": "full",
                   "vision_aspect_ratio": "anyres_max_9", "processor_class": "LlavaOnevisionProcessor"})


register_tiny("llava_onevision", TinyFamily("llava_onevision", build_tiny_llava_onevision,
                                            "llava-hf/llava-onevision-qwen2-7b-ov-hf", takes_words=True))
