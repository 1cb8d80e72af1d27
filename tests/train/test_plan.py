"""The memory plan and the FLOPs formula (mprm.train.plan; docs/training.md, "Memory plan").

Known answers: FLOPs and bytes of small shapes computed by hand; the FLOPs formula equal to
torch's FlopCounterMode on the tiny models (forward, and forward + backward, full and LoRA); the
activation formula equal, byte for byte, to what autograd saves (saved_tensors_hooks) in a bf16
model, with and without padding, and in an fp32 model under bf16 autocast. Every shipped config
fits 80 GB GPUs with the launch file named in its first line.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from PIL import Image

from mprm.config import load_config
from mprm.train.plan import (
    Launch,
    ParamCounts,
    TextDims,
    VisionDims,
    activation_bytes,
    choose_launch,
    launch_from_env,
    launch_in_header,
    plan_memory,
    plan_run,
    preflight,
    read_launch,
    text_dims,
    train_flops,
    vision_dims,
    vision_forward_flops,
)

REPO = Path(__file__).resolve().parents[2]
SMALL = TextDims(hidden=8, layers=1, heads=2, kv_heads=1, head_dim=4, intermediate=16, vocab=10)


# ---- FLOPs -----------------------------------------------------------------------------------
def test_text_flops_by_hand():
    # per token: q 8x8, k 8x4, v 8x4, o 8x8, MLP 3 x 8x16 = 576 weights -> 2 x 576 x 4 tokens = 4608
    f = train_flops(SMALL, None, seq_lens=[4], n_prm=1, images=[], backward=False)
    assert f["lm_linear"] == 4608
    assert f["lm_attention"] == 4 * 2 * 4 * (1 + 2 + 3 + 4)  # causal: 10 query-key pairs
    assert train_flops(SMALL, None, seq_lens=[4], n_prm=1, images=[], attention="full", backward=False)[
        "lm_attention"] == 4 * 2 * 4 * 16
    assert f["head"] == 2 * 8 * 10  # the LM head at one <prm> row
    assert train_flops(SMALL, None, seq_lens=[4], n_prm=1, images=[])["total"] == 3 * (4608 + 320 + 160)
    lora = train_flops(SMALL, None, seq_lens=[4], n_prm=1, images=[], lora_rank=2)
    # frozen weights: forward + input gradient; adapters: rank 2 x (in + out) summed over the 7 targets = 2 x 128
    assert lora["lm_linear"] == 2 * 4608 and lora["lora"] == 3 * 2 * 4 * 2 * 128
    assert lora["total"] == 9216 + 6144 + 3 * 320 + 3 * 160


def test_vision_flops_by_hand():
    v = VisionDims("qwen2_5_vl", hidden=4, layers=2, intermediate=6, mlp_matrices=3, patch_in=10, merge=4,
                   proj_in=16, proj_out=8, window=2, full_layers=(1,))
    # a 4 x 6 patch grid = 2 x 3 merged tokens; windows of 2 x 2 merged: 16 and 8 patches
    f = vision_forward_flops(v, [(1, 4, 6)])
    assert f["vision_attention"] == 4 * 4 * (16**2 + 8**2) + 4 * 4 * 24**2  # one windowed, one full layer
    assert f["vision_linear"] == 24 * 2 * 2 * (4 * 16 + 3 * 4 * 6)
    assert f["vision_patch"] == 2 * 24 * 10 * 4
    assert (f["projector_1"], f["projector_2"]) == (2 * 6 * 16 * 16, 2 * 6 * 16 * 8)


def test_flops_formulas_come_from_the_registries():
    """The head's ``uses_lm_head`` decides whether the LM head counts at the <prm> rows, and the
    backbone entry's ``vision_flops`` whether (and how) the vision tower counts."""
    import dataclasses

    from mprm.models import get_backbone, register_backbone, register_head, unregister_head
    from mprm.models.backbones import unregister_backbone
    from mprm.models.heads import LinearHead
    from mprm.train.plan import PlanError, release_config

    class LinearOverVocab(LinearHead):
        uses_lm_head = True

    register_head("linear_over_vocab_test", LinearOverVocab)
    register_backbone("qwen_copy_test", dataclasses.replace(get_backbone("qwen2_5_vl")))
    register_backbone("qwen_no_flops_test", dataclasses.replace(get_backbone("qwen2_5_vl"), vision_flops=None))
    try:
        kw = dict(seq_lens=[4], n_prm=1, images=[], backward=False)
        assert train_flops(SMALL, None, head="linear_over_vocab_test", **kw)["head"] == 2 * 8 * 10
        assert train_flops(SMALL, None, head="linear", **kw)["head"] == 2 * 8
        _, config = release_config("Qwen2.5-VL-7B-Instruct")
        assert vision_dims("qwen_copy_test", config) == vision_dims("qwen2_5_vl", config)
        for name in ("qwen_no_flops_test", "qwen3_vl", "no_such_backbone"):
            with pytest.raises(PlanError, match=f"no FLOPs formula for the vision tower of backbone '{name}'"):
                vision_dims(name, config)
    finally:
        unregister_head("linear_over_vocab_test")
        unregister_backbone("qwen_copy_test")
        unregister_backbone("qwen_no_flops_test")


def _batch(model, size=(112, 84)):
    f = model.formatter
    image = Image.new("RGB", size, (120, 30, 60))
    ex = {"id": "a", "images": ["x.png"], "question": "what is shown", "steps": ["first step", "then this", "so 3"],
          "labels": [1.0, 0.0, 1.0]}
    enc = f.encode_text(ex, image_sizes=[image.size])
    short = f.encode_text({**ex, "steps": ex["steps"][:2], "labels": [1.0, 0.0]}, image_sizes=[image.size])
    return f.collate([f.attach_images(enc, [image]), f.attach_images(short, [image])])


@pytest.mark.parametrize("backbone,lora,freeze_vision", [("qwen2_5_vl", 0, True), ("qwen2_5_vl", 4, True),
                                                        ("qwen2_5_vl", 0, False), ("internvl", 0, True),
                                                        ("internvl", 4, True)])
def test_flops_equal_torch_flop_counter(backbone, lora, freeze_vision, tiny_qwen_dir, tiny_internvl_dir):
    """Eager attention, so torch counts the attention matmuls too (over the full square of the padded
    width: the formula is given the padded lengths, since the padding is computed as well)."""
    from torch.utils.flop_counter import FlopCounterMode

    from mprm.models import LoraSettings, build_reward_model, get_backbone

    torch.manual_seed(0)
    path, extra = (tiny_qwen_dir, {"max_pixels": 112 * 84}) if backbone == "qwen2_5_vl" else (tiny_internvl_dir, {})
    model = build_reward_model(path, dtype=torch.float32, attn_implementation="eager", freeze_vision=freeze_vision,
                               lora=LoraSettings(r=lora, dropout=0.0) if lora else None, **extra)
    batch = _batch(model)
    images = ([tuple(r) for r in batch["image_grid_thw"].tolist()] if backbone == "qwen2_5_vl"
              else [(batch["pixel_values"].shape[0],)])
    assert get_backbone(backbone).vision_flops.batch_images(batch) == images  # the registry's reading of a batch
    kw = dict(seq_lens=[batch["input_ids"].shape[1]] * 2, n_prm=len(batch["prm_positions"]), images=images,
              lora_rank=lora, attention="full", vision_trainable=not freeze_vision)
    with FlopCounterMode(display=False) as forward:
        out = model(**batch)
    with FlopCounterMode(display=False) as backward:
        out.loss_sum.backward()
    vision, text = vision_dims(backbone, model.config), text_dims(model.config)
    assert forward.get_total_flops() == train_flops(text, vision, backward=False, **kw)["total"]
    assert forward.get_total_flops() + backward.get_total_flops() == train_flops(text, vision, **kw)["total"]


# ---- activations -----------------------------------------------------------------------------
def test_activation_bytes_by_hand():
    # per token and layer: norms 2 x (8h + 4) = 136, q 16, k and v 2 x 2 x 4 = 16, lse 8, output 16, MLP 8 x 16 = 128
    # once per token: cos/sin 2 x 2 x 4 = 16, final norm 4h + 4 + 2h = 52, token id 8
    assert activation_bytes(SMALL, micro=1, seq_len=4, checkpointing=False, padded=False, saved_only=True) == 4 * (
        320 + 76)


@pytest.fixture(scope="module")
def lm_layers():
    from transformers import Qwen2_5_VLConfig

    cfg = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=352, vocab_size=512, bos_token_id=0, eos_token_id=1, pad_token_id=0,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 6, 6]}),
        vision_config=dict(depth=1, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=128),
        image_token_id=500, video_token_id=501, vision_start_token_id=502, vision_end_token_id=503)
    return cfg


@pytest.mark.parametrize("dtype,padded", [(torch.bfloat16, False), (torch.bfloat16, True), (torch.float32, False),
                                          (torch.float32, True)])
def test_activation_bytes_equal_what_autograd_saves(lm_layers, dtype, padded):
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration._from_config(lm_layers, dtype=dtype, attn_implementation="sdpa").train()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in weights:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(2, 500, (2, 96))
    mask = torch.ones_like(ids)
    mask[1, -7:] = 0
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.float32)
    with autocast, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.model.language_model(input_ids=ids, attention_mask=mask if padded else None, use_cache=False)
    expected = activation_bytes(text_dims(lm_layers), micro=2, seq_len=96, checkpointing=False, padded=padded,
                                saved_only=True, stream_bytes=2 if dtype == torch.bfloat16 else 4)
    assert sum(saved.values()) == expected


# ---- memory ----------------------------------------------------------------------------------
COUNTS = ParamCounts(total=1000, trainable=600, by_part={}, largest=100)


def _rows(launch: Launch, w: int) -> dict[str, float]:
    plan = plan_memory(COUNTS, SMALL, launch, micro=1, seq_len=4, checkpointing=True, param_bytes=w, gpu_memory_gb=80)
    return {name: b for name, b, _ in plan.rows}


def test_memory_rows_by_hand():
    zero3 = _rows(Launch("z3", world_size=4, deepspeed=True, zero_stage=3), 2)
    assert (zero3["weights"], zero3["gradients"], zero3["optimizer states"], zero3["optimizer step"]) == (
        500, 300, 1800, 600)
    # gathered: largest tensor 100 + one layer's 576 weights + prefetch 0.9 h^2; two reduce buckets of h^2
    assert zero3["DeepSpeed buffers"] == pytest.approx(2 * (100 + 576 + 0.9 * 64) + 2 * 2 * 64)
    zero2 = _rows(Launch("z2", world_size=4, deepspeed=True, zero_stage=2, zero={"allgather_bucket_size": 1000}), 2)
    assert (zero2["weights"], zero2["gradients"], zero2["optimizer states"], zero2["DeepSpeed buffers"]) == (
        2000, 300, 1800, 2 * 1000 + 2 * 2 * 64)
    off = plan_memory(COUNTS, SMALL, Launch("off", world_size=1, deepspeed=True, zero_stage=3, offload_param=True,
                                            offload_optimizer=True), micro=1, seq_len=4, checkpointing=True,
                      param_bytes=2, gpu_memory_gb=80)
    assert off.host == 2 * 1000 + (4 + 8 + 4) * 600
    assert {n: b for n, b, _ in off.rows}["weights"] == 0
    ddp = _rows(Launch("ddp", world_size=2), 4)  # on GPUs the trainer's AdamW is fused: no step temporary
    assert ddp == {**ddp, "weights": 4000, "gradients": 2400, "optimizer states": 4800, "optimizer step": 0,
                   "DDP buckets": 2400}
    cpu = _rows(Launch("cpu", world_size=2, cpu=True), 4)  # foreach on CPU: a temporary of w T
    assert cpu["optimizer step"] == 2400


def test_fit_verdict_uses_the_reserve():
    plan = plan_memory(COUNTS, SMALL, Launch("one"), micro=1, seq_len=4, checkpointing=True, param_bytes=2,
                       gpu_memory_gb=3.0)
    assert plan.reserve == 3e9 and not plan.fits  # at least 3 GB are kept for CUDA context and fragmentation
    assert plan_memory(COUNTS, SMALL, Launch("one"), micro=1, seq_len=4, checkpointing=True, param_bytes=2,
                       gpu_memory_gb=3.1).fits


# ---- launches and configs ----------------------------------------------------------------------
def test_launch_files_are_read():
    z3 = read_launch(REPO / "launch/zero3.yaml")
    assert (z3.deepspeed, z3.zero_stage, z3.world_size, z3.offload_param) == (True, 3, 4, False)
    off = read_launch(REPO / "launch/zero3_offload.yaml", gpus=1)
    assert (off.world_size, off.offload_param, off.offload_optimizer) == (1, True, True)
    ddp = read_launch(REPO / "launch/ddp.yaml")
    assert (ddp.deepspeed, ddp.world_size) == (False, 4)
    assert read_launch(REPO / "launch/cpu_ddp.yaml").cpu
    env = launch_from_env({"ACCELERATE_USE_DEEPSPEED": "true", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4",
                           "ACCELERATE_DEEPSPEED_CONFIG_FILE": str(REPO / "launch/deepspeed/zero2.json")})
    assert (env.zero_stage, env.world_size, env.machines) == (2, 8, 2)
    assert choose_launch(None, env={}).world_size == 1


SHIPPED = sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("config", SHIPPED)
def test_every_shipped_config_fits_80gb_gpus_with_its_launch(config, tiny_qwen_dir, tiny_internvl_dir):
    header = launch_in_header(REPO / config)
    overrides = []
    if config.startswith("configs/tiny/"):
        assert header is None  # python train.py: one process
        overrides = [f"model.path={tiny_qwen_dir if 'qwen' in config else tiny_internvl_dir}"]
    else:
        assert header is not None and (REPO / header).is_file(), f"{config}: no launch file in its first line"
    cfg = load_config(REPO / config, overrides)
    launch = read_launch(REPO / header) if header else Launch("python train.py")
    plan = plan_run(cfg, launch, gpu_memory_gb=80)
    assert plan.memory.fits, f"{config} with {header}: {plan.memory.total / 1e9:.1f} GB"


def _train_py():
    spec = importlib.util.spec_from_file_location("train_entry", REPO / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_py_plan(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    for key in ("WORLD_SIZE", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(key, raising=False)
    train = _train_py()
    assert train.main(["--config", "configs/internvl2_5_8b/bis10.yaml", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "8,075,365,376 total" in out and "launch/zero3.yaml" in out and "fits on 4 x 80 GB" in out
    assert train.main(["--config", "configs/qwen2_5_vl_7b/full.yaml", "--plan", "--gpus", "1"]) == 3
    out = capsys.readouterr().out
    assert "DOES NOT FIT on 1 x 80 GB" in out and "zero3_offload.yaml --num_processes 1" in out


def test_preflight_refuses_a_run_that_cannot_fit_before_loading():
    cfg = load_config(REPO / "configs/qwen2_5_vl_7b/full.yaml")
    refusal = preflight(cfg, env={}, gpu_memory_gb=80)  # one GPU, no DeepSpeed: fp32 weights and AdamW
    assert refusal and "does not fit" in refusal
    zero3 = {"ACCELERATE_USE_DEEPSPEED": "true", "WORLD_SIZE": "4",
             "ACCELERATE_DEEPSPEED_CONFIG_FILE": str(REPO / "launch/deepspeed/zero3.json")}
    assert preflight(cfg, env=zero3, gpu_memory_gb=80) is None
    assert preflight(cfg, env={"ACCELERATE_USE_CPU": "true"}, gpu_memory_gb=80) is None
