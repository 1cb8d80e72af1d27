"""Gemma 3 (``Gemma3ForConditionalGeneration``: SigLIP + pooled soft-token projector + Gemma 3).

Every image is resized to the vision tower's square (896 px for the released 4B-27B) and pooled
to ``mm_tokens_per_image`` (256) soft tokens, which the processor writes as
``\\n\\n<start_of_image>`` + soft tokens + ``<end_of_image>\\n\\n``; image tokens attend to each
other in both directions, which the model reads from ``token_type_ids`` (1 at image tokens, made
per batch by the formatter). Pan-and-scan is off, as in the processor's default, so there are no
image settings. The tokenizer is SentencePiece-style ("▁" for spaces, no prefix space): the head's
tokens are the entries "Yes" and "No", as the authors take them (decisions.md D-MODELS-13). Gemma
has no system role; its template puts a system message at the top of the first user turn, and
the family has no default one, so the layout has no system turn. Input and output embeddings
are tied.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mprm.models.backbones import BackboneSpec, register_backbone, token_id
from mprm.models.images import FixedImages, resolve_settings
from mprm.models.zoo import TinyFamily, lora_targets, register_tiny

#: Gemma 3's turn markup: ``<bos>``, ``<start_of_turn>user|model\n ... <end_of_turn>\n``, a system
#: message prefixed to the first user turn with a blank line, an image part as ``<start_of_image>``.
GEMMA3_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- set ns = namespace(prefix='', start=0) -%}"
    "{%- if messages[0]['role'] == 'system' -%}{%- set ns.start = 1 -%}"
    "{%- if messages[0]['content'] is string -%}{%- set ns.prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- else -%}{%- set ns.prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}{%- endif -%}{%- endif -%}"
    "{%- for message in messages[ns.start:] -%}"
    "{{- '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' -}}"
    "{%- if loop.first -%}{{- ns.prefix -}}{%- endif -%}"
    "{%- if message['content'] is string -%}{{- message['content'] | trim -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<start_of_image>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] | trim -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<end_of_turn>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
)


def gemma3_images(directory: Path, config: Any, tokenizer: Any, settings: dict[str, Any]) -> FixedImages:
    """``Gemma3ImageProcessorPil``, one square per picture; what ``Gemma3Processor`` writes for one
    ``<start_of_image>`` (its ``full_image_sequence``) around the soft tokens."""
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    resolve_settings(settings, {}, {})  # fixed size: an explicit knob is an error naming that
    token_id(tokenizer, "<start_of_image>"), token_id(tokenizer, "<end_of_image>")
    return FixedImages(directory, tokenizer=tokenizer, processor_cls=Gemma3ImageProcessorPil,
                       image_token_id=int(config.image_token_id), tokens=int(config.mm_tokens_per_image),
                       before="\n\n<start_of_image>", after="<end_of_image>\n\n", do_pan_and_scan=False)


register_backbone(
    "gemma3",
    BackboneSpec(
        model_class="Gemma3ForConditionalGeneration",
        model_types=("gemma3",),
        make_images=gemma3_images,
        vision_modules=("model.vision_tower",),
        projector_modules=("model.multi_modal_projector",),
        language_modules=("model.language_model", "lm_head"),
        lora_targets=lora_targets("language_model"),
        forward_keys=("pixel_values", "token_type_ids"),
        chat_template=GEMMA3_TEMPLATE,
    ),
)


def build_tiny_gemma3(out: Path, words: Sequence[str], text: dict[str, Any]) -> None:
    """SigLIP (2 layers, 32 wide) on 56-px squares pooled to 4 soft tokens, a Gemma 3 text model
    (one sliding-window layer of 16 tokens, one global), tied embeddings, a Gemma-style tokenizer."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from mprm.models.tiny import VISION, save_tiny, sentencepiece_tokenizer

    specials = ["<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
    tok = sentencepiece_tokenizer(specials, {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                             "image_token": "<image_soft_token>"})
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    cfg = Gemma3Config(
        text_config=dict(model_type="gemma3_text", **text, head_dim=head_dim, query_pre_attn_scalar=head_dim,
                         vocab_size=len(tok), sliding_window=16, layer_types=["sliding_attention", "full_attention"],
                         pad_token_id=0, eos_token_id=ids["<end_of_turn>"], bos_token_id=2),
        vision_config=dict(model_type="siglip_vision_model", **VISION, image_size=56, patch_size=14),
        mm_tokens_per_image=4, boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"], tie_word_embeddings=True,
    )
    model = Gemma3ForConditionalGeneration._from_config(cfg)
    with torch.no_grad():  # the release initialises the projection to zero; a tiny model should see its images
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, text["initializer_range"])
    save_tiny(out, model, tok, chat_template=GEMMA3_TEMPLATE, settings={}, preprocessor={
        "image_processor_type": "Gemma3ImageProcessor", "size": {"height": 56, "width": 56}, "resample": 2,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_pan_and_scan": False},
        processor={"image_seq_length": 4, "processor_class": "Gemma3Processor"})


register_tiny("gemma3", TinyFamily("gemma3", build_tiny_gemma3, "google/gemma-3-4b-it"))
