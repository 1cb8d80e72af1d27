"""Bringing a new backbone (docs/models.md): what a user adds for a family the zoo lacks, here
LLaVA-1.5 (``LlavaForConditionalGeneration``: CLIP ViT-L/336 + MLP + Vicuna/Llama, 576 tokens per
picture, ``llava-hf/llava-1.5-7b-hf``). One registry entry, a tiny checkpoint in the family's
on-disk layout, and one test that runs every zoo check on it. The entry lives in the user's own
module, named in ``model.plugins``; here the test registers it and removes it afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mprm.models import BackboneSpec, register_backbone
from mprm.models.backbones import unregister_backbone
from mprm.models.images import FixedImages
from mprm.models.zoo import lora_targets
from mprm.models.zoo.check import check_backbone

# ---- the entry (the user's module) --------------------------------------------------------------
#: LLaVA-1.5's conversation: "SYSTEM USER: <image>\n... ASSISTANT: ..." (Vicuna v1 style).
LLAVA_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{{- m['content'] + ' ' -}}"
    "{%- elif m['role'] == 'user' -%}{{- 'USER: ' + m['content'] + ' ' -}}"
    "{%- else -%}{{- 'ASSISTANT: ' + m['content'] + eos_token -}}{%- endif -%}"
    "{%- endfor -%}"
)
LLAVA_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives "
                "helpful, detailed, and polite answers to the human's questions.")


def llava_images(directory, config, tokenizer, settings):
    """CLIP's processor (shortest side to 336, centre crop), ``image_seq_length`` tokens per picture."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return FixedImages(directory, tokenizer=tokenizer, processor_cls=CLIPImageProcessorPil,
                       image_token_id=int(config.image_token_id), tokens=int(config.image_seq_length))


LLAVA = BackboneSpec(
    model_class="LlavaForConditionalGeneration",
    model_types=("llava",),
    make_images=llava_images,
    vision_modules=("model.vision_tower",),
    projector_modules=("model.multi_modal_projector",),
    language_modules=("model.language_model", "lm_head"),
    lora_targets=lora_targets("language_model"),
    forward_keys=("pixel_values",),
    system_prompt=LLAVA_SYSTEM,
    chat_template=LLAVA_TEMPLATE,
    multi_image=False,  # one picture per conversation in LLaVA-1.5's training: several make one canvas
)


# ---- the tiny checkpoint ------------------------------------------------------------------------
def build_tiny_llava(out: Path) -> Path:
    """CLIP (2 layers, 32 wide, 28-px pictures of 14-px patches: 4 tokens without the class token),
    a Llama text model, a byte-level tokenizer that adds <s>, the template and processor config."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    from mprm.models.tiny import TEXT, VISION, open_with_bos, save_tiny, tiny_tokenizer

    tok = tiny_tokenizer(["<s>", "</s>", "<image>"], {"image_token": "<image>"}, words=(" Yes", " No"))
    open_with_bos(tok, "<s>")
    tok.eos_token = "</s>"
    cfg = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", **VISION, image_size=28, patch_size=14, projection_dim=32),
        text_config=dict(model_type="llama", **TEXT, vocab_size=len(tok), bos_token_id=tok.convert_tokens_to_ids("<s>"),
                         eos_token_id=tok.convert_tokens_to_ids("</s>"), pad_token_id=0),
        image_token_index=tok.convert_tokens_to_ids("<image>"), image_seq_length=4,
    )
    torch.manual_seed(0)
    save_tiny(out, LlavaForConditionalGeneration._from_config(cfg), tok, chat_template=LLAVA_TEMPLATE, settings={},
              preprocessor={"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 28},
                            "crop_size": {"height": 28, "width": 28}, "do_center_crop": True, "resample": 3,
                            "image_mean": [0.48145466, 0.4578275, 0.40821073],
                            "image_std": [0.26862954, 0.26130258, 0.27577711]})
    return out


# ---- the test -----------------------------------------------------------------------------------
@pytest.fixture()
def my_llava():
    register_backbone("my_llava", LLAVA)
    yield "my_llava"
    unregister_backbone("my_llava")


def test_my_llava_passes_every_zoo_check(my_llava, tmp_path):
    folder = build_tiny_llava(tmp_path / "tiny_llava")
    check_backbone(folder, backbone=my_llava, prefix=f"<s>{LLAVA_SYSTEM} USER:  ASSISTANT: ")
