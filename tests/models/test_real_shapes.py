"""The paper's two backbones at their real size, on the meta device (no weights, no downloads).

Qwen2.5-VL-7B-Instruct and InternVL2.5-8B are built from their published config numbers
(mprm.train.plan) and must have the parameter counts of the releases, which are also written out
here by hand from the architectures. The InternVL converter must map every tensor of the real
InternVL2.5-8B release: the 573 names of its public model.safetensors.index.json are generated
from the architecture and checked against that file's key set by digest, and its total_size
(16,150,730,752 bytes of bf16) must be twice the hand count.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from mprm.models.convert_internvl import _rules, convert_tensor
from mprm.train.plan import release_config

#: sha256 of the sorted tensor names of OpenGVLab/InternVL2_5-8B's model.safetensors.index.json
#: ("\n"-joined), read from a public copy of that file (github.com/cuijunjie18/my_notebook,
#: uv/ICT_note.md, which pastes it whole, total_size 16150730752).
INTERNVL_INDEX_SHA256 = "c2469107d6677e48f65ecdc313462eccbe07eaf911205e3252c17c81014474d4"
INTERNVL_INDEX_TOTAL_SIZE = 16_150_730_752


def _meta_model(release: str) -> torch.nn.Module:
    from mprm.models.backbones import get_backbone

    backbone, config = release_config(release)
    with torch.device("meta"):
        return get_backbone(backbone).model_cls()._from_config(config)


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def qwen_by_hand() -> int:
    h, inter, vocab, layers = 3584, 18944, 152064, 28
    kv = 4 * 128
    lm_layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * inter + 2 * h  # q, k, v (biased), o, MLP, 2 norms
    vh, vi = 1280, 3420
    block = 2 * vh + (vh * 3 * vh + 3 * vh) + (vh * vh + vh) + 2 * (vh * vi + vi) + (vi * vh + vh)
    merger = vh + (4 * vh * 4 * vh + 4 * vh) + (4 * vh * h + h)
    patch = vh * 3 * 2 * 14 * 14  # Conv3d without bias
    return 2 * vocab * h + layers * lm_layer + h + patch + 32 * block + merger


def internvl_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor of the original InternVL2.5-8B release with its shape, from the architecture:
    InternViT-300M-448px (24 layers, width 1024), mlp1 (LayerNorm + 2 Linear on 4 x 1024 pixel-shuffled
    channels), InternLM2-7B (32 layers, width 4096, 32 heads, 8 key/value heads, MLP 14336, vocab 92553)."""
    vh, vi, h, inter, vocab = 1024, 4096, 4096, 14336, 92553
    shapes: dict[str, tuple[int, ...]] = {
        "vision_model.embeddings.class_embedding": (1, 1, vh),
        "vision_model.embeddings.position_embedding": (1, 1025, vh),
        "vision_model.embeddings.patch_embedding.weight": (vh, 3, 14, 14),
        "vision_model.embeddings.patch_embedding.bias": (vh,),
        "mlp1.0.weight": (4 * vh,), "mlp1.0.bias": (4 * vh,),
        "mlp1.1.weight": (h, 4 * vh), "mlp1.1.bias": (h,),
        "mlp1.3.weight": (h, h), "mlp1.3.bias": (h,),
        "language_model.model.tok_embeddings.weight": (vocab, h),
        "language_model.model.norm.weight": (h,),
        "language_model.output.weight": (vocab, h),
    }
    for i in range(24):
        p = f"vision_model.encoder.layers.{i}."
        shapes.update({p + "attn.qkv.weight": (3 * vh, vh), p + "attn.qkv.bias": (3 * vh,),
                       p + "attn.proj.weight": (vh, vh), p + "attn.proj.bias": (vh,),
                       p + "mlp.fc1.weight": (vi, vh), p + "mlp.fc1.bias": (vi,),
                       p + "mlp.fc2.weight": (vh, vi), p + "mlp.fc2.bias": (vh,),
                       p + "ls1": (vh,), p + "ls2": (vh,)})
        shapes.update({p + f"{n}.{k}": (vh,) for n in ("norm1", "norm2") for k in ("weight", "bias")})
    for i in range(32):
        p = f"language_model.model.layers.{i}."
        shapes.update({p + "attention.wqkv.weight": ((32 + 2 * 8) * 128, h), p + "attention.wo.weight": (h, h),
                       p + "feed_forward.w1.weight": (inter, h), p + "feed_forward.w3.weight": (inter, h),
                       p + "feed_forward.w2.weight": (h, inter),
                       p + "attention_norm.weight": (h,), p + "ffn_norm.weight": (h,)})
    return shapes


def test_qwen2_5_vl_7b_has_the_release_parameter_count():
    assert qwen_by_hand() == 8_292_166_656
    assert _count(_meta_model("Qwen/Qwen2.5-VL-7B-Instruct")) == 8_292_166_656


def test_internvl2_5_8b_has_the_release_parameter_count():
    shapes = internvl_shapes()
    by_hand = sum(torch.Size(s).numel() for s in shapes.values())
    assert by_hand == 8_075_365_376 == INTERNVL_INDEX_TOTAL_SIZE // 2
    assert _count(_meta_model("OpenGVLab/InternVL2_5-8B")) == 8_075_365_376


def test_internvl_names_are_those_of_the_public_index():
    names = sorted(internvl_shapes())
    assert len(names) == 573
    assert hashlib.sha256("\n".join(names).encode()).hexdigest() == INTERNVL_INDEX_SHA256


def test_converter_maps_every_tensor_of_the_release_and_fills_every_native_one():
    native = {k: tuple(v.shape) for k, v in _meta_model("OpenGVLab/InternVL2_5-8B").state_dict().items()}
    rules = _rules(num_heads=32, num_kv_heads=8, head_dim=128)
    produced: dict[str, tuple[int, ...]] = {}
    for name, shape in internvl_shapes().items():
        for new, tensor in convert_tensor(name, torch.empty(shape, device="meta"), rules):
            assert new not in produced, f"{name} -> {new}: produced twice"
            assert native.get(new) == tuple(tensor.shape), f"{name} -> {new}: {tuple(tensor.shape)}, {native.get(new)}"
            produced[new] = tuple(tensor.shape)
    assert sorted(native) == sorted(produced)  # none left over, none unfilled
    assert len(native) == 573 + 2 * (48 + 32)  # fused qkv (24 vision weights and biases, 32 wqkv) split in three


@pytest.mark.parametrize("name,backbone", [("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl"),
                                           ("checkpoints/InternVL2_5-8B-hf", "internvl"), ("someone/other-7b", None)])
def test_release_names_are_recognised(name, backbone):
    found = release_config(name)
    assert (found[0] if found else None) == backbone
