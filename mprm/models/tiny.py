"""Tiny randomly initialised backbones for tests and the demo (no downloads).

``build_tiny`` writes a checkpoint folder in the same on-disk layout as a real one
(``config.json`` + safetensors weights, ``tokenizer.json``/``tokenizer_config.json``,
``preprocessor_config.json``), so tests go through exactly the loading code a real checkpoint
uses. The tokenizer is a real byte-level ``Qwen2Tokenizer`` over the 256-symbol alphabet with the
chat and vision special tokens, plus merges that make "Yes" and "No" single tokens (the reward
head reads their logits, METHOD.md 6). Image settings are kept small (few image tokens) and stored
under ``mprm_image_settings`` in the processor config so ``build_reward_model`` picks them up.
"""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import torch

from mprm.models.images import PREPROCESSOR_FILE, SETTINGS_KEY

TINY_BACKBONES = ("qwen2_5_vl", "internvl")
#: Tiny image settings: Qwen at most 2x2 merged tokens per image, InternVL 56-px tiles, <= 2 + thumbnail.
TINY_QWEN_PIXELS = {"min_pixels": 784, "max_pixels": 3136}
TINY_INTERNVL_TILES = 2
_MERGES = [("Y", "e"), ("Ye", "s"), ("N", "o")]
_TEXT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=128, initializer_range=0.1, max_position_embeddings=4096)


def word_merges(words: Sequence[str], base: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """BPE merges, ranked after ``base``, that make each of ``words`` one token.

    ``words`` are pre-tokenised pieces as the byte-level pre-tokeniser yields them (a leading
    space is part of the word: " red"). Each word is first split by the merges ranked before it
    (``base``, then earlier words), as BPE will split it, and its pieces are then joined left to
    right; so " Yellow" still becomes one token although "Ye" is merged first (for "Yes"). Every
    merge result is a vocabulary entry, so any text still tokenises; only the listed words become
    single tokens. Returns the new merges only.
    """
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_map = bytes_to_unicode()
    rank = {pair: i for i, pair in enumerate(dict.fromkeys(base))}
    new: list[tuple[str, str]] = []
    for word in words:
        pieces = _bpe([byte_map[b] for b in word.encode("utf-8")], rank)
        left = pieces[0]
        for piece in pieces[1:]:
            if (left, piece) not in rank:
                rank[(left, piece)] = len(rank)
                new.append((left, piece))
            left += piece
    return new


def _bpe(symbols: list[str], rank: dict[tuple[str, str], int]) -> list[str]:
    """Apply ranked merges as byte-level BPE does: always the best-ranked adjacent pair first."""
    while len(symbols) > 1:
        pairs = [(rank.get((a, b), len(rank)), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        best, i = min(pairs)
        if best == len(rank):
            break
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2:]
    return symbols


def tiny_tokenizer(special_tokens: list[str], extra_special: dict[str, str] | None = None,
                   words: Sequence[str] = ()) -> Any:
    """Byte-level Qwen2 tokenizer: 256 byte symbols, ``<|endoftext|>``, "Yes"/"No" merges, specials.

    ``words``: extra whole-word tokens (a domain vocabulary, e.g. :func:`domain_words` of the
    synthetic task), so a tiny model reads a word as one token as a real tokenizer would.
    """
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {"<|endoftext|>": 0}
    for ch in bytes_to_unicode().values():
        vocab[ch] = len(vocab)
    merges = list(dict.fromkeys(_MERGES)) + word_merges(words, base=_MERGES)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    kwargs = {"extra_special_tokens": extra_special} if extra_special else {}
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, **kwargs)
    # Added after construction: passed at construction they can be dropped silently (ENVIRONMENT.md).
    tok.add_tokens(special_tokens, special_tokens=True)
    return tok


def _save_common(model: torch.nn.Module, tok: Any, out: Path) -> None:
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def _build_qwen(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration


    specials = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                "<|image_pad|>", "<|video_pad|>"]
    tok = tiny_tokenizer(specials, words=words)
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    cfg = Qwen2_5_VLConfig(
        text_config=dict(**text, vocab_size=len(tok),
                         rope_parameters={"rope_type": "default", "rope_theta": 1e4,
                                          "mrope_section": _mrope_section(text)},
                         bos_token_id=0, eos_token_id=ids["<|im_end|>"], pad_token_id=0),
        vision_config=dict(depth=2, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=text["hidden_size"],
                           window_size=56, fullatt_block_indexes=[1], patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    model = Qwen2_5_VLForConditionalGeneration._from_config(cfg)
    _save_common(model, tok, out)
    (out / PREPROCESSOR_FILE).write_text(json.dumps({
        "image_processor_type": "Qwen2VLImageProcessor", "patch_size": 14, "temporal_patch_size": 2,
        "merge_size": 2, **TINY_QWEN_PIXELS, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], SETTINGS_KEY: dict(TINY_QWEN_PIXELS)}, indent=2) + "\n")


def _build_internvl(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    from transformers import InternVLConfig, InternVLForConditionalGeneration


    specials = ["<s>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<|video_pad|>"]
    extra = {"start_image_token": "<img>", "end_image_token": "</img>",
             "context_image_token": "<IMG_CONTEXT>", "video_token": "<|video_pad|>"}
    tok = tiny_tokenizer(specials, extra, words=words)
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    _open_with_bos(tok, "<s>", ids["<s>"])
    cfg = InternVLConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           image_size=[56, 56], patch_size=[14, 14]),
        text_config=dict(model_type="qwen2", **text, vocab_size=len(tok), rope_parameters={"rope_type": "default", "rope_theta": 1e4},
                         bos_token_id=ids["<s>"], eos_token_id=ids["<|im_end|>"], pad_token_id=0,
                         tie_word_embeddings=False),
        image_token_id=ids["<IMG_CONTEXT>"], image_seq_length=4, downsample_ratio=0.5, tie_word_embeddings=False,
    )
    model = InternVLForConditionalGeneration._from_config(cfg)
    _save_common(model, tok, out)
    settings = {"max_tiles": TINY_INTERNVL_TILES, "tile_size": 56}
    (out / PREPROCESSOR_FILE).write_text(json.dumps({
        "image_processor_type": "GotOcr2ImageProcessor", "size": {"height": 56, "width": 56},
        "crop_to_patches": True, "min_patches": 1, "max_patches": TINY_INTERNVL_TILES,
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
        SETTINGS_KEY: settings}, indent=2) + "\n")


def _open_with_bos(tok: Any, bos: str, bos_id: int) -> None:
    """Make the tokenizer open every encoded text with ``bos``, as InternLM2's does (its
    ``add_bos_token``): the tiny InternVL then covers the BOS handling of the real 8B release."""
    from tokenizers.processors import TemplateProcessing

    tok.bos_token = bos
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, bos_id)])


def _mrope_section(text: dict[str, Any]) -> list[int]:
    """Qwen2.5-VL's (temporal, height, width) rotary split; it must sum to head_dim / 2."""
    half = text["hidden_size"] // text["num_attention_heads"] // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def build_tiny(backbone: str, output_dir: str | Path, *, seed: int = 0, words: Sequence[str] = (),
               text_overrides: dict[str, Any] | None = None) -> Path:
    """Write a tiny random ``backbone`` ("qwen2_5_vl" or "internvl") checkpoint to ``output_dir``.

    Qwen2.5-VL: 2-layer, 64-wide text model; 2-block, 32-wide vision tower. InternVL: 2-layer,
    32-wide InternViT on 56-px tiles (14-px patches, 4 LM tokens per tile) and a 2-layer qwen2 text
    model. The same seed gives the same weights. ``words`` adds whole-word tokens to the tokenizer
    and ``text_overrides`` changes the text model's shape (``hidden_size``, ``num_hidden_layers``,
    ...): the demo's pretrained backbone uses both (mprm.experiments.pretrain). Returns the folder.
    """
    if backbone not in TINY_BACKBONES:
        raise ValueError(f"no tiny model for backbone {backbone!r}; choose from {', '.join(TINY_BACKBONES)}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        text = {**_TEXT, **(text_overrides or {})}
        (_build_qwen if backbone == "qwen2_5_vl" else _build_internvl)(out, words, text)
    finally:
        torch.random.set_rng_state(state)
    return out
