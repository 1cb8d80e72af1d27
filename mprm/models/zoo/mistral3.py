"""Mistral 3 (``Mistral3ForConditionalGeneration``: Pixtral vision tower + 2x2 patch merger + Mistral).

Pixtral takes each picture at its own aspect ratio: the processor scales it down until its longest
edge fits ``size.longest_edge`` (1,540 px for Mistral-Small-3.1) and rounds both sides up to
multiples of ``patch_size x spatial_merge_size`` (28 px); each 28-px cell is one ``[IMG]`` token, a
row of cells ends in ``[IMG_BREAK]`` and the last row in ``[IMG_END]``. The model needs each
image's size (``image_sizes``); a batch's pictures are zero-padded to the largest, which the
vision tower crops away. Settings are fixed by the checkpoint's processor config (no knobs). The
tokenizer is byte-level (Tekken) and adds ``<s>``, which the template also writes (once in all).
The system message is fixed to "You are a helpful assistant.": Mistral-Small-3.1's template
otherwise inserts a default system message containing today's date, which would make the
prompt, and every tokenisation cache, change from day to day (decisions.md D-MODELS-15).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mprm.models.backbones import QWEN_SYSTEM, BackboneSpec, register_backbone, token_id
from mprm.models.images import PREPROCESSOR_FILE, SETTINGS_KEY, config_digest, pil_processor, read_preprocessor_config, resolve_settings
from mprm.models.zoo import TinyFamily, lora_targets, register_tiny

#: Mistral's instruct markup: ``<s>``, an optional ``[SYSTEM_PROMPT]...[/SYSTEM_PROMPT]``,
#: ``[INST]user[/INST]``, the assistant's content and ``</s>``; an image part as ``[IMG]``.
MISTRAL3_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{%- set text = message['content'] -%}"
    "{%- else -%}{%- set ns = namespace(text='') -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{%- set ns.text = ns.text + part['text'] -%}"
    "{%- elif part['type'] == 'image' -%}{%- set ns.text = ns.text + '[IMG]' -%}{%- endif -%}"
    "{%- endfor -%}{%- set text = ns.text -%}{%- endif -%}"
    "{%- if message['role'] == 'system' -%}{{- '[SYSTEM_PROMPT]' + text + '[/SYSTEM_PROMPT]' -}}"
    "{%- elif message['role'] == 'user' -%}{{- '[INST]' + text + '[/INST]' -}}"
    "{%- else -%}{{- text + eos_token -}}{%- endif -%}"
    "{%- endfor -%}"
)


class PixtralImages:
    """``PixtralImageProcessorPil`` with Mistral 3's merged 28-px cells and the row-break placeholder."""

    def __init__(self, directory: Path, *, tokenizer: Any, image_token_id: int, patch: int, merge: int) -> None:
        from transformers.models.pixtral.image_processing_pil_pixtral import PixtralImageProcessorPil

        self.config = read_preprocessor_config(directory)
        self.config_digest = config_digest(self.config)
        self.settings: dict[str, Any] = {}
        self.processor = pil_processor(PixtralImageProcessorPil, self.config)
        self.longest_edge = int(self.processor.size["longest_edge"])
        self.cell = patch * merge
        self.image_token_id = image_token_id
        self.break_id = token_id(tokenizer, "[IMG_BREAK]")
        self.end_id = token_id(tokenizer, "[IMG_END]")

    def grid(self, width: int, height: int) -> tuple[int, int]:
        """(rows, cols) of 28-px cells: the processor's resize (floor to fit the longest edge,
        then up to whole cells)."""
        ratio = max(height / self.longest_edge, width / self.longest_edge)
        if ratio > 1:
            height, width = int(math.floor(height / ratio)), int(math.floor(width / ratio))
        return (height - 1) // self.cell + 1, (width - 1) // self.cell + 1

    def num_tokens(self, width: int, height: int) -> int:
        rows, cols = self.grid(width, height)
        return rows * cols

    def placeholder_for(self, width: int, height: int) -> list[int]:
        rows, cols = self.grid(width, height)
        ids = ([self.image_token_id] * cols + [self.break_id]) * rows
        ids[-1] = self.end_id
        return ids

    def process(self, images: Sequence[Image.Image]) -> tuple[dict[str, torch.Tensor], list[int]]:
        out = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt",
                             patch_size={"height": self.cell, "width": self.cell})
        sizes = torch.as_tensor(out["image_sizes"]).long()
        counts = [int(h // self.cell) * int(w // self.cell) for h, w in sizes.tolist()]
        return {"pixel_values": out["pixel_values"].float(), "image_sizes": sizes}, counts

    def concat(self, parts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Pictures zero-padded at the bottom and right to the batch's largest (their sizes say
        what the vision tower reads)."""
        h = max(p["pixel_values"].shape[-2] for p in parts)
        w = max(p["pixel_values"].shape[-1] for p in parts)
        pixels = [torch.nn.functional.pad(p["pixel_values"], (0, w - p["pixel_values"].shape[-1],
                                                              0, h - p["pixel_values"].shape[-2])) for p in parts]
        return {"pixel_values": torch.cat(pixels), "image_sizes": torch.cat([p["image_sizes"] for p in parts])}

    def save(self, directory: Path) -> None:
        (Path(directory) / PREPROCESSOR_FILE).write_text(
            json.dumps({**self.config, SETTINGS_KEY: {}}, indent=2) + "\n")


def mistral3_images(directory: Path, config: Any, tokenizer: Any, settings: dict[str, Any]) -> PixtralImages:
    resolve_settings(settings, {}, {})  # the checkpoint's processor fixes the sizes
    patch = config.vision_config.patch_size
    return PixtralImages(directory, tokenizer=tokenizer, image_token_id=int(config.image_token_id),
                         patch=int(patch[0] if isinstance(patch, (list, tuple)) else patch),
                         merge=int(config.spatial_merge_size))


register_backbone(
    "mistral3",
    BackboneSpec(
        model_class="Mistral3ForConditionalGeneration",
        model_types=("mistral3",),
        make_images=mistral3_images,
        vision_modules=("model.vision_tower",),
        projector_modules=("model.multi_modal_projector",),
        language_modules=("model.language_model", "lm_head"),
        lora_targets=lora_targets("language_model"),
        forward_keys=("pixel_values", "image_sizes"),
        system_prompt=QWEN_SYSTEM,
        chat_template=MISTRAL3_TEMPLATE,
    ),
)


def build_tiny_mistral3(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    """Pixtral (2 layers, 32 wide, 14-px patches, 2-D rotary positions) on pictures of at most
    112 px (4 x 4 cells), the patch merger, a Mistral text model, a byte-level tokenizer adding <s>."""
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    from mprm.models.tiny import VISION, open_with_bos, save_tiny, tiny_tokenizer

    specials = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]",
                "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"]
    tok = tiny_tokenizer(specials, words=(" Yes", " No", *words))
    open_with_bos(tok, "<s>")
    tok.eos_token, tok.unk_token = "</s>", "<unk>"
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    cfg = Mistral3Config(
        vision_config=dict(model_type="pixtral", **VISION, head_dim=16, image_size=112, patch_size=14,
                           rope_parameters={"rope_type": "default", "rope_theta": 1e4}),
        text_config=dict(model_type="mistral", **text, head_dim=text["hidden_size"] // text["num_attention_heads"],
                         vocab_size=len(tok), rope_parameters={"rope_type": "default", "rope_theta": 1e6},
                         bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=0, tie_word_embeddings=False),
        image_token_index=ids["[IMG]"], spatial_merge_size=2, vision_feature_layer=-1, tie_word_embeddings=False,
    )
    model = Mistral3ForConditionalGeneration._from_config(cfg)
    save_tiny(out, model, tok, chat_template=MISTRAL3_TEMPLATE, settings={}, preprocessor={
        "image_processor_type": "PixtralImageProcessor", "size": {"longest_edge": 112},
        "patch_size": {"height": 14, "width": 14}, "resample": 3,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]},
        processor={"patch_size": 14, "spatial_merge_size": 2, "image_token": "[IMG]", "image_break_token": "[IMG_BREAK]",
                   "image_end_token": "[IMG_END]", "processor_class": "PixtralProcessor"})


register_tiny("mistral3", TinyFamily("mistral3", build_tiny_mistral3, "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
                                     takes_words=True))
