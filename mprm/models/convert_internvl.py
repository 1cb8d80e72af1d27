"""Convert an original InternVL2.5 release to the native transformers InternVL layout.

InternVL2.5-8B (METHOD.md 6: one of the paper's two backbones) is published only in the
remote-code layout: an InternViT vision tower, the ``mlp1`` projector and an InternLM2 language
model whose attention uses one fused, grouped ``wqkv`` projection. mprm loads the native
``InternVLForConditionalGeneration`` (the "-hf" layout) with a Llama-shaped text model, so this
module rewrites the config, renames every weight and splits the fused projections. The mapping
table and what was verified are in docs/convert_internvl.md.

Weights are converted one tensor at a time, shard by shard, so an 8B checkpoint never has to be
materialised as a model; the produced key set and shapes are checked against the native model
built on the ``meta`` device before anything is written.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from mprm.errors import UserError

IMAGE_START_TOKEN = "<img>"
IMAGE_END_TOKEN = "</img>"
IMAGE_CONTEXT_TOKEN = "<IMG_CONTEXT>"
VIDEO_TOKEN = "<video>"
# The system message of the release's "internvl2_5" conversation template (config.json "template").
SYSTEM_MESSAGES = {
    "internvl2_5": "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConversionError(UserError):
    """An original checkpoint that cannot be converted faithfully; the message names the cause."""


Splitter = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]


def split_grouped_wqkv(
    wqkv: torch.Tensor, *, num_heads: int, num_kv_heads: int, head_dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split InternLM2's fused ``wqkv`` weight (or bias) into q, k and v projections.

    The rows are ``num_kv_heads`` groups; each group holds ``num_heads // num_kv_heads`` query
    heads, then that group's key head, then its value head, each ``head_dim`` rows. Query heads come
    out in order (group 0's heads first), which is the head order the native GQA attention expects
    (query head ``i`` reads key/value head ``i // (num_heads // num_kv_heads)``).
    """
    if num_heads % num_kv_heads:
        raise ConversionError(f"num_attention_heads={num_heads} is not a multiple of num_key_value_heads={num_kv_heads}")
    per_group = num_heads // num_kv_heads
    rows = (num_heads + 2 * num_kv_heads) * head_dim
    if wqkv.shape[0] != rows:
        raise ConversionError(
            f"wqkv has {wqkv.shape[0]} rows, expected (num_heads {num_heads} + 2 * num_kv_heads "
            f"{num_kv_heads}) * head_dim {head_dim} = {rows}"
        )
    rest = tuple(wqkv.shape[1:])
    grouped = wqkv.reshape(num_kv_heads, per_group + 2, head_dim, *rest)
    q = grouped[:, :per_group].reshape(num_heads * head_dim, *rest)
    k = grouped[:, per_group].reshape(num_kv_heads * head_dim, *rest)
    v = grouped[:, per_group + 1].reshape(num_kv_heads * head_dim, *rest)
    return q.contiguous(), k.contiguous(), v.contiguous()


def split_vision_qkv(qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split InternViT's fused ``attn.qkv`` (rows: all q heads, all k heads, all v heads)."""
    if qkv.shape[0] % 3:
        raise ConversionError(f"vision attn.qkv has {qkv.shape[0]} rows, not a multiple of 3")
    q, k, v = qkv.chunk(3, dim=0)
    return q.contiguous(), k.contiguous(), v.contiguous()


def _rules(num_heads: int, num_kv_heads: int, head_dim: int) -> list[tuple[re.Pattern, tuple[str, ...], Splitter | None]]:
    """(original-key pattern, native-key templates, splitter); an empty template list drops the key."""

    def wqkv(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return split_grouped_wqkv(t, num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim)

    vis = "model.vision_tower."
    vl = r"vision_model\.encoder\.layers\.(\d+)\."
    nvl = vis + r"encoder.layer.\1."
    ll = r"language_model\.model\.layers\.(\d+)\."
    nll = r"model.language_model.layers.\1."
    table: list[tuple[str, tuple[str, ...], Splitter | None]] = [
        (r"vision_model\.embeddings\.class_embedding", (vis + "embeddings.cls_token",), None),
        (r"vision_model\.embeddings\.position_embedding", (vis + "embeddings.position_embeddings",), None),
        (r"vision_model\.embeddings\.patch_embedding\.(weight|bias)", (vis + r"embeddings.patch_embeddings.projection.\1",), None),
        (vl + r"attn\.qkv\.(weight|bias)", tuple(nvl + f"attention.{p}_proj." + r"\2" for p in "qkv"), split_vision_qkv),
        (vl + r"attn\.proj\.(weight|bias)", (nvl + r"attention.projection_layer.\2",), None),
        (vl + r"attn\.(q_norm|k_norm)\.weight", (nvl + r"attention.\2.weight",), None),
        (vl + r"norm1\.(weight|bias)", (nvl + r"layernorm_before.\2",), None),
        (vl + r"norm2\.(weight|bias)", (nvl + r"layernorm_after.\2",), None),
        (vl + r"ls1", (nvl + "lambda_1",), None),
        (vl + r"ls2", (nvl + "lambda_2",), None),
        (vl + r"mlp\.(fc1|fc2)\.(weight|bias)", (nvl + r"mlp.\2.\3",), None),
        (r"mlp1\.0\.(weight|bias)", (r"model.multi_modal_projector.layer_norm.\1",), None),
        (r"mlp1\.1\.(weight|bias)", (r"model.multi_modal_projector.linear_1.\1",), None),
        (r"mlp1\.3\.(weight|bias)", (r"model.multi_modal_projector.linear_2.\1",), None),
        (r"language_model\.model\.tok_embeddings\.weight", ("model.language_model.embed_tokens.weight",), None),
        (ll + r"attention\.wqkv\.(weight|bias)", tuple(nll + f"self_attn.{p}_proj." + r"\2" for p in "qkv"), wqkv),
        (ll + r"attention\.wo\.(weight|bias)", (nll + r"self_attn.o_proj.\2",), None),
        (ll + r"feed_forward\.w1\.weight", (nll + "mlp.gate_proj.weight",), None),
        (ll + r"feed_forward\.w3\.weight", (nll + "mlp.up_proj.weight",), None),
        (ll + r"feed_forward\.w2\.weight", (nll + "mlp.down_proj.weight",), None),
        (ll + r"attention_norm\.weight", (nll + "input_layernorm.weight",), None),
        (ll + r"ffn_norm\.weight", (nll + "post_attention_layernorm.weight",), None),
        (r"language_model\.model\.norm\.weight", ("model.language_model.norm.weight",), None),
        (r"language_model\.output\.weight", ("lm_head.weight",), None),
        # rotary inverse frequencies are recomputed from the config; old checkpoints saved them
        (r".*rotary_emb\.inv_freq", (), None),
    ]
    return [(re.compile(p), t, s) for p, t, s in table]


def convert_tensor(
    key: str, tensor: torch.Tensor, rules: list[tuple[re.Pattern, tuple[str, ...], Splitter | None]]
) -> list[tuple[str, torch.Tensor]]:
    """The native (key, tensor) pairs for one original tensor; raises on a key no rule covers."""
    for pattern, templates, splitter in rules:
        match = pattern.fullmatch(key)
        if match is None:
            continue
        names = [match.expand(t) for t in templates]
        parts = splitter(tensor) if splitter is not None else (tensor,) * len(names)
        return list(zip(names, parts, strict=True))
    raise ConversionError(
        f"original weight {key!r} has no native counterpart (LoRA or an unsupported module?); "
        "merge adapters into the base weights before converting"
    )


def _rope_parameters(llm: dict, problems: list[str]) -> dict:
    params: dict = {"rope_type": "default", "rope_theta": float(llm.get("rope_theta", 10000.0))}
    scaling = llm.get("rope_scaling")
    if scaling:
        kind = scaling.get("type", scaling.get("rope_type"))
        if kind not in ("dynamic", "linear"):
            problems.append(f"config.json: llm_config.rope_scaling.type = {kind!r}; only 'dynamic' and 'linear' map to transformers")
        else:
            params.update(rope_type=kind, factor=float(scaling["factor"]))
    return params


def native_config(original: dict, *, image_token_id: int, dtype: torch.dtype | None = None):
    """The native ``InternVLConfig`` (InternVLVisionConfig + LlamaConfig) for an original
    ``InternVLChatConfig`` dict. All problems are collected and raised together."""
    from transformers import InternVLConfig, InternVLVisionConfig, LlamaConfig

    problems: list[str] = []
    vis = original.get("vision_config") or {}
    llm = original.get("llm_config") or {}
    if not vis or not llm:
        raise ConversionError("config.json: expected an InternVLChatConfig with 'vision_config' and 'llm_config'")
    arch = (llm.get("architectures") or [llm.get("model_type", "?")])[0]
    if arch != "InternLM2ForCausalLM" and llm.get("model_type") != "internlm2":
        problems.append(f"config.json: llm_config.architectures[0] = {arch!r}; only InternLM2 language models are supported")
    if original.get("ps_version", "v2") != "v2":
        problems.append(f"config.json: ps_version = {original['ps_version']!r}; the native pixel shuffle is 'v2'")
    if original.get("select_layer", -1) != -1:
        problems.append(f"config.json: select_layer = {original['select_layer']!r}; only -1 (last layer) is supported")
    if original.get("use_backbone_lora") or original.get("use_llm_lora"):
        problems.append("config.json: use_backbone_lora/use_llm_lora set; merge the LoRA weights first")
    for where, cfg, keys in (
        ("vision_config", vis, ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "patch_size")),
        ("llm_config", llm, ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")),
    ):
        problems += [f"config.json: {where} has no {key!r}" for key in keys if key not in cfg]
    eps = vis.get("layer_norm_eps", 1e-6)
    if vis.get("qk_normalization") and eps != 1e-6:
        problems.append(f"config.json: vision_config.layer_norm_eps = {eps}; native q/k norms use 1e-6")
    rope = _rope_parameters(llm, problems)
    if problems:
        raise ConversionError("cannot convert:\n  " + "\n  ".join(problems))
    image_size = original.get("force_image_size") or vis.get("image_size", 448)
    patch, ratio = vis["patch_size"], float(original.get("downsample_ratio", 0.5))
    hidden, heads = llm["hidden_size"], llm["num_attention_heads"]
    image_seq_length = int((image_size // patch) ** 2 * ratio**2)
    vision = InternVLVisionConfig(
        hidden_size=vis["hidden_size"],
        intermediate_size=vis["intermediate_size"],
        num_hidden_layers=vis["num_hidden_layers"],
        num_attention_heads=vis["num_attention_heads"],
        attention_bias=bool(vis.get("qkv_bias", True)),
        use_qk_norm=bool(vis.get("qk_normalization", False)),
        norm_type=vis.get("norm_type", "layer_norm"),
        layer_norm_eps=eps,
        hidden_act=vis.get("hidden_act", "gelu"),
        image_size=image_size,
        patch_size=patch,
        num_channels=vis.get("num_channels", 3),
        layer_scale_init_value=float(vis.get("initializer_factor", 0.1)),
        use_mean_pooling=True,  # InternViT has no final norm: the native layernorm is then Identity
    )
    text = LlamaConfig(
        vocab_size=llm["vocab_size"],
        hidden_size=hidden,
        intermediate_size=llm["intermediate_size"],
        num_hidden_layers=llm["num_hidden_layers"],
        num_attention_heads=heads,
        num_key_value_heads=llm.get("num_key_value_heads", heads),
        head_dim=hidden // heads,
        hidden_act=llm.get("hidden_act", "silu"),
        max_position_embeddings=llm.get("max_position_embeddings", 2048),
        rms_norm_eps=llm.get("rms_norm_eps", 1e-6),
        rope_parameters=rope,
        attention_bias=bool(llm.get("bias", False)),
        mlp_bias=False,
        bos_token_id=llm.get("bos_token_id", 1),
        eos_token_id=llm.get("eos_token_id", 2),
        pad_token_id=llm.get("pad_token_id"),
        tie_word_embeddings=bool(llm.get("tie_word_embeddings", False)),
    )
    config = InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        image_seq_length=image_seq_length,
        downsample_ratio=ratio,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=bool(llm.get("tie_word_embeddings", False)),
    )
    config.architectures = ["InternVLForConditionalGeneration"]
    if dtype is not None:
        config.dtype = dtype
    return config


def _original_shards(input_dir: Path) -> list[Path]:
    index = input_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return [input_dir / name for name in sorted(set(weight_map.values()))]
    single = input_dir / "model.safetensors"
    if single.is_file():
        return [single]
    raise ConversionError(
        f"{input_dir}: no model.safetensors or model.safetensors.index.json "
        "(pytorch_model.bin releases: re-save them as safetensors first)"
    )


def _expected_shapes(config) -> dict[str, tuple[int, ...]]:
    from transformers import InternVLForConditionalGeneration

    with torch.device("meta"):
        model = InternVLForConditionalGeneration._from_config(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _iter_original(shards: list[Path]) -> Iterator[tuple[int, str, torch.Tensor]]:
    from safetensors import safe_open

    for i, shard in enumerate(shards):
        with safe_open(str(shard), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                yield i, key, f.get_tensor(key)


def chat_template(system_message: str | None) -> str:
    """A Jinja chat template in the release's ChatML form: an optional system turn (the template's
    default system message unless the conversation starts with its own), then one
    ``<|im_start|>role\\n...<|im_end|>\\n`` block per message. Each image item becomes
    ``<IMG_CONTEXT>\\n``, which the native processor expands to ``<img>`` + context tokens + ``</img>``."""
    default = json.dumps(system_message or "", ensure_ascii=False)
    return (
        "{%- set default_system = " + default + " -%}"
        "{%- set ns = namespace(start=0) -%}"
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' -}}{%- set ns.start = 1 -%}"
        "{%- elif default_system -%}{{- '<|im_start|>system\\n' + default_system + '<|im_end|>\\n' -}}{%- endif -%}"
        "{%- for message in messages[ns.start:] -%}"
        "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for item in message['content'] -%}"
        "{%- if item['type'] == 'image' -%}{{- '" + IMAGE_CONTEXT_TOKEN + "\\n' -}}"
        "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{{- '<|im_end|>\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
    )


def _backend_from_sentencepiece(path: Path):
    """A ``tokenizers`` backend built from a SentencePiece ``tokenizer.model`` with protobuf only
    (the ``sentencepiece`` package is not needed), following the model's own normalizer settings."""
    from google.protobuf.message import DecodeError
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

    proto = import_protobuf(f"reading {path}").ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except DecodeError as exc:
        raise ConversionError(f"{path}: not a SentencePiece model ({exc})") from exc
    if proto.trainer_spec.model_type == 1:  # unigram
        vocab = [(p.piece, p.score) for p in proto.pieces]
    else:
        vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    backend = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=True)
    if backend is None:
        raise ConversionError(f"{path}: SentencePiece model type {proto.trainer_spec.model_type} cannot be converted")
    return backend


def _load_tokenizer_files(folder: Path):
    """(tokenizers backend, tokenizer_config dict) of an original or already converted tokenizer."""
    from tokenizers import AddedToken, Tokenizer

    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if (folder / "tokenizer.json").is_file():
        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
    elif (folder / "tokenizer.model").is_file():
        backend = _backend_from_sentencepiece(folder / "tokenizer.model")
    else:
        raise ConversionError(
            f"{folder}: neither tokenizer.json nor tokenizer.model; pass --tokenizer DIR with a tokenizer.json"
        )
    for index, entry in sorted((int(i), e) for i, e in config.get("added_tokens_decoder", {}).items()):
        content, special = entry["content"], bool(entry.get("special", True))
        have = backend.token_to_id(content)
        if have is None and index != backend.get_vocab_size(with_added_tokens=True):
            raise ConversionError(
                f"{config_file}: added_tokens_decoder[{index}] = {content!r} is not in the vocabulary and "
                f"would not get id {index} (next free id: {backend.get_vocab_size(with_added_tokens=True)})"
            )
        if have is not None and have != index:
            raise ConversionError(f"{config_file}: added_tokens_decoder[{index}] = {content!r} has id {have} in the vocabulary")
        token = AddedToken(
            content,
            single_word=entry.get("single_word", False),
            lstrip=entry.get("lstrip", False),
            rstrip=entry.get("rstrip", False),
            normalized=entry.get("normalized", not special),
            special=special,
        )
        (backend.add_special_tokens if special else backend.add_tokens)([token])
    return backend, config


def convert_tokenizer(input_dir: Path, output_dir: Path, *, original: dict, tokenizer: str | Path | None = None):
    """Write a native tokenizer (tokenizer.json, chat template, image-token attributes), the image
    processor config and processor_config.json into ``output_dir``; returns the tokenizer."""
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    folder = Path(tokenizer) if tokenizer is not None else input_dir
    backend, config = _load_tokenizer_files(folder)
    for token in (IMAGE_START_TOKEN, IMAGE_END_TOKEN, IMAGE_CONTEXT_TOKEN):
        if backend.token_to_id(token) is None:
            raise ConversionError(f"{folder}: the tokenizer has no {token!r} token, which InternVL's image prompt needs")
    specials = {}
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        value = config.get(name)
        value = value.get("content") if isinstance(value, dict) else value
        if value:
            specials[name] = value
    # InternLM2Tokenizer prepends <s> by default (add_bos_token=True), so the release's prompts start
    # with it; a tokenizer.json from elsewhere keeps its own post-processor.
    bos = specials.get("bos_token")
    default_bos = str(config.get("tokenizer_class", "")).startswith("InternLM2")
    if bos and config.get("add_bos_token", default_bos):
        from tokenizers.processors import TemplateProcessing

        backend.post_processor = TemplateProcessing(
            single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, backend.token_to_id(bos))]
        )
    # Videos are not used by mprm; a tokenizer without a video token reuses the image context token
    # rather than growing the vocabulary past the embedding table (docs/decisions.md D-CONV-2).
    video = VIDEO_TOKEN if backend.token_to_id(VIDEO_TOKEN) is not None else IMAGE_CONTEXT_TOKEN
    template = original.get("template")
    if template not in SYSTEM_MESSAGES:
        print(f"convert-internvl: template {template!r} has no known system message; none is set", file=sys.stderr)
    tok = TokenizersBackend(
        tokenizer_object=backend,
        model_max_length=config.get("model_max_length", original.get("llm_config", {}).get("max_position_embeddings")),
        extra_special_tokens={
            "start_image_token": IMAGE_START_TOKEN,
            "end_image_token": IMAGE_END_TOKEN,
            "context_image_token": IMAGE_CONTEXT_TOKEN,
            "video_token": video,
        },
        **specials,
    )
    tok.chat_template = chat_template(SYSTEM_MESSAGES.get(template))
    tok.save_pretrained(output_dir)

    vis = original.get("vision_config", {})
    size = int(original.get("force_image_size") or vis.get("image_size", 448))
    patch = int(vis.get("patch_size", 14))
    ratio = float(original.get("downsample_ratio", 0.5))
    GotOcr2ImageProcessorPil(
        size={"height": size, "width": size},
        crop_to_patches=bool(original.get("dynamic_image_size", True)),
        min_patches=int(original.get("min_dynamic_patch", 1)),
        max_patches=int(original.get("max_dynamic_patch", 12)),
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        resample=3,  # bicubic, as the release's transform
    ).save_pretrained(output_dir)
    processor = {"image_seq_length": int((size // patch) ** 2 * ratio**2), "processor_class": "InternVLProcessor"}
    (output_dir / "processor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    return tok


def convert_internvl(
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    dtype: torch.dtype | None = None,
    tokenizer: str | Path | None = None,
) -> Path:
    """Convert the original InternVL2.5 checkpoint in ``input_dir`` into ``output_dir``.

    Writes config.json (native ``InternVLConfig``), safetensors shards (one per input shard) with
    their index, the tokenizer (``tokenizer``: a folder whose tokenizer.json replaces the
    original tokenizer), a chat template, preprocessor_config.json and processor_config.json.
    ``dtype`` casts floating-point weights (default: keep the stored dtype). Returns ``output_dir``.
    """
    from safetensors.torch import save_file
    from tqdm import tqdm

    input_dir, output_dir = Path(input_dir), Path(output_dir)
    config_path = input_dir / "config.json"
    if not config_path.is_file():
        raise ConversionError(f"{config_path}: not found")
    try:
        original = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ConversionError(f"{config_path}: line {exc.lineno}: {exc.msg}") from exc
    output_dir.mkdir(parents=True, exist_ok=True)
    if any(output_dir.glob("*.safetensors")):
        raise ConversionError(f"{output_dir}: already holds safetensors files; choose an empty folder")

    tok = convert_tokenizer(input_dir, output_dir, original=original, tokenizer=tokenizer)
    config = native_config(original, image_token_id=tok.convert_tokens_to_ids(IMAGE_CONTEXT_TOKEN), dtype=dtype)
    if len(tok) > config.text_config.vocab_size:
        raise ConversionError(
            f"tokenizer has {len(tok)} tokens but llm_config.vocab_size is {config.text_config.vocab_size}: "
            "ids past the embedding table would crash the model"
        )
    expected = _expected_shapes(config)
    text = config.text_config
    rules = _rules(text.num_attention_heads, text.num_key_value_heads, text.head_dim)

    shards = _original_shards(input_dir)
    n = len(shards)
    names = ["model.safetensors"] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    produced: dict[str, tuple[int, ...]] = {}
    weight_map: dict[str, str] = {}
    stored_dtypes: set[torch.dtype] = set()
    pending: dict[str, torch.Tensor] = {}
    current = 0
    total_bytes = 0
    bar = tqdm(desc="convert-internvl", unit="tensor", file=sys.stderr)
    for shard_index, key, tensor in _iter_original(shards):
        if shard_index != current:
            save_file(pending, str(output_dir / names[current]), metadata={"format": "pt"})
            pending, current = {}, shard_index
        for name, part in convert_tensor(key, tensor, rules):
            if name in produced:
                raise ConversionError(f"{key}: native weight {name!r} produced twice")
            if name not in expected:
                raise ConversionError(f"{key} -> {name}: not a parameter of the native model")
            if tuple(part.shape) != expected[name]:
                raise ConversionError(f"{key} -> {name}: shape {tuple(part.shape)}, native model expects {expected[name]}")
            if part.is_floating_point():
                stored_dtypes.add(part.dtype)
                if dtype is not None:
                    part = part.to(dtype)
            pending[name] = part.contiguous().clone()
            produced[name] = tuple(part.shape)
            weight_map[name] = names[shard_index]
            total_bytes += part.numel() * part.element_size()
        bar.update(1)
    bar.close()
    save_file(pending, str(output_dir / names[current]), metadata={"format": "pt"})

    missing = sorted(set(expected) - set(produced))
    if missing:
        for name in names:
            (output_dir / name).unlink(missing_ok=True)
        raise ConversionError(f"the original checkpoint lacks {len(missing)} native weights, e.g. {missing[:5]}")
    if n > 1:
        index = {"metadata": {"total_size": total_bytes}, "weight_map": dict(sorted(weight_map.items()))}
        (output_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    if dtype is None and len(stored_dtypes) == 1:
        config.dtype = next(iter(stored_dtypes))
    config.save_pretrained(output_dir)
    return output_dir
