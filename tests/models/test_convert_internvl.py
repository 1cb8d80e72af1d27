"""`mprm convert-internvl`: a tiny checkpoint written in the ORIGINAL InternVL2.5 key layout
(InternViT + mlp1 + InternLM2 with fused grouped wqkv) is converted through the CLI and loaded with
``InternVLForConditionalGeneration.from_pretrained``. Known answers: the wqkv split on hand-numbered
rows, every tensor's destination, and logits / image features recomputed by independent
implementations of InternLM2 and InternViT that read the original fused weights directly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mprm.cli import main
from mprm.models.convert_internvl import (
    ConversionError,
    _rules,
    convert_internvl,
    convert_tensor,
    convert_tokenizer,
    native_config,
    split_grouped_wqkv,
    split_vision_qkv,
)

VIS = dict(
    architectures=["InternVisionModel"], model_type="intern_vit_6b", hidden_size=32, intermediate_size=64,
    num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14, num_channels=3, qkv_bias=True,
    qk_normalization=False, norm_type="layer_norm", layer_norm_eps=1e-6, hidden_act="gelu",
    initializer_factor=0.1, drop_path_rate=0.0, dropout=0.0, attention_dropout=0.0, use_flash_attn=False,
)
LLM = dict(
    architectures=["InternLM2ForCausalLM"], model_type="internlm2", vocab_size=272, hidden_size=16,
    intermediate_size=40, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_act="silu",
    max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=1000000, rope_scaling={"type": "dynamic", "factor": 2.0},
    bias=False, tie_word_embeddings=False, bos_token_id=256, eos_token_id=257, pad_token_id=257,
)
ORIGINAL = dict(
    architectures=["InternVLChatModel"], model_type="internvl_chat", vision_config=VIS, llm_config=LLM,
    force_image_size=56, downsample_ratio=0.5, select_layer=-1, ps_version="v2", template="internvl2_5",
    dynamic_image_size=True, use_thumbnail=True, min_dynamic_patch=1, max_dynamic_patch=6,
    use_backbone_lora=0, use_llm_lora=0,
)
SPECIALS = ["<s>", "</s>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>"]  # ids 256..262


def _original_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape, mean=0.0):
        return mean + 0.2 * torch.randn(*shape, generator=g)

    sd = {
        "vision_model.embeddings.class_embedding": r(1, 1, 32),
        "vision_model.embeddings.position_embedding": r(1, 17, 32),
        "vision_model.embeddings.patch_embedding.weight": r(32, 3, 14, 14) / 10,
        "vision_model.embeddings.patch_embedding.bias": r(32),
        "mlp1.0.weight": r(128, mean=1.0), "mlp1.0.bias": r(128),
        "mlp1.1.weight": r(16, 128), "mlp1.1.bias": r(16),
        "mlp1.3.weight": r(16, 16), "mlp1.3.bias": r(16),
        "language_model.model.tok_embeddings.weight": r(272, 16),
        "language_model.model.norm.weight": r(16, mean=1.0),
        "language_model.output.weight": r(272, 16),
        # old releases stored the rotary buffer; the converter drops it
        "language_model.model.layers.0.attention.rotary_emb.inv_freq": torch.ones(2),
    }
    for i in range(2):
        v = f"vision_model.encoder.layers.{i}."
        sd.update({
            v + "attn.qkv.weight": r(96, 32), v + "attn.qkv.bias": r(96),
            v + "attn.proj.weight": r(32, 32), v + "attn.proj.bias": r(32),
            v + "norm1.weight": r(32, mean=1.0), v + "norm1.bias": r(32),
            v + "norm2.weight": r(32, mean=1.0), v + "norm2.bias": r(32),
            v + "ls1": r(32, mean=0.5), v + "ls2": r(32, mean=0.5),
            v + "mlp.fc1.weight": r(64, 32), v + "mlp.fc1.bias": r(64),
            v + "mlp.fc2.weight": r(32, 64), v + "mlp.fc2.bias": r(32),
        })
        t = f"language_model.model.layers.{i}."
        sd.update({
            t + "attention.wqkv.weight": r(32, 16), t + "attention.wo.weight": r(16, 16),
            t + "feed_forward.w1.weight": r(40, 16), t + "feed_forward.w3.weight": r(40, 16),
            t + "feed_forward.w2.weight": r(16, 40),
            t + "attention_norm.weight": r(16, mean=1.0), t + "ffn_norm.weight": r(16, mean=1.0),
        })
    return sd


def _write_original(folder: Path, sd: dict[str, torch.Tensor], config: dict = ORIGINAL) -> None:
    """Two safetensors shards + index, config.json and an InternLM2-style tokenizer_config.json whose
    added_tokens_decoder adds the three image tokens past the base vocabulary (as the release does)."""
    from safetensors.torch import save_file
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Tokenizer

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    shards = {"model-00001-of-00002.safetensors": {}, "model-00002-of-00002.safetensors": {}}
    for key, tensor in sd.items():
        name = "model-00002-of-00002.safetensors" if key.startswith("language_model") else "model-00001-of-00002.safetensors"
        shards[name][key] = tensor
    weight_map = {}
    for name, tensors in shards.items():
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))

    vocab = {c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, bos_token=None, eos_token=None, pad_token=None)
    tok.add_tokens(SPECIALS[:4], special_tokens=True)
    tok.save_pretrained(folder)
    added = {str(256 + i): {"content": t, "special": True, "normalized": False, "lstrip": False, "rstrip": False,
                            "single_word": False} for i, t in enumerate(SPECIALS)}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "InternLM2Tokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
        "bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>", "added_tokens_decoder": added,
    }))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("convert_internvl")
    sd = _original_state_dict()
    _write_original(root / "original", sd)
    assert main(["convert-internvl", "--input", str(root / "original"), "--output", str(root / "native")]) == 0
    from transformers import InternVLForConditionalGeneration

    model, info = InternVLForConditionalGeneration.from_pretrained(
        root / "native", dtype=torch.float32, output_loading_info=True
    )
    return root, sd, model.eval(), info


def test_wqkv_split_known_answer():
    # hidden 3, 4 query heads, 2 kv heads, head_dim 2: 2 groups of [q, q, k, v] heads = 16 rows.
    # Row r holds (10r, 10r+1, 10r+2), so every row is identifiable.
    wqkv = torch.tensor([[10 * r, 10 * r + 1, 10 * r + 2] for r in range(16)], dtype=torch.float32)
    q, k, v = split_grouped_wqkv(wqkv, num_heads=4, num_kv_heads=2, head_dim=2)

    def rows(*rs):
        return torch.tensor([[10 * r, 10 * r + 1, 10 * r + 2] for r in rs], dtype=torch.float32)

    # group 0 = rows 0-7: q heads 0,1 (rows 0-3), k head 0 (4,5), v head 0 (6,7); group 1 = rows 8-15
    assert torch.equal(q, rows(0, 1, 2, 3, 8, 9, 10, 11))
    assert torch.equal(k, rows(4, 5, 12, 13))
    assert torch.equal(v, rows(6, 7, 14, 15))
    qb, kb, vb = split_grouped_wqkv(torch.arange(16.0), num_heads=4, num_kv_heads=2, head_dim=2)
    assert qb.tolist() == [0, 1, 2, 3, 8, 9, 10, 11] and kb.tolist() == [4, 5, 12, 13] and vb.tolist() == [6, 7, 14, 15]
    with pytest.raises(ConversionError, match="15 rows"):
        split_grouped_wqkv(torch.zeros(15, 3), num_heads=4, num_kv_heads=2, head_dim=2)


def test_vision_qkv_split_known_answer():
    q, k, v = split_vision_qkv(torch.arange(6.0))
    assert q.tolist() == [0, 1] and k.tolist() == [2, 3] and v.tolist() == [4, 5]


@pytest.mark.slow
def test_every_original_tensor_lands_in_its_native_parameter(converted):
    _, sd, model, info = converted
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    native = model.state_dict()
    renames = {
        "vision_model.embeddings.class_embedding": "model.vision_tower.embeddings.cls_token",
        "vision_model.embeddings.position_embedding": "model.vision_tower.embeddings.position_embeddings",
        "vision_model.embeddings.patch_embedding.weight": "model.vision_tower.embeddings.patch_embeddings.projection.weight",
        "vision_model.embeddings.patch_embedding.bias": "model.vision_tower.embeddings.patch_embeddings.projection.bias",
        "mlp1.0.weight": "model.multi_modal_projector.layer_norm.weight",
        "mlp1.0.bias": "model.multi_modal_projector.layer_norm.bias",
        "mlp1.1.weight": "model.multi_modal_projector.linear_1.weight",
        "mlp1.1.bias": "model.multi_modal_projector.linear_1.bias",
        "mlp1.3.weight": "model.multi_modal_projector.linear_2.weight",
        "mlp1.3.bias": "model.multi_modal_projector.linear_2.bias",
        "language_model.model.tok_embeddings.weight": "model.language_model.embed_tokens.weight",
        "language_model.model.norm.weight": "model.language_model.norm.weight",
        "language_model.output.weight": "lm_head.weight",
    }
    for i in range(2):
        o, n = f"vision_model.encoder.layers.{i}.", f"model.vision_tower.encoder.layer.{i}."
        for a, b in [("attn.proj", "attention.projection_layer"), ("norm1", "layernorm_before"),
                     ("norm2", "layernorm_after"), ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")]:
            renames[o + a + ".weight"], renames[o + a + ".bias"] = n + b + ".weight", n + b + ".bias"
        renames[o + "ls1"], renames[o + "ls2"] = n + "lambda_1", n + "lambda_2"
        o, n = f"language_model.model.layers.{i}.", f"model.language_model.layers.{i}."
        for a, b in [("attention.wo", "self_attn.o_proj"), ("feed_forward.w1", "mlp.gate_proj"),
                     ("feed_forward.w3", "mlp.up_proj"), ("feed_forward.w2", "mlp.down_proj"),
                     ("attention_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm")]:
            renames[o + a + ".weight"] = n + b + ".weight"
        # vision qkv: 96 rows = q (0-31), k (32-63), v (64-95)
        for part, (lo, hi) in zip("qkv", [(0, 32), (32, 64), (64, 96)], strict=True):
            for kind in ("weight", "bias"):
                got = native[f"model.vision_tower.encoder.layer.{i}.attention.{part}_proj.{kind}"]
                assert torch.equal(got, sd[f"vision_model.encoder.layers.{i}.attn.qkv.{kind}"][lo:hi])
        # text wqkv: head_dim 4, groups of [q, q, k, v] heads: q rows 0-7 and 16-23, k 8-11 and 24-27, v 12-15 and 28-31
        wqkv = sd[f"language_model.model.layers.{i}.attention.wqkv.weight"]
        expect = {"q": [*range(0, 8), *range(16, 24)], "k": [*range(8, 12), *range(24, 28)], "v": [*range(12, 16), *range(28, 32)]}
        for part, idx in expect.items():
            assert torch.equal(native[f"model.language_model.layers.{i}.self_attn.{part}_proj.weight"], wqkv[idx])
    for orig, name in renames.items():
        assert torch.equal(native[name], sd[orig]), (orig, name)
    covered = set(renames.values()) | {k for k in native if any(f".{p}_proj." in k for p in "qkv")}
    assert covered == set(native)


def _rms(x, w, eps):
    return w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def _internlm2_reference(sd: dict[str, torch.Tensor], ids: list[int]) -> torch.Tensor:
    """InternLM2 forward straight from the fused weights: wqkv read as 2 kv groups of
    [q, q, k, v] heads (head_dim 4), rotate-half RoPE with theta 1e6, causal attention, SwiGLU."""
    hd, groups, eps = 4, 2, 1e-5
    x = sd["language_model.model.tok_embeddings.weight"][ids]
    t = len(ids)
    inv = 1.0 / (1e6 ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.arange(t).float()[:, None] * inv[None]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()

    def rope(a):
        return a * cos + torch.cat([-a[:, hd // 2:], a[:, : hd // 2]], -1) * sin

    causal = torch.triu(torch.full((t, t), float("-inf")), 1)
    for i in range(2):
        p = f"language_model.model.layers.{i}."
        qkv = _rms(x, sd[p + "attention_norm.weight"], eps) @ sd[p + "attention.wqkv.weight"].T
        heads = []
        for g in range(2):
            base = g * (groups + 2) * hd
            k = rope(qkv[:, base + groups * hd: base + (groups + 1) * hd])
            v = qkv[:, base + (groups + 1) * hd: base + (groups + 2) * hd]
            for j in range(groups):
                q = rope(qkv[:, base + j * hd: base + (j + 1) * hd])
                heads.append(torch.softmax(q @ k.T / math.sqrt(hd) + causal, -1) @ v)
        x = x + torch.cat(heads, -1) @ sd[p + "attention.wo.weight"].T
        h = _rms(x, sd[p + "ffn_norm.weight"], eps)
        x = x + (F.silu(h @ sd[p + "feed_forward.w1.weight"].T) * (h @ sd[p + "feed_forward.w3.weight"].T)) @ sd[p + "feed_forward.w2.weight"].T
    return _rms(x, sd["language_model.model.norm.weight"], eps) @ sd["language_model.output.weight"].T


@pytest.mark.slow
def test_text_logits_equal_an_independent_internlm2(converted):
    _, sd, model, _ = converted
    ids = [72, 101, 108, 108, 111, 258, 33]
    expected = _internlm2_reference(sd, ids)
    with torch.no_grad():
        got = model(input_ids=torch.tensor([ids])).logits[0]
    assert got.shape == (7, 272)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def _internvit_reference(sd: dict[str, torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
    """InternViT (fused qkv, layer scale) + pixel shuffle v2 + mlp1, from the original weights."""
    e = "vision_model.embeddings."
    x = F.conv2d(pixels, sd[e + "patch_embedding.weight"], sd[e + "patch_embedding.bias"], stride=14)
    x = x.flatten(2).transpose(1, 2)
    b, n = x.shape[0], x.shape[1] + 1
    x = torch.cat([sd[e + "class_embedding"].expand(b, 1, 32), x], 1) + sd[e + "position_embedding"]
    for i in range(2):
        p = f"vision_model.encoder.layers.{i}."
        h = F.layer_norm(x, (32,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], 1e-6)
        qkv = (h @ sd[p + "attn.qkv.weight"].T + sd[p + "attn.qkv.bias"]).reshape(b, n, 3, 2, 16).permute(2, 0, 3, 1, 4)
        att = torch.softmax(qkv[0] @ qkv[1].transpose(-1, -2) / 4.0, -1) @ qkv[2]
        att = att.transpose(1, 2).reshape(b, n, 32) @ sd[p + "attn.proj.weight"].T + sd[p + "attn.proj.bias"]
        x = x + att * sd[p + "ls1"]
        h = F.layer_norm(x, (32,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], 1e-6)
        mlp = F.gelu(h @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"]) @ sd[p + "mlp.fc2.weight"].T + sd[p + "mlp.fc2.bias"]
        x = x + mlp * sd[p + "ls2"]
    f = x[:, 1:].reshape(b, 4, 4, 32)
    f = f.reshape(b, 4, 2, 64).permute(0, 2, 1, 3).reshape(b, 2, 2, 128).permute(0, 2, 1, 3)
    f = f.reshape(b, 4, 128)
    f = F.layer_norm(f, (128,), sd["mlp1.0.weight"], sd["mlp1.0.bias"], 1e-5)
    f = F.gelu(f @ sd["mlp1.1.weight"].T + sd["mlp1.1.bias"])
    return f @ sd["mlp1.3.weight"].T + sd["mlp1.3.bias"]


@pytest.mark.slow
def test_image_features_equal_an_independent_internvit(converted):
    _, sd, model, _ = converted
    pixels = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model.model.get_image_features(pixel_values=pixels).pooler_output
    assert got.shape == (2, 4, 16)
    torch.testing.assert_close(got, _internvit_reference(sd, pixels), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_config_tokenizer_and_processor_files(converted):
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer

    root, _, _, _ = converted
    native = root / "native"
    cfg = AutoConfig.from_pretrained(native)
    assert (cfg.model_type, cfg.text_config.model_type, cfg.vision_config.model_type) == ("internvl", "llama", "internvl_vision")
    assert cfg.image_token_id == 262 and cfg.image_seq_length == 4 and cfg.downsample_ratio == 0.5
    assert cfg.tie_word_embeddings is False and cfg.text_config.tie_word_embeddings is False
    assert cfg.text_config.rope_parameters == {"rope_type": "dynamic", "rope_theta": 1e6, "factor": 2.0}
    assert (cfg.text_config.num_key_value_heads, cfg.text_config.head_dim, cfg.text_config.rms_norm_eps) == (2, 4, 1e-5)
    assert json.loads((native / "processor_config.json").read_text())["image_seq_length"] == 4
    image_processor = AutoImageProcessor.from_pretrained(native)
    assert list(image_processor.image_mean) == [0.485, 0.456, 0.406] and image_processor.max_patches == 6
    assert image_processor.size.height == 56

    tok = AutoTokenizer.from_pretrained(native)
    assert len(tok) == 263
    assert tok.convert_tokens_to_ids(SPECIALS) == list(range(256, 263))
    assert (tok.start_image_token, tok.end_image_token, tok.context_image_token) == ("<img>", "</img>", "<IMG_CONTEXT>")
    # no <video> token in this vocabulary: the video token reuses the context token instead of adding an id
    assert tok.video_token == "<IMG_CONTEXT>"
    # InternLM2Tokenizer prepends <s> (256) like the release; the image token stays one id
    assert tok("a<IMG_CONTEXT>b").input_ids == [256, 64, 262, 65]
    assert tok("a", add_special_tokens=False).input_ids == [64]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\n你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。<|im_end|>\n"
        "<|im_start|>user\n<IMG_CONTEXT>\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    own_system = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    assert tok.apply_chat_template(own_system, tokenize=False) == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n"


@pytest.mark.slow
def test_dtype_cast_and_existing_output_refused(converted, tmp_path):
    from safetensors import safe_open

    root, _, _, _ = converted
    out = convert_internvl(root / "original", tmp_path / "bf16", dtype=torch.bfloat16)
    with safe_open(str(out / "model-00002-of-00002.safetensors"), framework="pt") as f:
        assert f.get_tensor("lm_head.weight").dtype == torch.bfloat16
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    # an existing output is a user error: one line, exit 2 (mprm.errors)
    assert main(["convert-internvl", "--input", str(root / "original"), "--output", str(out)]) == 2


def test_unconvertible_inputs_raise_with_the_cause():
    rules = _rules(4, 2, 4)
    with pytest.raises(ConversionError, match="vision_model.encoder.layers.0.attn.qkv.lora_A.weight"):
        convert_tensor("vision_model.encoder.layers.0.attn.qkv.lora_A.weight", torch.zeros(2, 2), rules)
    assert convert_tensor("language_model.model.layers.3.attention.rotary_emb.inv_freq", torch.zeros(2), rules) == []
    bad = {**ORIGINAL, "ps_version": "v1", "select_layer": -4,
           "llm_config": {**LLM, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}}
    with pytest.raises(ConversionError) as err:
        native_config(bad, image_token_id=262)
    for needle in ("ps_version = 'v1'", "select_layer = -4", "'Qwen2ForCausalLM'"):
        assert needle in str(err.value)


def test_sentencepiece_tokenizer_converts_without_sentencepiece(tmp_path):
    """A hand-built SentencePiece BPE model (the release ships tokenizer.model, no tokenizer.json):
    pieces 0-2 <unk> <s> </s>, 3-258 byte pieces <0x00>..<0xFF>, 259 "▁", 260 "a", 261 "b",
    262 "ab" (score -1), 263 "▁ab" (score -2); the image tokens are added at 264-266."""
    from transformers import AutoTokenizer
    from transformers.convert_slow_tokenizer import import_protobuf

    pb = import_protobuf()
    model = pb.ModelProto()
    model.trainer_spec.model_type = 2  # BPE
    model.trainer_spec.byte_fallback = True
    model.trainer_spec.unk_id, model.trainer_spec.bos_id, model.trainer_spec.eos_id = 0, 1, 2
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = True
    model.normalizer_spec.escape_whitespaces = True
    model.normalizer_spec.remove_extra_whitespaces = False
    Piece = pb.ModelProto.SentencePiece
    pieces = [("<unk>", 0.0, Piece.UNKNOWN), ("<s>", 0.0, Piece.CONTROL), ("</s>", 0.0, Piece.CONTROL)]
    pieces += [(f"<0x{b:02X}>", 0.0, Piece.BYTE) for b in range(256)]
    pieces += [("\u2581", -3.0, Piece.NORMAL), ("a", -4.0, Piece.NORMAL), ("b", -5.0, Piece.NORMAL),
               ("ab", -1.0, Piece.NORMAL), ("\u2581ab", -2.0, Piece.NORMAL)]
    for text, score, kind in pieces:
        model.pieces.add(piece=text, score=score, type=kind)
    src = tmp_path / "release"
    src.mkdir()
    (src / "tokenizer.model").write_bytes(model.SerializeToString())
    added = {str(264 + i): {"content": t, "special": True} for i, t in enumerate(["<img>", "</img>", "<IMG_CONTEXT>"])}
    (src / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "InternLM2Tokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "added_tokens_decoder": added}))
    convert_tokenizer(src, tmp_path / "native", original=ORIGINAL)
    tok = AutoTokenizer.from_pretrained(tmp_path / "native")
    assert len(tok) == 267
    # "ab ab" -> "▁ab▁ab": a+b merge first (score -1), then ▁+ab (-2)
    assert tok("ab ab", add_special_tokens=False).input_ids == [263, 263]
    # "c" is not a piece: byte fallback to <0x63> = 3 + 0x63 = 102
    assert tok("abc", add_special_tokens=False).input_ids == [263, 102]
    assert tok("ab<IMG_CONTEXT>", add_special_tokens=False).input_ids == [263, 266]
    assert tok.decode([263, 102]) == "abc"
    assert tok("ab").input_ids == [1, 263]
