"""Memory plan of a training run, from the architecture alone (docs/training.md).

``train.py --config FILE --plan`` builds the backbone on the ``meta`` device (shapes only: no
storage, no weights read, about a second for 8B), freezes and wraps it as ``build_reward_model``
does, and estimates per GPU what the launch's distributed mode holds: weights, gradients,
optimiser states and the optimiser step's temporaries, DeepSpeed's buffers, and the activations of
one micro batch at ``max_length``. It says whether that fits before any weight is loaded.
benchmarks/gpu_check.py sets the estimate beside the measured peak and takes MFU from
:func:`train_flops`. The byte model (P parameters, T of them trainable, N processes, w bytes per
weight) is documented on :func:`plan_memory` and :func:`activation_bytes`; sizes are decimal GB.
The model's shapes (release configs, :class:`TextDims`, :class:`VisionDims`) and FLOPs live in
:mod:`mprm.train.shapes` and are importable from here too.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from mprm.train.shapes import (
    PlanError,
    TextDims,
    VisionDims,
    model_config,
    release_config,
    text_dims,
    train_flops,
    vision_dims,
    vision_forward_flops,
)
from mprm.train.strategy import launch_env

GB = 1e9


def build_meta_model(model_cfg: Any, hf_config: Any) -> tuple[torch.nn.Module, int]:
    """The backbone on the meta device with ``build_reward_model``'s trainable set (vision frozen
    under ``freeze_vision``; LoRA adapters on the registry targets, the LM head (heads that read it)
    and the projector kept trainable), and the step head's own parameter count."""
    from mprm.models.backbones import get_backbone
    from mprm.models.heads import get_head
    from mprm.models.lora import LoraSettings, apply_lora
    from mprm.models.reward import set_trainable

    spec, head = get_backbone(model_cfg.backbone), get_head(model_cfg.head)
    with torch.device("meta"):
        head_params = sum(p.numel() for p in head(hidden_size=hf_config.get_text_config().hidden_size, yes_id=0,
                                                   no_id=1, dtype=torch.float32).parameters())
        model = spec.model_cls()._from_config(hf_config)
        set_trainable(model, spec, freeze_vision=model_cfg.freeze_vision)
        if model_cfg.lora_rank > 0:
            settings = LoraSettings(r=model_cfg.lora_rank, alpha=model_cfg.lora_alpha, dropout=model_cfg.lora_dropout)
            model = apply_lora(model, spec, settings, keep_lm_head=head.uses_lm_head)
    return model, head_params


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts; ``by_part`` maps vision/projector/language/other to (total, trainable)."""

    total: int
    trainable: int
    by_part: dict[str, tuple[int, int]]
    largest: int


def count_params(model: torch.nn.Module, backbone: str, head_params: int = 0) -> ParamCounts:
    from mprm.models.backbones import get_backbone

    spec, parts, largest = get_backbone(backbone), {"head": [head_params, head_params]}, 0
    for name, p in model.named_parameters():
        row = parts.setdefault(spec.part_of(name.removeprefix("base_model.model.")), [0, 0])
        row[0] += p.numel()
        row[1] += p.numel() if p.requires_grad else 0
        largest = max(largest, p.numel())
    parts = {k: v for k, v in parts.items() if v[0]}
    return ParamCounts(total=sum(r[0] for r in parts.values()), trainable=sum(r[1] for r in parts.values()),
                       by_part={k: (v[0], v[1]) for k, v in parts.items()}, largest=largest)


# ---- launches ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Launch:
    """What the memory plan needs from an accelerate launch file (or launch environment)."""

    source: str
    world_size: int = 1
    machines: int = 1
    deepspeed: bool = False
    zero_stage: int = 0
    offload_optimizer: bool = False
    offload_param: bool = False
    cpu: bool = False
    zero: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.deepspeed:
            off = [n for n, on in (("optimizer", self.offload_optimizer), ("parameters", self.offload_param)) if on]
            mode = f"DeepSpeed ZeRO-{self.zero_stage}" + (f", {' and '.join(off)} offloaded to CPU" if off else "")
        else:
            mode = "DDP" if self.world_size > 1 else "one process, no DeepSpeed"
        unit = "process" if self.cpu else "GPU"
        return f"{self.source} ({mode}), {self.world_size} {unit}{'s' if self.world_size > 1 else ''}"


def _ds_launch(source: str, zero: dict[str, Any], **kw: Any) -> Launch:
    def dev(key: str) -> bool:
        return str((zero.get(key) or {}).get("device", "none")).lower() not in ("none", "")

    return Launch(source=source, deepspeed=True, zero_stage=int(zero.get("stage", 0)), zero=zero,
                  offload_optimizer=dev("offload_optimizer"), offload_param=dev("offload_param"), **kw)


def _zero_of(ds_file: str | Path, base: Path) -> dict[str, Any]:
    path = Path(ds_file)
    for candidate in (path, base / path, base.parent / path):
        if candidate.is_file():
            return json.loads(candidate.read_text()).get("zero_optimization", {})
    raise PlanError(f"DeepSpeed config {ds_file} not found (relative paths are read from the repository root)")


def read_launch(path: str | Path, *, gpus: int | None = None) -> Launch:
    """A launch/*.yaml accelerate config; ``gpus`` overrides its ``num_processes``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise PlanError(f"launch file {path} not found")
    data = yaml.safe_load(path.read_text()) or {}
    kw = dict(world_size=gpus or int(data.get("num_processes", 1)), machines=int(data.get("num_machines", 1)),
              cpu=bool(data.get("use_cpu", False)))
    if str(data.get("distributed_type", "NO")).upper() != "DEEPSPEED":
        return Launch(source=str(path), **kw)
    ds = data.get("deepspeed_config") or {}
    if ds.get("deepspeed_config_file"):
        zero = _zero_of(ds["deepspeed_config_file"], path.resolve().parent)
    else:
        zero = {"stage": ds.get("zero_stage", 2), "offload_optimizer": {"device": ds.get("offload_optimizer_device")},
                "offload_param": {"device": ds.get("offload_param_device")}}
    return _ds_launch(str(path), zero, **kw)


def launch_from_env(env: dict[str, str] | None = None, *, gpus: int | None = None) -> Launch:
    """The launch ``accelerate launch`` describes in the environment of this process (read by
    ``strategy.launch_env``, the one reader of the launcher's variables)."""
    le = launch_env(env)
    kw = dict(world_size=gpus or le.world_size, machines=le.machines, cpu=le.cpu)
    if not le.deepspeed:
        return Launch(source="this launch", **kw)
    if le.deepspeed_config_file:
        zero = _zero_of(le.deepspeed_config_file, Path.cwd())
    else:
        zero = {"stage": le.zero_stage, "offload_optimizer": {"device": le.offload_optimizer_device},
                "offload_param": {"device": le.offload_param_device}}
    return _ds_launch("this launch", zero, **kw)


def launch_in_header(config_path: str | Path) -> str | None:
    """The ``--config_file`` of the command in a config's leading comment (every shipped config
    starts with the command that runs it); None for a plain ``python train.py`` command."""
    for line in Path(config_path).read_text().splitlines():
        if not line.startswith("#"):
            break
        match = re.search(r"accelerate launch .*--config_file\s+(\S+)", line)
        if match:
            return match.group(1)
    return None


# ---- memory --------------------------------------------------------------------------------
def activation_bytes(t: TextDims, *, micro: int, seq_len: int, checkpointing: bool, stream_bytes: int = 2,
                     padded: bool = True, saved_only: bool = False) -> float:
    """Activation memory of the language model for one micro batch of ``micro`` x ``seq_len`` tokens.

    ``saved_only=True`` is what autograd keeps without checkpointing, which tests/train/test_plan.py
    checks byte for byte against ``saved_tensors_hooks`` on CPU. Per token and decoder layer, with
    s = 2 (bf16 weights) or 4 (fp32 weights under bf16 autocast, train.py's path outside DeepSpeed):
    each RMSNorm its fp32 input and rsqrt (4h + 4) and its normalised input and output (2 x 2h);
    under autocast the normalised input in fp32 (4h) and every matmul its own bf16 copy of its input
    (3 x 2h before q, k, v; 2 x 2h before gate, up) plus bf16 copies of the layer's weights; q (2h),
    k and v (2 x 2 kv_dim, or 2 x 2h when a padding mask makes transformers repeat them), the
    attention output (2h) and log-sum-exp (4 heads); the MLP's gate, up, activation and product
    (8I). A padded batch's boolean mask (s^2 per sequence; held, not saved) becomes a bf16 bias in
    every attention call, which is saved (2 s^2 per sequence and layer). Once per token: rotary
    cos/sin (2 s head_dim), the final norm (4h + 4 + s h), the token ids (8). The frozen vision
    tower keeps nothing. With gradient checkpointing each layer keeps only its input (s h) and one
    layer at a time is recomputed in backward. Live in backward too: one layer's gradient buffers
    (6I + 3 s h per token, an estimate).
    """
    h, s = t.hidden, stream_bytes
    tokens, pairs = micro * seq_len, micro * seq_len * seq_len
    kv = t.heads * t.head_dim if padded else t.kv_heads * t.head_dim
    # norms: fp32 input + rsqrt, normalised input and output; under autocast each matmul saves its own bf16 copy
    norms = 2 * (8 * h + 4) if s == 2 else (8 * h + 4 + 3 * 2 * h) + (8 * h + 4 + 2 * 2 * h)
    layer = tokens * (norms + 2 * t.heads * t.head_dim + 4 * kv + 4 * t.heads + 2 * h + 8 * t.intermediate)
    layer += 2 * pairs if padded else 0
    layer += 2 * t.layer_matmul_params if s == 4 else 0  # autocast's bf16 copies of the weights
    once = tokens * (2 * s * t.head_dim + 4 * h + 4 + s * h + 8)
    if saved_only:
        return t.layers * layer + once
    once += pairs if padded else 0  # the boolean mask itself: alive through forward and backward, not saved
    work = tokens * (6 * t.intermediate + 3 * s * h)
    return once + work + (t.layers * tokens * s * h + layer if checkpointing else t.layers * layer)


@dataclass
class MemoryPlan:
    """Per-GPU estimate in bytes: ``rows`` of (name, bytes, note)."""

    rows: list[tuple[str, float, str]]
    activations_other: float  # the activations with gradient checkpointing switched the other way
    gpu_memory: float
    reserve: float
    host: float  # CPU RAM per node for offloaded states
    checkpointing: bool

    @property
    def total(self) -> float:
        return sum(b for _, b, _ in self.rows)

    @property
    def fits(self) -> bool:
        return self.total + self.reserve <= self.gpu_memory


def plan_memory(counts: ParamCounts, text: TextDims, launch: Launch, *, micro: int, seq_len: int, checkpointing: bool,
                param_bytes: int, gpu_memory_gb: float, padded: bool = True) -> MemoryPlan:
    """Per-GPU bytes (the ZeRO paper's accounting; P parameters, T trainable, N processes, w bytes per weight).

    DeepSpeed: weights w P (/N under ZeRO-3; 0 with offloaded parameters), gradients w T (/N from
    ZeRO-2; on the host with an offloaded optimiser), fp32 master + Adam m, v 12 T (8 T when w = 4;
    /N from ZeRO-1; 0 when offloaded), the step's temporary over the flat fp32 partition (4 T / N,
    at most the 1e9 sub-group under ZeRO-3); buffers: ZeRO-3 gathers the largest tensor, a layer
    and a prefetch bucket, ZeRO-2 an all-gather bucket, both two reduce buckets ("auto" = h^2, as
    Strategy fills them). Without DeepSpeed (torch AdamW keeps m, v in the weights' dtype): w P,
    w T, 2 w T, the foreach step's temporary w T on CPU (none on a GPU, where the trainer uses the
    fused kernel), and DDP's gradient buckets w T when N > 1.
    It fits when total + reserve (CUDA context, cuBLAS/NCCL workspaces, fragmentation: 5% of the
    GPU, at least 3 GB) is at most the GPU's memory. Host RAM per node with offload: (12 + 4 fp32
    gradients) T, plus w P for offloaded parameters.
    """
    w = param_bytes
    if launch.deepspeed:
        rows, host = _deepspeed_rows(counts, text, launch, w)
    else:
        rows, host = _torch_rows(counts, launch, w), 0.0
    s = 2 if (launch.deepspeed or w == 2) else 4
    kw = dict(micro=micro, seq_len=seq_len, stream_bytes=s, padded=padded)
    rows.append(("activations", activation_bytes(text, checkpointing=checkpointing, **kw),
                 f"micro batch {micro} x {seq_len} tokens, "
                 + ("checkpointed" if checkpointing else "no checkpointing")))
    gpu = gpu_memory_gb * GB
    return MemoryPlan(rows=rows, activations_other=activation_bytes(text, checkpointing=not checkpointing, **kw),
                      gpu_memory=gpu, reserve=max(3 * GB, 0.05 * gpu), host=host / max(launch.machines, 1),
                      checkpointing=checkpointing)


def _deepspeed_rows(counts: ParamCounts, text: TextDims, launch: Launch,
                    w: int) -> tuple[list[tuple[str, float, str]], float]:
    """:func:`plan_memory`'s rows under DeepSpeed (weights to buffers) and the host bytes offloaded."""
    P, T, N = counts.total, counts.trainable, max(launch.world_size, 1)
    st = launch.zero_stage

    def split(stage: int) -> tuple[float, str]:
        return (N, f", split over {N}") if st >= stage and N > 1 else (1, "")

    rows: list[tuple[str, float, str]] = []
    host = 0.0
    master = 4 if w == 2 else 0
    n, note = split(3)
    rows.append(("weights", 0.0 if launch.offload_param else w * P / n,
                 "offloaded to CPU" if launch.offload_param else f"{w} B{note}"))
    host += w * P if launch.offload_param else 0
    n, note = split(2)
    if launch.offload_optimizer:
        host += (master + 12) * T
        rows += [("gradients", 0.0, "fp32 on CPU"),
                 ("optimizer states", 0.0, "offloaded to CPU (DeepSpeedCPUAdam)")]
    else:
        rows.append(("gradients", w * T / n, f"{w} B per trainable{note}"))
        n, note = split(1)
        rows.append(("optimizer states", (master + 8) * T / n, f"fp32 master + Adam m, v: {master + 8} B{note}"))
        rows.append(("optimizer step", 4 * min(T / n, 1e9 if st == 3 else T), "temporary over the fp32 partition"))
    rows.append(("DeepSpeed buffers", _deepspeed_buffers(counts, text, launch, w),
                 "gathered weights, communication buckets"))
    return rows, host


def _deepspeed_buffers(counts: ParamCounts, text: TextDims, launch: Launch, w: int) -> float:
    """ZeRO-3: the largest tensor, a layer and a prefetch bucket gathered; ZeRO-1/2: an all-gather
    bucket; both: two reduce buckets ("auto" = h^2, as Strategy fills them)."""
    z, st = launch.zero, launch.zero_stage

    def bucket(key: str, auto: float) -> float:
        value = z.get(key, "auto")
        return auto if value == "auto" else float(value)

    reduce = 2 * w * bucket("reduce_bucket_size", text.hidden**2)
    if st == 3:
        gathered = w * (counts.largest + text.layer_matmul_params + bucket("stage3_prefetch_bucket_size",
                                                                       0.9 * text.hidden**2))
    else:
        gathered = w * bucket("allgather_bucket_size", 5e8) if st >= 1 else 0.0
    return gathered + reduce


def _torch_rows(counts: ParamCounts, launch: Launch, w: int) -> list[tuple[str, float, str]]:
    """:func:`plan_memory`'s rows without DeepSpeed (torch AdamW, DDP buckets when N > 1)."""
    T = counts.trainable
    rows = [("weights", w * counts.total, f"{w} B"), ("gradients", w * T, f"{w} B per trainable"),
            ("optimizer states", 2 * w * T, f"AdamW m, v: {2 * w} B per trainable"),
            ("optimizer step", w * T if launch.cpu else 0.0,
             "foreach temporary (sqrt of v)" if launch.cpu else "fused AdamW on the GPU: no temporary")]
    if max(launch.world_size, 1) > 1:
        rows.append(("DDP buckets", w * T, "gradient copies for the all-reduce"))
    return rows


def train_param_bytes(launch: Launch, cfg: Any) -> int:
    """Bytes per weight as training builds the model (:func:`mprm.config.weights_dtype`, the rule
    ``loop.model_dtype`` uses too)."""
    from mprm.config import weights_dtype

    mp = cfg.train.mixed_precision
    resolved = "bf16" if mp == "bf16" or (mp == "auto" and not launch.cpu) else "no"
    name = weights_dtype(getattr(cfg.model, "dtype", "auto"), deepspeed=launch.deepspeed, mixed_precision=resolved)
    return 2 if name == "bfloat16" else 4


# ---- the whole plan ------------------------------------------------------------------------
@dataclass
class RunPlan:
    config: Any
    launch: Launch
    source: str
    counts: ParamCounts
    text: TextDims
    memory: MemoryPlan
    bf16_total: float | None = None  # outside DeepSpeed with fp32 weights: the total with model.dtype=bfloat16


def plan_run(cfg: Any, launch: Launch, *, gpu_memory_gb: float = 80.0, param_bytes: int | None = None,
             micro: int | None = None, seq_len: int | None = None, padded: bool = True) -> RunPlan:
    """Plan ``cfg`` (a mprm Config) under ``launch``; builds the model on the meta device only."""
    hf_config, source = model_config(cfg.model.path, cfg.model.backbone)
    model, head_params = build_meta_model(cfg.model, hf_config)
    counts, text = count_params(model, cfg.model.backbone, head_params), text_dims(hf_config)
    w = param_bytes or train_param_bytes(launch, cfg)
    kw = dict(micro=micro or cfg.train.micro_batch_size, padded=padded, seq_len=seq_len or cfg.model.max_length,
              checkpointing=cfg.train.gradient_checkpointing, gpu_memory_gb=gpu_memory_gb)
    memory = plan_memory(counts, text, launch, param_bytes=w, **kw)
    bf16 = plan_memory(counts, text, launch, param_bytes=2, **kw).total if w == 4 and not launch.deepspeed else None
    return RunPlan(config=cfg, launch=launch, source=source, counts=counts, text=text, memory=memory, bf16_total=bf16)


def format_plan(plan: RunPlan) -> str:
    """The plan as ``train.py --plan`` prints it."""
    c, m, mem = plan.counts, plan.config.model, plan.memory
    lines = [f"model      {m.backbone}, {m.path}: {plan.source}", f"launch     {plan.launch.describe()}",
             f"training   head {m.head}, " + (f"LoRA rank {m.lora_rank}" if m.lora_rank else "full fine-tuning")
             + (", vision tower frozen" if m.freeze_vision else ""),
             f"parameters {c.total:,} total, {c.trainable:,} trainable"]
    lines += [f"  {part:<10}{tot:>15,}  trainable {tr:,}" for part, (tot, tr) in sorted(c.by_part.items())]
    lines.append("per GPU                  GB")
    lines += [f"  {name:<20}{b / GB:>7.2f}   {note}" for name, b, note in mem.rows]
    lines.append(f"  {'total':<20}{mem.total / GB:>7.2f}   + reserve {mem.reserve / GB:.1f} = "
                 f"{(mem.total + mem.reserve) / GB:.1f} of {mem.gpu_memory / GB:.0f} GB")
    lines.append(f"  (activations {'without' if mem.checkpointing else 'with'} gradient checkpointing: "
                 f"{mem.activations_other / GB:.1f} GB)")
    if plan.bf16_total is not None:
        lines.append(f"  (with model.dtype=bfloat16, pure bf16 training: {plan.bf16_total / GB:.1f} GB)")
    if mem.host:
        lines.append(f"host RAM   {mem.host / GB:.1f} GB per node for the offloaded states")
    if plan.launch.cpu:
        lines.append("note       a CPU launch: the figures are what one process would hold on a GPU")
    lines.append(f"verdict    {'fits' if mem.fits else 'DOES NOT FIT'} on {plan.launch.world_size} x "
                 f"{mem.gpu_memory / GB:.0f} GB")
    return "\n".join(lines)


def choose_launch(config_path: str | None, launch: str | None = None, gpus: int | None = None,
                  env: dict[str, str] | None = None) -> Launch:
    """``launch`` if given; else the environment of ``accelerate launch``; else the launch file in
    the config's leading command; else one process without DeepSpeed."""
    env = dict(os.environ if env is None else env)
    if launch:
        return read_launch(launch, gpus=gpus)
    if launch_env(env).launched:
        return launch_from_env(env, gpus=gpus)
    header = launch_in_header(config_path) if config_path else None
    return read_launch(header, gpus=gpus) if header else Launch(source="python train.py", world_size=gpus or 1)


def alternatives(cfg: Any, *, gpus: int, gpu_memory_gb: float, launch_dir: str | Path = "launch") -> list[str]:
    """Launch lines that fit when the chosen one does not."""
    found = []
    for name in ("zero3.yaml", "zero3_offload.yaml"):
        path = Path(launch_dir) / name
        if path.is_file() and plan_run(cfg, read_launch(path, gpus=gpus), gpu_memory_gb=gpu_memory_gb).memory.fits:
            found.append(f"accelerate launch --config_file {path} --num_processes {gpus} train.py --config ...")
    lora = replace(cfg, model=replace(cfg.model, lora_rank=cfg.model.lora_rank or 16))
    if plan_run(lora, Launch(source="one GPU"), gpu_memory_gb=gpu_memory_gb).memory.fits:
        found.append(f"python train.py --config ... model.lora_rank={lora.model.lora_rank}   (LoRA, one GPU)")
    return found


def plan_command(cfg: Any, *, config_path: str | None, launch: str | None = None, gpus: int | None = None,
                 gpu_memory_gb: float | None = None) -> int:
    """``train.py --plan``: print the plan; 0 when it fits, 3 when it does not (and what would)."""
    plan = plan_run(cfg, choose_launch(config_path, launch, gpus), gpu_memory_gb=gpu_memory_gb or 80.0)
    print(format_plan(plan))
    if plan.memory.fits:
        return 0
    found = alternatives(cfg, gpus=plan.launch.world_size, gpu_memory_gb=plan.memory.gpu_memory / GB)
    print("fits instead:\n" + "\n".join(f"  {f}" for f in found) if found else "no shipped launch fits: more GPUs?")
    return 3


def preflight(cfg: Any, *, env: dict[str, str] | None = None, gpu_memory_gb: float | None = None) -> str | None:
    """Before any weight is loaded (train.py on a GPU): the plan of this launch on this GPU; a
    message when it does not fit, None when it fits or cannot be judged (an unknown model path,
    a CPU run)."""
    env = dict(os.environ if env is None else env)
    if gpu_memory_gb is None:
        if not torch.cuda.is_available():
            return None
        gpu_memory_gb = torch.cuda.get_device_properties(int(env.get("LOCAL_RANK", 0))).total_memory / GB
    launch = launch_from_env(env)
    if launch.cpu:
        return None
    try:
        plan = plan_run(cfg, launch, gpu_memory_gb=gpu_memory_gb)
    except PlanError:
        return None
    if plan.memory.fits:
        return None
    return (format_plan(plan) + "\ntrain.py: by the memory plan this run does not fit these GPUs; "
            "`train.py --config FILE --plan` lists launches that do (docs/training.md, \"Memory plan\"); "
            "--skip-plan-check starts it anyway")


__all__ = ["GB", "Launch", "MemoryPlan", "ParamCounts", "PlanError", "RunPlan", "TextDims", "VisionDims",
           "activation_bytes", "alternatives", "build_meta_model", "choose_launch", "count_params", "format_plan",
           "launch_from_env", "launch_in_header", "model_config", "plan_command", "plan_memory", "plan_run",
           "preflight", "read_launch", "release_config", "text_dims", "train_flops", "train_param_bytes",
           "vision_dims", "vision_forward_flops"]

