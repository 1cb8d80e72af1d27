"""GPU check: are mprm's real-size training and scoring fast, and do they fit? (docs/training.md, "GPU check")

    python benchmarks/gpu_check.py                                    # one GPU: both backbones, full and LoRA
    python benchmarks/gpu_check.py --models qwen2_5_vl_7b --modes full --seq-len 4096
    accelerate launch --config_file launch/zero3_offload.yaml --num_processes 1 \\
        benchmarks/gpu_check.py --models qwen2_5_vl_7b --modes full  # through DeepSpeed, as train.py would run
    python benchmarks/gpu_check.py --device cpu --tiny                # the same code on tiny models (tests)

Nothing is downloaded. Each backbone is a checkpoint folder written here: the published config.json
numbers of Qwen2.5-VL-7B-Instruct / InternVL2.5-8B (mprm.train.plan), a byte-level stand-in
tokenizer (mprm.models.tiny) and no weights, so ``from_pretrained`` initialises them at random,
directly in bf16 on the GPU. Then the real code runs: ``build_model`` / ``make_optimizer`` /
``micro_batch_loss`` of mprm.train.loop and its ``Strategy`` (accelerate, DeepSpeed when launched
with a DeepSpeed config), on a batch the model's own ``Formatter`` makes from synthetic rollouts of
the paper's shape (one image at the paper's pixel settings, steps each followed by ``<prm>``, text
up to ``--seq-len``); the shipped config of each backbone supplies the rest (gradient
checkpointing, frozen vision tower, AdamW settings). Per backbone and mode (full fine-tuning,
LoRA) it measures tokens/s, samples/s, MFU (model FLOPs of mprm.train.plan.train_flops over the
GPU's dense bf16 peak), peak memory against the estimate of ``train.py --plan``, whether the loss
falls over ``--steps`` optimiser steps on the repeated batch, and the scoring throughput of eval.py's
path (``score_batch``, rollouts/s at batch 16). Prints a table, writes JSON (``--output``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODELS = {"qwen2_5_vl_7b": ("qwen2_5_vl", "configs/qwen2_5_vl_7b/full.yaml", "Qwen2.5-VL-7B-Instruct"),
          "internvl2_5_8b": ("internvl", "configs/internvl2_5_8b/full.yaml", "InternVL2_5-8B")}
#: Dense bf16 peak per GPU (vendor data sheets, without sparsity), by a substring of the device name.
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.4), ("H200", 989.4), ("A100", 312.0))
FILLER = "abcdefghijklmnopqrstuvwxz"  # one token per character in the byte-level stand-in tokenizer
OPTIONAL = {"deepspeed": "needed under accelerate launch with a DeepSpeed config",
            "flash-attn": "only for model.attn_implementation=flash_attention_2"}
INSTALL_HINT = """Install what is missing from a wheel folder copied next to the project (no internet needed):
  on a machine with internet, the same Python version and platform, in the repository:
      pip wheel -w wheels ".[flash]"     # mprm and all its dependencies as wheels (drop [flash] if it will not build)
  (for a torch build other than PyPI's default CUDA one, add that torch wheel to wheels/ first)
  then on this machine:
      pip install --no-index --find-links wheels torch
      pip install --no-index --find-links wheels -e ".[flash]"
"""


# ---- environment ---------------------------------------------------------------------------
def check_environment(device: str, *, deepspeed: bool) -> dict[str, Any]:
    """Versions of what mprm needs (its own requirements, read from its installed metadata) and of
    the optional pieces; exits with the install hint when something required is missing or old."""
    from importlib import metadata

    from packaging.requirements import Requirement

    problems, versions = [], {}
    try:
        reqs = {r.name: r for r in map(Requirement, metadata.requires("mprm") or []) if not r.marker}
    except metadata.PackageNotFoundError:
        reqs, problems = {}, ["mprm itself is not installed (pip install -e . in the repository)"]
    for name in OPTIONAL:
        reqs.setdefault(name, Requirement(name))
    for name, req in reqs.items():
        try:
            versions[name] = have = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
            if name not in OPTIONAL or (name == "deepspeed" and deepspeed):
                problems.append(f"{req} is not installed")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            problems.append(f"{name} {have} does not satisfy {req}")
    import torch

    info: dict[str, Any] = {"python": sys.version.split()[0], "packages": versions, "torch_cuda": torch.version.cuda}
    if device == "cuda":
        if not torch.cuda.is_available():
            problems.append(f"torch {torch.__version__} sees no CUDA device (a CPU build? install the CUDA build)")
        else:
            props = torch.cuda.get_device_properties(0)
            info.update(gpu=props.name, gpu_memory_gb=props.total_memory / 1e9, bf16=torch.cuda.is_bf16_supported(),
                        capability=f"{props.major}.{props.minor}")
            if not info["bf16"]:
                problems.append(f"{props.name} has no bf16 support (needs compute capability 8.0 or newer)")
    gpu = f", {info['gpu']}" if "gpu" in info else ""
    print(f"environment: python {info['python']}, CUDA {info['torch_cuda']}{gpu}")
    print("  " + ", ".join(f"{k} {v or 'missing'}" for k, v in versions.items()))
    for name, why in OPTIONAL.items():
        if versions.get(name) is None:
            print(f"  optional {name}: not installed ({why})")
    if problems:
        print("gpu_check: cannot run:\n  " + "\n  ".join(problems) + "\n" + INSTALL_HINT, end="", file=sys.stderr)
        raise SystemExit(2)
    return info


# ---- the synthetic checkpoint and batch ----------------------------------------------------
def synthetic_checkpoint(backbone: str, release: str, out: Path, *, tiny: bool) -> Path:
    """A checkpoint folder without weights: config.json (the release's numbers, or the tiny ones),
    the stand-in tokenizer and image processor of ``build_tiny``, and one tensor so that
    ``from_pretrained`` accepts the folder and initialises everything else at random."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig

    from mprm.models.tiny import build_tiny
    from mprm.train.plan import release_config

    build_tiny(backbone, out)
    small = AutoConfig.from_pretrained(out)
    for f in out.glob("*.safetensors*"):
        f.unlink()
    config = small
    if not tiny:
        config = release_config(release)[1]
        for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
            if hasattr(small, key) and hasattr(config, key):  # ids of the stand-in tokenizer
                setattr(config, key, getattr(small, key))
        config.dtype = torch.bfloat16
        pre = json.loads((out / "preprocessor_config.json").read_text())
        pre.pop("mprm_image_settings", None)  # the paper's image settings (or the config's) apply
        pre.pop("min_pixels", None), pre.pop("max_pixels", None)
        if backbone == "internvl":
            pre.update(size={"height": 448, "width": 448}, max_patches=6)
        (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    config.save_pretrained(out)
    hidden = config.get_text_config().hidden_size
    save_file({"model.language_model.norm.weight": torch.ones(hidden)}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    return out


def synthetic_examples(formatter: Any, *, n: int, seq_len: int, steps: int, image_size: tuple[int, int],
                       shorter_by: int = 0) -> list[dict[str, Any]]:
    """``n`` rollouts of one image whose steps fill the text to ``seq_len`` tokens (every second
    one ``shorter_by`` tokens shorter, so a micro batch is padded as length-grouped ones are);
    labels alternate 1, 0, ... so the loss has something to learn."""
    base = {"images": ["synthetic.png"], "question": "what does the figure show", "steps": ["a"] * steps,
            "labels": [float((j + 1) % 2) for j in range(steps)]}
    overhead = len(formatter.encode_text(base, image_sizes=[image_size], max_length=10**9)["input_ids"]) - steps
    out = []
    for i in range(n):
        budget = seq_len - (shorter_by if i % 2 else 0) - overhead
        if budget < steps:
            raise SystemExit(f"gpu_check: --seq-len {seq_len} leaves no room for {steps} steps after the prompt "
                             f"and image ({overhead} tokens)")
        sizes = [budget // steps + (1 if j < budget % steps else 0) for j in range(steps)]
        text = [(FILLER * (k // len(FILLER) + 1))[:k] for k in sizes]
        ex = {**base, "id": f"synthetic-{i}", "steps": text}
        got = len(formatter.encode_text(ex, image_sizes=[image_size], max_length=10**9)["input_ids"])
        if got != seq_len - (shorter_by if i % 2 else 0):
            raise RuntimeError(f"synthetic rollout {i} has {got} tokens, not {seq_len - (shorter_by if i % 2 else 0)}:"
                               " the stand-in tokenizer merged the filler text")
        out.append(ex)
    return out


def make_image(size: tuple[int, int], folder: Path) -> Any:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    image.save(folder / "synthetic.png")
    return image


def batch_flops(cfg: Any, model: Any, batch: dict[str, Any]) -> dict[str, float]:
    """mprm.train.plan.train_flops of this batch (sequence lengths, <prm> rows, image grids)."""
    from mprm.models.backbones import get_backbone
    from mprm.train.plan import text_dims, train_flops, vision_dims

    config, backbone = model.config, cfg.model.backbone
    images = get_backbone(backbone).vision_flops.batch_images(batch)
    return train_flops(text_dims(config), vision_dims(backbone, config), images=images, head=cfg.model.head,
                       seq_lens=batch["attention_mask"].sum(1).tolist(), n_prm=int(batch["prm_positions"].numel()),
                       lora_rank=cfg.model.lora_rank, vision_trainable=not cfg.model.freeze_vision)


# ---- the two measurements ------------------------------------------------------------------
def _sync(device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def _free(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gb(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else None


def run_training(cfg: Any, args: argparse.Namespace, device: str, peak: float | None, tmp: Path) -> dict[str, Any]:
    """Train ``args.steps`` optimiser steps of ``args.accumulation`` micro batches on one repeated
    batch through train.py's code; times every micro batch, the last of each step holding the
    optimiser step."""
    import torch

    from mprm.config import accumulation_steps
    from mprm.models import IGNORE_LABEL
    from mprm.train.loop import build_model, make_optimizer, micro_batch_loss
    from mprm.train.plan import GB, launch_from_env, plan_run
    from mprm.train.strategy import Strategy

    strategy = Strategy(mixed_precision="bf16" if device == "cuda" else "no", log_with=["none"])
    world, acc = strategy.world_size, args.accumulation
    gpu_gb = torch.cuda.get_device_properties(strategy.device).total_memory / GB if device == "cuda" else 80.0
    padded = cfg.train.micro_batch_size > 1 and args.pad > 0
    plan = plan_run(cfg, launch_from_env(), gpu_memory_gb=gpu_gb, padded=padded)
    result: dict[str, Any] = {"plan_gb": plan.memory.total / GB, "plan_fits": plan.memory.fits,
                              "plan_rows_gb": {n: b / GB for n, b, _ in plan.memory.rows}, "strategy": strategy.mode}
    if device == "cuda" and not plan.memory.fits and not args.force:
        need = (plan.memory.total + plan.memory.reserve) / GB
        result.update(status="skipped", reason=f"the memory plan needs {need:.1f} GB of {gpu_gb:.0f} GB; run it under "
                      "a launch that fits (train.py --config ... --plan lists them) or pass --force")
        return result
    strategy.configure_batches(micro_batch_size=cfg.train.micro_batch_size, accumulation=acc,
                               max_grad_norm=cfg.train.max_grad_norm)
    _free(device)
    start = _sync(device)
    with contextlib.nullcontext() if strategy.uses_deepspeed else torch.device(strategy.device):
        model = build_model(cfg, strategy)  # random weights, initialised where they live
    build_s = _sync(device) - start
    f = model.formatter
    image = make_image(args.image_size, tmp)
    examples = synthetic_examples(f, n=cfg.train.micro_batch_size, seq_len=args.seq_len, steps=args.rollout_steps,
                                  image_size=image.size, shorter_by=args.pad)
    batch = f.collate([f.attach_images(f.encode_text(ex, image_sizes=[image.size]), [image]) for ex in examples])
    flops = batch_flops(cfg, model, batch)
    optimizer = make_optimizer(model, cfg)
    model, optimizer = strategy.prepare(model, optimizer)
    strategy.set_lr(optimizer, args.lr)
    batch = {k: v.to(strategy.device) for k, v in batch.items()}
    labelled = int((batch["prm_labels"] != IGNORE_LABEL).sum())
    model.train()
    losses, micro_s, step_s = [], [], []
    for step in range(args.steps):
        loss_sum = 0.0
        for slot in range(acc):
            t0 = _sync(device)
            with strategy.micro_step(model):
                out = model(**batch)
                loss = micro_batch_loss(out.loss_sum, out.n_labelled, mode=cfg.train.loss_normalization,
                                        step_total=labelled * acc * world, world_size=world, accumulation=acc)
                strategy.backward(loss)
                if strategy.is_step_boundary:
                    strategy.clip_and_step(model, optimizer, cfg.train.max_grad_norm)
            loss_sum += float(out.loss_sum.detach())
            seconds = _sync(device) - t0
            if step > 0:  # the first step warms up kernels and the allocator
                (step_s if slot == acc - 1 else micro_s).append(seconds)
        losses.append(loss_sum / (labelled * acc))
    micro = statistics.median(micro_s) if micro_s else statistics.median(step_s)
    opt = max(statistics.median(step_s) - micro, 0.0)
    run_acc = accumulation_steps(cfg.train.global_batch_size, cfg.train.micro_batch_size, world)
    tokens = float(batch["attention_mask"].sum())
    per_step = run_acc * micro + opt
    result.update(
        status="ok", build_s=build_s, accumulation_timed=acc, accumulation_of_run=run_acc, micro_batch_s=micro,
        optimizer_step_s=opt, tokens_per_micro_batch=tokens,
        samples_per_s=run_acc * cfg.train.micro_batch_size / per_step,
        tokens_per_s=run_acc * tokens / per_step, micro_samples_per_s=cfg.train.micro_batch_size / micro,
        flops_per_micro_batch=flops["total"], flops_split={k: v for k, v in flops.items() if k != "total"},
        mfu=flops["total"] * run_acc / per_step / peak if peak else None,
        mfu_micro=flops["total"] / micro / peak if peak else None,
        hfu_micro=(flops["total"] + flops["recompute"] * cfg.train.gradient_checkpointing) / micro / peak
        if peak else None,
        peak_memory_gb=_peak_gb(device), losses=losses, loss_falls=losses[-1] < 0.5 * losses[0])
    if result["peak_memory_gb"]:
        result["memory_vs_plan"] = result["peak_memory_gb"] / result["plan_gb"]
    strategy.accelerator.free_memory()
    del model, optimizer, batch, out, loss
    _free(device)
    return result


def run_scoring(cfg: Any, args: argparse.Namespace, device: str, tmp: Path) -> dict[str, Any]:
    """eval.py's path: the model built in its saved dtype on the device, ``score_batch`` at ``--score-batch``."""
    import torch

    from mprm.models import build_reward_model, score_batch

    _free(device)
    m = cfg.model
    with torch.device(device):
        model = build_reward_model(m.path, backbone=m.backbone, head=m.head, separator=m.separator,
                                   max_length=m.max_length, dtype=torch.bfloat16 if device == "cuda" else torch.float32,
                                   attn_implementation=m.attn_implementation, max_tiles=m.max_tiles,
                                   min_pixels=m.min_pixels, max_pixels=m.max_pixels).eval()
    image = make_image(args.image_size, tmp)
    examples = synthetic_examples(model.formatter, n=args.score_rollouts, seq_len=args.seq_len,
                                  steps=args.rollout_steps, image_size=image.size)
    score_batch(model, examples[:args.score_batch], image_root=tmp, batch_size=args.score_batch)  # warm-up
    start = _sync(device)
    scores = score_batch(model, examples, image_root=tmp, batch_size=args.score_batch)
    seconds = _sync(device) - start
    if any(len(s) != args.rollout_steps or any(math.isnan(x) for x in s) for s in scores):
        raise RuntimeError(f"score_batch returned {[len(s) for s in scores]} scores for {args.rollout_steps} steps each")
    out = {"status": "ok", "batch": args.score_batch, "rollouts": len(examples), "seconds": seconds,
           "rollouts_per_s": len(examples) / seconds, "tokens_per_s": len(examples) * args.seq_len / seconds,
           "peak_memory_gb": _peak_gb(device)}
    del model
    _free(device)
    return out


# ---- main ----------------------------------------------------------------------------------
def _table(report: dict[str, Any]) -> str:
    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    rows = [f"{'model':<16}{'mode':<7}{'status':<9}{'tokens/s':>10}{'samples/s':>10}{'MFU':>7}{'peak GB':>9}"
            f"{'plan GB':>9}{'loss first->last':>20}"]
    for r in report["training"]:
        loss = f"{r['losses'][0]:.3f}->{r['losses'][-1]:.3f}" if r.get("losses") else "-"
        rows.append(f"{r['model']:<16}{r['mode']:<7}{r['status']:<9}{fmt(r.get('tokens_per_s'), ',.0f'):>10}"
                    f"{fmt(r.get('samples_per_s'), '.2f'):>10}{fmt(r.get('mfu'), '.1%'):>7}"
                    f"{fmt(r.get('peak_memory_gb'), '.1f'):>9}{fmt(r.get('plan_gb'), '.1f'):>9}{loss:>20}")
        if r["status"] != "ok":
            rows.append(f"    {r.get('reason', '')}")
    for r in report["scoring"]:
        rows.append(f"{r['model']:<16}{'score':<7}{r['status']:<9}{fmt(r.get('tokens_per_s'), ',.0f'):>10}"
                    f"{'':>10}{'':>7}{fmt(r.get('peak_memory_gb'), '.1f'):>9}   "
                    f"{fmt(r.get('rollouts_per_s'), '.2f')} rollouts/s at batch {r.get('batch')}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--modes", default="full,lora", help="full (the paper's fine-tuning), lora (rank --lora-rank)")
    p.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when available")
    p.add_argument("--tiny", action="store_true", help="tiny architectures and images (seconds on CPU)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per rollout (default 8192, the paper's max "
                   "length; 512 with --tiny)")
    p.add_argument("--micro", type=int, default=None, help="micro batch (default: the config's, 2)")
    p.add_argument("--rollout-steps", type=int, default=6, help="steps per rollout, each followed by <prm>")
    p.add_argument("--image-size", default=None, help="WxH of the image (default 1024x768; 112x84 with --tiny)")
    p.add_argument("--pad", type=int, default=64, help="every second rollout this many tokens shorter")
    p.add_argument("--steps", type=int, default=20, help="optimiser steps on the repeated batch (loss must halve)")
    p.add_argument("--accumulation", type=int, default=2, help="micro batches per timed optimiser step (>= 2)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-4; 1e-3 with --tiny): pure "
                   "bf16 weights lose AdamW updates far below their precision, such as the paper's 1e-5")
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--score-batch", type=int, default=16)
    p.add_argument("--score-rollouts", type=int, default=32)
    p.add_argument("--no-scoring", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the GPU (default: by name)")
    p.add_argument("--force", action="store_true", help="run even when the memory plan says it does not fit")
    p.add_argument("--output", default="runs/gpu_check.json")
    args = p.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "true"
    from mprm.train.strategy import launch_env

    deepspeed = launch_env().deepspeed
    env = check_environment(device, deepspeed=deepspeed)
    args.seq_len = args.seq_len or (512 if args.tiny else 8192)
    args.image_size = tuple(int(x) for x in (args.image_size or ("112x84" if args.tiny else "1024x768")).split("x"))
    args.lr = args.lr or (1e-3 if args.tiny else 1e-4)
    if args.accumulation < 2:
        p.error("--accumulation must be >= 2 (the optimiser step is timed as the excess of a step's last micro batch)")
    names, modes = args.models.split(","), args.modes.split(",")
    if unknown := [n for n in names if n not in MODELS] + [m for m in modes if m not in ("full", "lora")]:
        p.error(f"unknown --models/--modes {unknown}")
    if deepspeed and len(names) * len(modes) > 1:
        p.error("under DeepSpeed run one --models and one --modes per launch (one engine per process)")
    tflops = args.peak_tflops or next((v for k, v in PEAK_TFLOPS if k in env.get("gpu", "")), None)
    peak = tflops * 1e12 if tflops else None
    from transformers.utils import logging as hf_logging

    from mprm.config import checked, load_config

    hf_logging.set_verbosity_error()  # the "newly initialised weights" table of a weightless checkpoint
    hf_logging.disable_progress_bar()
    report: dict[str, Any] = {"environment": env, "device": device, "tiny": args.tiny, "peak_flops": peak,
                              "settings": {k: v for k, v in vars(args).items() if k != "output"},
                              "measured": device == "cuda", "training": [], "scoring": []}
    rank0 = int(os.environ.get("RANK", "0")) == 0
    for name in names:
        backbone, config_file, release = MODELS[name]
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            ckpt = synthetic_checkpoint(backbone, release, tmp / "checkpoint", tiny=args.tiny)
            base = load_config(REPO / config_file)
            model = dataclasses.replace(base.model, path=str(ckpt), max_length=args.seq_len,
                                        dtype="bfloat16" if device == "cuda" else "float32")
            if args.tiny:
                model = dataclasses.replace(model, max_tiles=None, min_pixels=None, max_pixels=None)
            train = dataclasses.replace(base.train, warmup_ratio=0.0,
                                        micro_batch_size=args.micro or base.train.micro_batch_size)
            base = dataclasses.replace(base, model=model, train=train)
            if not args.no_scoring and not deepspeed:
                cfg = checked(base)
                report["scoring"].append({"model": name, **run_scoring(cfg, args, device, tmp)})
            for mode in modes:
                lora_rank = args.lora_rank if mode == "lora" else base.model.lora_rank
                cfg = checked(dataclasses.replace(base, model=dataclasses.replace(base.model, lora_rank=lora_rank)))
                report["training"].append({"model": name, "mode": mode, **run_training(cfg, args, device, peak, tmp)})
    if rank0:
        print(_table(report))
        if device != "cuda":
            print("(not a GPU run: no MFU, no memory figures)")
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"wrote {args.output}")
    ok = all(r["status"] == "ok" and r["loss_falls"] for r in report["training"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
