"""Every family's image tokens and pixels against its own transformers processor: for pictures of
many sizes, mprm's placeholder (counted from the size alone, before any pixel is read) must be
exactly the token ids the family's processor writes for one image marker, and mprm's pixel
inputs exactly the processor's. The processors are built image-only (a bare video processor
where one is required: torchvision cannot be installed here). Two families cannot build their
processor on this machine and are held against the parts that can: SmolVLM's (needs num2words)
through its prompt-string function and image processor, Mistral 3's PixtralProcessor (imports
torchvision) through its image processor and the token rule of its ``replace_image_token``."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from mprm.models import build_reward_model
from mprm.models.images import placeholder_for
from mprm.models.tiny import TINY_BACKBONES

SIZES = [(60, 40), (30, 90), (120, 50), (13, 200), (300, 299), (57, 57), (500, 120), (90, 91)]


def _picture(w: int, h: int) -> Image.Image:
    im = Image.new("RGB", (w, h), (20, 120, 220))
    for x in range(0, w, 5):
        im.putpixel((x, (x * 7) % h), (250, 250, 0))
    return im


def _pre(folder) -> dict:
    return {k: v for k, v in json.loads((folder / "preprocessor_config.json").read_text()).items()
            if k not in ("image_processor_type", "mprm_image_settings")}


def _image_only(cls: type) -> type:
    """The processor class without its video processor (ENVIRONMENT.md: video processors need
    torchvision). ProcessorMixin takes its sub-processors from ``__init__``'s signature, so a
    signature without ``video_processor`` leaves it out."""

    class ImageOnly(cls):
        def __init__(self, image_processor, tokenizer, **kwargs):
            super().__init__(image_processor, tokenizer, None, **kwargs)

    return ImageOnly


def _reference(family: str, folder, handler):
    """``(marker text, processor)`` of the family's own transformers processor, or a callable that
    does what that processor does when it cannot be built here."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    pre = _pre(folder)
    if family in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor, Qwen3VLProcessor
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        cls = {"qwen2_vl": Qwen2VLProcessor, "qwen2_5_vl": Qwen2_5_VLProcessor, "qwen3_vl": Qwen3VLProcessor}[family]
        pre.update(handler.settings)
        return "<|vision_start|><|image_pad|><|vision_end|>", _image_only(cls)(
            image_processor=Qwen2VLImageProcessorPil(**pre), tokenizer=tok)
    if family.startswith("internvl"):
        from transformers import InternVLProcessor
        from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

        pre.update(max_patches=handler.settings["max_tiles"])
        processor = _image_only(InternVLProcessor)(
            image_processor=GotOcr2ImageProcessorPil(**pre), tokenizer=tok, image_seq_length=handler.tokens_per_tile)
        # the converter names <IMG_CONTEXT> the video token too (decisions.md D-CONV-2), which this
        # processor's input check then counts as a video; mprm never sends videos
        processor.video_token = "<no video>"
        return "<IMG_CONTEXT>", processor
    if family == "llava_onevision":
        from transformers import LlavaOnevisionProcessor
        from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
            LlavaOnevisionImageProcessorPil,
        )

        return "<image>", _image_only(LlavaOnevisionProcessor)(
            image_processor=LlavaOnevisionImageProcessorPil(**pre), tokenizer=tok,
            num_image_tokens=handler.base_tokens, vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9")
    if family == "gemma3":
        from transformers import Gemma3Processor
        from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

        return "<start_of_image>", Gemma3Processor(image_processor=Gemma3ImageProcessorPil(**pre), tokenizer=tok,
                                                   image_seq_length=handler.tokens)
    if family == "idefics3":
        from transformers import Idefics3Processor
        from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

        return "<image>", Idefics3Processor(image_processor=Idefics3ImageProcessorPil(**pre), tokenizer=tok,
                                            image_seq_len=handler.seq_len)
    if family == "smolvlm":
        from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil
        from transformers.models.smolvlm.processing_smolvlm import get_image_prompt_string

        ip = SmolVLMImageProcessorPil(**pre)

        def smolvlm(text, images, return_tensors):
            out = ip(images=[images], return_tensors="pt", return_row_col_info=True)
            prompt = get_image_prompt_string(out["rows"][0][0], out["cols"][0][0], handler.seq_len,
                                             "<fake_token_around_image>", "<image>", "<global-img>")
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
            return {"input_ids": torch.tensor([ids]), "pixel_values": out["pixel_values"],
                    "pixel_attention_mask": out["pixel_attention_mask"]}

        return "<image>", smolvlm
    if family == "mistral3":
        from transformers.models.pixtral.image_processing_pil_pixtral import PixtralImageProcessorPil

        ip = PixtralImageProcessorPil(**pre)

        def pixtral(text, images, return_tensors):
            # PixtralProcessor: images resized on (patch x spatial_merge)-px cells; per row of cells
            # [IMG] x width + [IMG_BREAK], the last [IMG_BREAK] replaced by [IMG_END]
            out = ip(images=images, return_tensors="pt", patch_size={"height": 28, "width": 28})
            h, w = (int(v) // 28 for v in out["image_sizes"][0])
            row = ["[IMG]"] * w + ["[IMG_BREAK]"]
            tokens = (row * h)[:-1] + ["[IMG_END]"]
            return {"input_ids": torch.tensor([tok.convert_tokens_to_ids(tokens)]), "pixel_values": out["pixel_values"],
                    "image_sizes": torch.as_tensor(out["image_sizes"])}

        return "[IMG]", pixtral
    raise AssertionError(f"no reference processor for {family}")


@pytest.mark.parametrize("family", TINY_BACKBONES)
def test_placeholder_and_pixels_equal_the_familys_processor(family, zoo_dir):
    folder = zoo_dir(family)
    f = build_reward_model(folder).formatter
    handler = f.images
    marker, processor = _reference(family, folder, handler)
    bos = f.tokenizer.bos_token_id
    for w, h in SIZES:
        picture = _picture(w, h)
        ref = processor(text=marker, images=[picture], return_tensors="pt")
        want = ref["input_ids"][0].tolist()
        if want and want[0] == bos and len(want) > 1:
            want = want[1:]  # the tokenizer's BOS; the formatter puts it before the whole prompt
        got = placeholder_for(handler, w, h)
        assert got == want, (family, (w, h))
        assert handler.num_tokens(w, h) == want.count(handler.image_token_id), (family, (w, h))
        pixels, counts = handler.process([picture])
        assert counts == [handler.num_tokens(w, h)]
        for key, value in pixels.items():
            assert torch.allclose(value.float(), torch.as_tensor(ref[key]).float(), atol=1e-6), (family, key, (w, h))
