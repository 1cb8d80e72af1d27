"""Idefics3 and SmolVLM (``Idefics3ForConditionalGeneration`` / ``SmolVLMForConditionalGeneration``:
SigLIP + pixel-shuffle connector + Llama 3 / SmolLM2).

An image is resized so its longest edge is the processor's ``size.longest_edge`` (1,456 px for
Idefics3-8B, 1,536 for SmolVLM-2B, 2,048 for SmolVLM-256M/500M), cut into a grid of
``max_image_size`` squares plus one global view, and each square becomes ``image_seq_len``
``<image>`` tokens, written as the processor writes them: ``<fake_token_around_image><row_r_col_c>``
before every square, a newline after every row, ``<global-img>`` before the global view. The model
takes the squares of an item as one ``(n, 3, S, S)`` stack with ``pixel_attention_mask``; items with
fewer squares are padded with all-zero squares, which the model drops. Settings are fixed by the
checkpoint's processor config (no knobs). Neither family has a system message; their template
writes ``User: ...<end_of_utterance>\\nAssistant: ...``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mprm.models.backbones import BackboneSpec, register_backbone, token_id
from mprm.models.images import PREPROCESSOR_FILE, SETTINGS_KEY, config_digest, pil_processor, read_preprocessor_config, resolve_settings
from mprm.models.zoo import TinyFamily, lora_targets, register_tiny

MAX_IMAGE_SIZE = 4096  # the processors' upper bound on a resized side


def _rescale_to_max_len(height: int, width: int, max_len: int) -> tuple[int, int]:
    aspect = width / height
    if width >= height:
        width, height = max_len, int(max_len / aspect)
        height += height % 2
    else:
        height, width = max_len, int(max_len * aspect)
        width += width % 2
    return max(height, 1), max(width, 1)


def _below_upper_bound(height: int, width: int, max_len: int = MAX_IMAGE_SIZE) -> tuple[int, int]:
    aspect = width / height
    if width >= height and width > max_len:
        width, height = max_len, int(max_len / aspect)
    elif height > width and height > max_len:
        height, width = max_len, int(max_len * aspect)
    return max(height, 1), max(width, 1)


def tile_grid(width: int, height: int, *, longest_edge: int, tile: int, split: bool = True) -> tuple[int, int]:
    """(rows, cols) of the squares the Idefics3/SmolVLM processor cuts a picture into; (0, 0) when
    it keeps the global view only. The processor's own resizing arithmetic, step by step."""
    if not split:
        return 0, 0
    h, w = _below_upper_bound(*_rescale_to_max_len(height, width, longest_edge))
    aspect = w / h
    if w >= h:
        w = math.ceil(w / tile) * tile
        h = math.ceil(int(w / aspect) / tile) * tile
    else:
        h = math.ceil(h / tile) * tile
        w = math.ceil(int(h * aspect) / tile) * tile
    if h > tile or w > tile:
        return (h - tile) // tile + 1, (w - tile) // tile + 1
    return 0, 0


def prompt_string(rows: int, cols: int, seq_len: int) -> str:
    """What the processor writes for one ``<image>`` split into ``rows`` x ``cols`` squares."""
    fake, image = "<fake_token_around_image>", "<image>"
    text = ""
    for r in range(rows):
        text += "".join(f"{fake}<row_{r + 1}_col_{c + 1}>" + image * seq_len for c in range(cols)) + "\n"
    return text + ("\n" if rows else "") + f"{fake}<global-img>" + image * seq_len + fake


class Idefics3Images:
    """The family's tiling (its PIL image processor) and placeholder strings."""

    def __init__(self, directory: Path, *, tokenizer: Any, image_token_id: int, seq_len: int, processor_cls: type) -> None:
        self.config = read_preprocessor_config(directory)
        self.config_digest = config_digest(self.config)
        self.settings: dict[str, Any] = {}
        self.processor = pil_processor(processor_cls, self.config)
        self.longest_edge = int(self.processor.size["longest_edge"])
        self.tile = int(self.processor.max_image_size["longest_edge"])
        self.split = bool(self.processor.do_image_splitting)
        self.tokenizer = tokenizer
        self._placeholders: dict[tuple[int, int], list[int]] = {}
        self.image_token_id = image_token_id
        self.seq_len = seq_len
        for t in ("<fake_token_around_image>", "<global-img>", "<row_1_col_1>"):
            token_id(tokenizer, t)

    def grid(self, width: int, height: int) -> tuple[int, int]:
        return tile_grid(width, height, longest_edge=self.longest_edge, tile=self.tile, split=self.split)

    def num_tokens(self, width: int, height: int) -> int:
        rows, cols = self.grid(width, height)
        return (rows * cols + 1) * self.seq_len

    def placeholder_for(self, width: int, height: int) -> list[int]:
        grid = self.grid(width, height)
        if grid not in self._placeholders:
            text = prompt_string(*grid, self.seq_len)
            self._placeholders[grid] = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return list(self._placeholders[grid])

    def process(self, images: Sequence[Image.Image]) -> tuple[dict[str, torch.Tensor], list[int]]:
        out = self.processor(images=[[im.convert("RGB") for im in images]], return_tensors="pt",
                             return_row_col_info=True)
        counts = [(r * c + 1) * self.seq_len for r, c in zip(out["rows"][0], out["cols"][0])]
        return {"pixel_values": out["pixel_values"].float(), "pixel_attention_mask": out["pixel_attention_mask"]}, counts

    def concat(self, parts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Items' square stacks padded with all-zero squares to the longest (the model drops them)."""
        n = max(p["pixel_values"].shape[1] for p in parts)

        def pad(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t, t.new_zeros((t.shape[0], n - t.shape[1], *t.shape[2:]))], dim=1)

        return {k: torch.cat([pad(p[k]) for p in parts]) for k in ("pixel_values", "pixel_attention_mask")}

    def save(self, directory: Path) -> None:
        (Path(directory) / PREPROCESSOR_FILE).write_text(
            json.dumps({**self.config, SETTINGS_KEY: {}}, indent=2) + "\n")


def idefics3_images(directory: Path, config: Any, tokenizer: Any, settings: dict[str, Any], *,
                    processor: str) -> Idefics3Images:
    import importlib

    resolve_settings(settings, {}, {})  # the checkpoint's processor fixes the sizes
    module, name = processor.rsplit(".", 1)
    vc = config.vision_config
    seq_len = int((vc.image_size // vc.patch_size) ** 2 / config.scale_factor**2)
    return Idefics3Images(directory, tokenizer=tokenizer, image_token_id=int(config.image_token_id), seq_len=seq_len,
                          processor_cls=getattr(importlib.import_module(module), name))


def _spec(model_class: str, model_type: str, processor: str) -> BackboneSpec:
    return BackboneSpec(
        model_class=model_class,
        model_types=(model_type,),
        make_images=functools.partial(idefics3_images, processor=processor),
        vision_modules=("model.vision_model",),
        projector_modules=("model.connector",),
        language_modules=("model.text_model", "lm_head"),
        lora_targets=lora_targets("text_model"),
        forward_keys=("pixel_values", "pixel_attention_mask"),
        chat_template=None,
    )


_IDEFICS3_PIL = "transformers.models.idefics3.image_processing_pil_idefics3.Idefics3ImageProcessorPil"
_SMOLVLM_PIL = "transformers.models.smolvlm.image_processing_pil_smolvlm.SmolVLMImageProcessorPil"
# SmolVLM (first release, e.g. HuggingFaceTB/SmolVLM-256M-Instruct) is model_type "idefics3" too.
register_backbone("idefics3", _spec("Idefics3ForConditionalGeneration", "idefics3", _IDEFICS3_PIL))
register_backbone("smolvlm", _spec("SmolVLMForConditionalGeneration", "smolvlm", _SMOLVLM_PIL))


# ---- tiny checkpoints ---------------------------------------------------------------------------
def _smolvlm_template() -> str:
    """SmolVLM's chat template as transformers ships it (``processing_smolvlm.DEFAULT_CHAT_TEMPLATE``)."""
    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

    return DEFAULT_CHAT_TEMPLATE


def _build(out: Path, words: Sequence[str], text: dict[str, Any], *, smol: bool) -> None:
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, SmolVLMConfig, SmolVLMForConditionalGeneration

    from mprm.models.tiny import VISION, open_with_bos, save_tiny, tiny_tokenizer

    bos, eos = ("<|im_start|>", "<|im_end|>") if smol else ("<|begin_of_text|>", "<|end_of_text|>")
    grid = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    specials = [bos, eos, "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *grid]
    tok = tiny_tokenizer(specials, {"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                                    "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"},
                         words=(" Yes", " No", *words))
    if smol:
        tok.bos_token = bos  # SmolLM2 names <|im_start|> its BOS but adds none
    else:
        open_with_bos(tok, bos)  # Llama 3 opens every text with <|begin_of_text|>
    config_cls, model_cls = (SmolVLMConfig, SmolVLMForConditionalGeneration) if smol else \
        (Idefics3Config, Idefics3ForConditionalGeneration)
    cfg = config_cls(
        vision_config=dict(**VISION, image_size=56, patch_size=14),
        text_config=dict(model_type="llama", **text, vocab_size=len(tok), rope_parameters={"rope_type": "default", "rope_theta": 1e4},
                         bos_token_id=tok.convert_tokens_to_ids(bos), eos_token_id=tok.convert_tokens_to_ids(eos),
                         pad_token_id=0, tie_word_embeddings=False),
        image_token_id=tok.convert_tokens_to_ids("<image>"), scale_factor=2, tie_word_embeddings=False,
    )
    model = model_cls._from_config(cfg)
    template = _smolvlm_template()
    if not smol:  # Idefics3-8B-Llama3's: the same turns, opened by <|begin_of_text|> instead of <|im_start|>
        template = template.replace("<|im_start|>", "<|begin_of_text|>", 1)
    kind = "SmolVLM" if smol else "Idefics3"
    save_tiny(out, model, tok, chat_template=template, settings={}, preprocessor={
        "image_processor_type": f"{kind}ImageProcessor", "size": {"longest_edge": 112},
        "max_image_size": {"longest_edge": 56}, "do_image_splitting": True, "do_resize": True, "do_pad": True,
        "resample": 1, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
        processor={"image_seq_len": 4, "processor_class": f"{kind}Processor"})


def build_tiny_idefics3(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    """SigLIP-style tower (2 layers, 32 wide) on 56-px squares, 4 tokens each after the 2x2 pixel
    shuffle, up to 2 x 2 squares + the global view, a Llama text model, a Llama-3-like tokenizer."""
    _build(out, words, text, smol=False)


def build_tiny_smolvlm(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    """As the tiny Idefics3, in SmolVLM2's classes with SmolLM2's ChatML-named specials."""
    _build(out, words, text, smol=True)


register_tiny("idefics3", TinyFamily("idefics3", build_tiny_idefics3, "HuggingFaceM4/Idefics3-8B-Llama3",
                                     takes_words=True))
register_tiny("smolvlm", TinyFamily("smolvlm", build_tiny_smolvlm, "HuggingFaceTB/SmolVLM2-2.2B-Instruct",
                                    takes_words=True))
