"""Tiny randomly initialised backbones for tests and the demo (no downloads).

``build_tiny(name, folder)`` writes a checkpoint folder of a zoo family (``mprm.models.zoo``) in
the same on-disk layout as a real one (``config.json`` + safetensors weights, the tokenizer files
with the family's chat template, ``preprocessor_config.json``), so tests go through exactly the
loading code a real checkpoint uses. This module holds what the families' builders share: the
tokenizers (byte-level BPE, as Qwen/Llama 3/Mistral's, or SentencePiece-style with byte fallback,
as Gemma's) in which "Yes" and "No" are vocabulary entries (the reward head reads their logits,
METHOD.md 6), the small text-model shape and the writer. Image settings are kept small (few image
tokens) and stored under ``mprm_image_settings`` in the processor config so ``build_reward_model``
picks them up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mprm.models.images import PREPROCESSOR_FILE, SETTINGS_KEY

#: The zoo's tiny families (``mprm tiny --backbone NAME``); each maps to a registry backbone
#: (``mprm.models.zoo.TINY``; a test checks that the two lists agree).
TINY_BACKBONES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "internvl", "internvl_hf", "internvl_internlm2", "llava_onevision",
                  "gemma3", "idefics3", "smolvlm", "mistral3")
_MERGES = [("Y", "e"), ("Ye", "s"), ("N", "o")]
#: The tiny text model (every family): 2 layers, 64 wide, 4 heads (2 key/value heads).
TEXT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, initializer_range=0.1, max_position_embeddings=4096)
#: The tiny vision towers' width and depth.
VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


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
    synthetic task, or " Yes" for the byte-level families whose vocabulary has "ĠYes" beside
    "Yes"), so a tiny model reads a word as one token as a real tokenizer would.
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


def sentencepiece_tokenizer(special_tokens: list[str], extra_special: dict[str, str] | None = None) -> Any:
    """A Gemma-style tokenizer (``GemmaTokenizer``: BPE over "▁"-for-space pieces with byte
    fallback, no prefix space, BOS added): printable ASCII, the 256 byte pieces, and "Yes", "No",
    "▁Yes", "▁No" as entries. The text "Yes" at the start of a turn is the entry "Yes", and " Yes"
    is "▁Yes", as in the real vocabulary."""
    from transformers import GemmaTokenizer

    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"])}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in ["▁", "\n"] + [chr(c) for c in range(33, 127)]:
        vocab.setdefault(ch, len(vocab))
    merges = [("Y", "e"), ("Ye", "s"), ("N", "o"), ("▁", "Yes"), ("▁", "No"), ("\n", "\n")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    kwargs = {"extra_special_tokens": extra_special} if extra_special else {}
    tok = GemmaTokenizer(vocab=vocab, merges=merges, **kwargs)
    tok.add_tokens(special_tokens, special_tokens=True)
    return tok


def open_with_bos(tok: Any, bos: str, bos_id: int | None = None) -> None:
    """Make the tokenizer open every encoded text with ``bos``, as InternLM2's does (its
    ``add_bos_token``), and Llama 3's and Mistral's: the tiny models then cover the BOS handling
    of the real releases."""
    from tokenizers.processors import TemplateProcessing

    bos_id = tok.convert_tokens_to_ids(bos) if bos_id is None else bos_id
    tok.bos_token = bos
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, bos_id)])


def mrope_section(text: dict[str, Any]) -> list[int]:
    """Qwen-VL's (temporal, height, width) rotary split; it must sum to head_dim / 2."""
    half = text.get("head_dim", text["hidden_size"] // text["num_attention_heads"]) // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def save_tiny(out: Path, model: torch.nn.Module, tok: Any, *, preprocessor: dict[str, Any],
              settings: dict[str, Any] | None = None, chat_template: str | None = None,
              processor: dict[str, Any] | None = None) -> None:
    """Write a tiny checkpoint as a real one is laid out: ``config.json`` + safetensors, the tokenizer
    (with ``chat_template.jinja`` when the family ships a template), ``preprocessor_config.json``
    (``settings`` under ``mprm_image_settings``) and, for processors with arguments of their own,
    ``processor_config.json``."""
    model.save_pretrained(out, safe_serialization=True)
    if chat_template is not None:
        tok.chat_template = chat_template
    tok.save_pretrained(out)
    cfg = dict(preprocessor)
    if settings is not None:
        cfg[SETTINGS_KEY] = dict(settings)
    (out / PREPROCESSOR_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    if processor is not None:
        (out / "processor_config.json").write_text(json.dumps(processor, indent=2) + "\n")


def build_tiny(backbone: str, output_dir: str | Path, *, seed: int = 0, words: Sequence[str] = (),
               text_overrides: dict[str, Any] | None = None) -> Path:
    """Write a tiny random checkpoint of a zoo family (:data:`TINY_BACKBONES`) to ``output_dir``.

    Each family's builder (``mprm.models.zoo``) writes the family's real on-disk layout: its
    transformers config with a 2-layer, 64-wide text model and a 2-layer, 32-wide vision tower, a
    tokenizer of the family's kind with its special tokens, its chat template and an image
    processor config with small image settings. The same seed gives the same weights. ``words``
    adds whole-word tokens to the tokenizer and ``text_overrides`` changes the text model's shape
    (``hidden_size``, ``num_hidden_layers``, ...): the demo's pretrained backbone uses both
    (mprm.experiments.pretrain; byte-level families only). Returns the folder.
    """
    from mprm.models.zoo import TINY

    if backbone not in TINY:
        raise ValueError(f"no tiny model for backbone {backbone!r}; choose from {', '.join(TINY)}")
    family = TINY[backbone]
    if words and not family.takes_words:
        raise ValueError(f"tiny {backbone}: domain words need a byte-level tokenizer, and this family's is not")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        family.build(out, words, {**TEXT, **(text_overrides or {})})
    finally:
        torch.random.set_rng_state(state)
    return out
