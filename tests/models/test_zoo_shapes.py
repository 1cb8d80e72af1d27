"""One real size per zoo family, on the meta device (no weights, no downloads): built from the
public config numbers through the registry's own class, it must have the published parameter
count, and the registry's module prefixes must cover every parameter (vision / projector /
language), so freezing and LoRA act on the real architecture as on the tiny one.

Published totals (the Hugging Face safetensors "total" of each release, as quoted by public code
found with the search tool): Qwen2-VL-7B-Instruct 8,291,375,616; Qwen3-VL-8B-Instruct 8,767,123,696
(``"safetensors":{"parameters":{"BF16":8767123696}``); gemma-3-4b-it 4,300,079,472;
Mistral-Small-3.1-24B-Instruct-2503 24,011,361,280 (keras-hub's mistral3 preset, and the 3.2
release's); SmolVLM-256M-Instruct (model_type idefics3) 256,484,928 (also SmolDocling-256M's).
LLaVA-OneVision-Qwen2-7B is published as "8.03B params" only (its Hugging Face pages), so its
exact count is ours and only its rounding is checked. Qwen2.5-VL-7B and InternVL2.5-8B are in
test_real_shapes.py. The config numbers are those of each release's config.json.
"""

from __future__ import annotations

import pytest
import torch

from mprm.models import get_backbone

QWEN2_TEXT = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                  num_key_value_heads=4, tie_word_embeddings=False)
SIGLIP_SO400M = dict(model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304,
                     num_attention_heads=16, patch_size=14, vision_use_head=False)

RELEASES = {
    "Qwen/Qwen2-VL-7B-Instruct": ("qwen2_vl", "Qwen2VLConfig", 8_291_375_616, dict(
        text_config=dict(QWEN2_TEXT, vocab_size=152064,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}),
        vision_config=dict(depth=32, embed_dim=1280, hidden_size=3584, num_heads=16, mlp_ratio=4, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        tie_word_embeddings=False)),
    "Qwen/Qwen3-VL-8B-Instruct": ("qwen3_vl", "Qwen3VLConfig", 8_767_123_696, dict(
        text_config=dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [24, 20, 20],
                                          "mrope_interleaved": True}),
        vision_config=dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, out_hidden_size=4096,
                           num_position_embeddings=2304, deepstack_visual_indexes=[8, 16, 24], patch_size=16,
                           spatial_merge_size=2, temporal_patch_size=2),
        tie_word_embeddings=False)),
    "google/gemma-3-4b-it": ("gemma3", "Gemma3Config", 4_300_079_472, dict(
        text_config=dict(hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8,
                         num_key_value_heads=4, head_dim=256, vocab_size=262208, query_pre_attn_scalar=256,
                         sliding_window=1024),
        vision_config=dict(SIGLIP_SO400M, num_hidden_layers=27, image_size=896), mm_tokens_per_image=256)),
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503": ("mistral3", "Mistral3Config", 24_011_361_280, dict(
        text_config=dict(model_type="mistral", hidden_size=5120, intermediate_size=32768, num_hidden_layers=40,
                         num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=131072,
                         tie_word_embeddings=False),
        vision_config=dict(model_type="pixtral", hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                           num_attention_heads=16, head_dim=64, image_size=1540, patch_size=14),
        spatial_merge_size=2, multimodal_projector_bias=False, tie_word_embeddings=False)),
    "HuggingFaceTB/SmolVLM-256M-Instruct": ("idefics3", "Idefics3Config", 256_484_928, dict(
        text_config=dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49280, tie_word_embeddings=False),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=512, patch_size=16),
        scale_factor=4, tie_word_embeddings=False)),
    "llava-hf/llava-onevision-qwen2-7b-ov-hf": ("llava_onevision", "LlavaOnevisionConfig", 8_030_807_584, dict(
        text_config=dict(QWEN2_TEXT, model_type="qwen2", vocab_size=152128),
        vision_config=dict(SIGLIP_SO400M, num_hidden_layers=26, image_size=384), tie_word_embeddings=False)),
}
#: Parameters outside the three parts, by design: LLaVA-OneVision's learned row-end vector.
OTHER = {"llava_onevision": {"model.image_newline"}}


def _meta(backbone: str, config_class: str, numbers: dict) -> torch.nn.Module:
    import transformers

    config = getattr(transformers, config_class)(**numbers)
    with torch.device("meta"):
        return get_backbone(backbone).model_cls()._from_config(config)


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_release_has_the_published_parameter_count_and_every_parameter_a_part(release):
    backbone, config_class, published, numbers = RELEASES[release]
    model = _meta(backbone, config_class, numbers)
    total = sum(p.numel() for p in model.parameters())
    if release.startswith("llava-hf/"):
        assert round(total / 1e9, 2) == 8.03  # published as "8.03B params"
    assert total == published
    spec = get_backbone(backbone)
    parts: dict[str, int] = {}
    for name, p in model.named_parameters():
        part = spec.part_of(name)
        assert part != "other" or name in OTHER.get(backbone, set()), name
        parts[part] = parts.get(part, 0) + p.numel()
    assert parts["vision"] > 0 and parts["projector"] > 0 and parts["language"] > total / 2


def test_smolvlm_class_has_the_idefics3_architecture():
    """SmolVLM2 checkpoints load through SmolVLMForConditionalGeneration: with SmolVLM-256M's numbers
    it must build the same parameters as Idefics3ForConditionalGeneration (what the registry's two
    entries share: module prefixes, image handling)."""
    numbers = RELEASES["HuggingFaceTB/SmolVLM-256M-Instruct"][3]
    smol = _meta("smolvlm", "SmolVLMConfig", numbers)
    idefics = _meta("idefics3", "Idefics3Config", numbers)
    assert {n: tuple(p.shape) for n, p in smol.named_parameters()} == \
        {n: tuple(p.shape) for n, p in idefics.named_parameters()}
