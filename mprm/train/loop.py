"""The training loop (METHOD.md 6): one explicit loop, the same on 1 process, DDP, ZeRO-2, ZeRO-3.

Read top to bottom: :func:`train` is the recipe, named steps each a function below (preflight
memory check when asked -> run -> training file -> model -> data -> optimizer -> log -> loop ->
save; the model comes before the data because the formatter that encodes the data is the
model's); :func:`optimizer_step` is one optimiser step
(learning rate, the step's micro batches, clipping); :func:`run_loop` logs, checkpoints and
evaluates around it. Distributed details are in strategy.py, data order in sampler.py,
checkpoint layout in checkpoint.py.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mprm.config import Config, ConfigError, accumulation_steps, check_required, to_yaml, weights_dtype
from mprm.data.examples import default_image_root
from mprm.data.labels import TARGET_CUT
from mprm.errors import Refusal
from mprm.train import checkpoint as ckpt
from mprm.train.data import (
    IGNORE_LABEL,
    EncodedExamples,
    column,
    counts_summary,
    encode_table,
    load_table,
    make_loader,
    resolve_training_file,
    selection_settings,
)
from mprm.eval.settings import EvalSettings
from mprm.train.evaluate import evaluate_dev
from mprm.train.monitor import RunLog, write_run_info
from mprm.train.sampler import BatchPlan, RankBatchSampler
from mprm.train.schedule import lr_at, warmup_steps
from mprm.train.strategy import Strategy


def micro_batch_loss(loss_sum: torch.Tensor, n_labelled: torch.Tensor, *, mode: str, step_total: int,
                     world_size: int, accumulation: int) -> torch.Tensor:
    """The scalar handed to ``backward`` for one micro batch.

    ``optimizer_step`` (default, METHOD.md 10.6): the update should be the gradient of
    ``L = sum over every labelled step s of the optimiser step (all micro batches, all ranks) of
    loss_s / T``, where ``T`` (``step_total``) is the number of labelled steps of the whole
    optimiser step. Every rank knows ``T`` without communication: it is summed from the cached
    labels of the examples the sampler assigns to this step. Two frameworks rescale what we pass:
    accelerate (and DeepSpeed's engine) divide each micro-batch loss by the accumulation count, and
    DDP / DeepSpeed average gradients over ranks (divide by the world size). Returning
    ``loss_sum / T * world_size * accumulation`` cancels both, so the applied gradient is exactly
    ``grad L``: the same on 1 process and on N, and independent of how the step's examples are
    split into micro batches (a long rollout weighs what its steps weigh, no more).

    ``micro_batch``: the authors' choice, the mean over each micro batch's own labelled steps,
    averaged over micro batches and ranks (over-weights steps of short micro batches).
    """
    if mode == "optimizer_step":
        return loss_sum * (world_size * accumulation / max(step_total, 1))
    if mode == "micro_batch":
        return loss_sum / n_labelled.clamp(min=1).to(loss_sum.dtype)
    raise ValueError(f"train.loss_normalization = {mode!r}: choose optimizer_step or micro_batch")


def make_optimizer(model: torch.nn.Module, cfg: Config, *, fused: bool | None = None) -> torch.optim.Optimizer:
    """AdamW over trainable parameters (METHOD.md 6); no weight decay on biases and norm weights
    (1-D tensors; decisions.md D-TRAIN-3). ZeRO-3 partitions expose their real shape as ds_shape.

    ``fused`` (default: when every parameter is on a GPU already) uses torch's fused kernel: no
    foreach temporaries (a copy of a moment state, 15 GB at 7B in bf16) and fewer launches. The
    trainer passes it for GPU runs, whose model is still on the CPU when the optimiser is made.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if len(getattr(p, "ds_shape", p.shape)) >= 2 else no_decay).append(p)
    t = cfg.train
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if fused is None:
        fused = bool(decay or no_decay) and all(p.is_cuda for p in decay + no_decay)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=t.lr, betas=(t.adam_beta1, t.adam_beta2),
                             eps=t.adam_eps, fused=fused or None)


def model_dtype(cfg: Config, strategy: Strategy) -> torch.dtype:
    """The dtype the model's weights are built in: :func:`mprm.config.weights_dtype` of
    ``model.dtype`` (``bfloat16`` outside DeepSpeed trains pure bf16: weights, gradients and AdamW
    states in bf16, half the memory of fp32 master weights; ``train.py --plan`` shows both)."""
    return getattr(torch, weights_dtype(cfg.model.dtype, deepspeed=strategy.uses_deepspeed,
                                        mixed_precision=strategy.mixed_precision))


def build_model(cfg: Config, strategy: Strategy) -> torch.nn.Module:
    """The reward model of ``cfg.model`` (built partitioned under ZeRO-3 init)."""
    from mprm.models import LoraSettings, build_reward_model

    m = cfg.model
    lora = LoraSettings(r=m.lora_rank, alpha=m.lora_alpha, dropout=m.lora_dropout) if m.lora_rank > 0 else None
    return strategy.build_model(lambda: build_reward_model(
        m.path, backbone=m.backbone, head=m.head, separator=m.separator, max_length=m.max_length,
        prompt_style=m.prompt_style, revision=m.revision,
        dtype=model_dtype(cfg, strategy), attn_implementation=m.attn_implementation, freeze_vision=m.freeze_vision,
        lora=lora, gradient_checkpointing=cfg.train.gradient_checkpointing, multi_image=m.multi_image,
        max_tiles=m.max_tiles, min_pixels=m.min_pixels, max_pixels=m.max_pixels))


def _check_resume(state: dict[str, Any], cfg: Config, world_size: int, strategy: Strategy, path: Path) -> None:
    same = {"global_batch_size": cfg.train.global_batch_size, "seed": cfg.train.seed, "epochs": cfg.train.epochs}
    if strategy.uses_deepspeed:
        same["world_size"] = world_size
    diff = [f"{k}: checkpoint {state.get(k)!r}, now {v!r}" for k, v in same.items() if state.get(k) != v]
    if diff:
        raise ConfigError([f"cannot resume from {path}: the run changed ({'; '.join(diff)}); resume with the "
                           "original settings or start a new output_dir (train.resume=none)"])


# ---- the recipe's steps: run -> data -> model -> optimizer -> loop -> save ----------------------
@dataclass
class Run:
    """What every step of the recipe shares: the config, the run folder and the strategy."""

    cfg: Config
    out: Path
    strategy: Strategy
    accumulation: int


@dataclass
class TrainData:
    """The tokenised training table and its batch plan (the resume cursor lives in the plan)."""

    train_file: Path
    formatter: Any
    image_root: str
    cache_dir: Path
    encoded: Any
    lengths: np.ndarray
    n_labelled: np.ndarray
    plan: BatchPlan


@dataclass
class Progress:
    """Counters of the run; ``state(step)`` is what a checkpoint records to resume from."""

    cfg: Config
    plan: BatchPlan
    world: int
    step: int = 0
    samples: int = 0
    tokens: int = 0
    wall_before: float = 0.0
    wall0: float = field(default_factory=time.perf_counter)

    @property
    def wall_s(self) -> float:
        return self.wall_before + time.perf_counter() - self.wall0

    def state(self, step: int) -> dict[str, Any]:
        t, plan = self.cfg.train, self.plan
        return {"step": step, "cursor": {"optimizer_steps_done": step, "epoch": step // plan.steps_per_epoch},
                "samples": self.samples, "tokens": self.tokens, "wall_s": self.wall_s,
                "global_batch_size": t.global_batch_size, "seed": t.seed, "epochs": t.epochs, "world_size": self.world,
                "total_steps": plan.total_steps,
                "schedule": {"name": "linear_warmup_cosine", "peak_lr": t.lr, "warmup_ratio": t.warmup_ratio,
                             "lr_next": lr_at(min(step, plan.total_steps - 1), peak_lr=t.lr,
                                              total_steps=plan.total_steps, warmup_ratio=t.warmup_ratio)}}


def start_run(cfg: Config, argv: list[str] | None) -> Run:
    """Strategy (before the model: ZeRO-3 init), batch geometry, run_info.json, seeds (of a config
    :func:`train` has checked)."""
    t, out = cfg.train, Path(cfg.train.output_dir)
    strategy = Strategy(mixed_precision=t.mixed_precision, log_with=cfg.logging.report_to, project_dir=out)
    accumulation = accumulation_steps(t.global_batch_size, t.micro_batch_size, strategy.world_size)
    strategy.configure_batches(micro_batch_size=t.micro_batch_size, accumulation=accumulation,
                               max_grad_norm=t.max_grad_norm)
    if strategy.is_main:
        write_run_info(out, config_yaml=to_yaml(cfg), argv=list(argv or sys.argv),
                       extra={"world_size": strategy.world_size, "mode": strategy.mode, "accumulation": accumulation})
    strategy.seed_everything(t.seed)
    return Run(cfg=cfg, out=out, strategy=strategy, accumulation=accumulation)


def select_training_file(run: Run) -> Path:
    """The selection of ``cfg.selection`` written into the run folder (rank 0), then a barrier."""
    cfg = run.cfg
    train_file = resolve_training_file(cfg.data.train, selection_settings(cfg), output_dir=run.out,
                                       is_main=run.strategy.is_main)
    run.strategy.barrier()
    return train_file


def prepare_data(run: Run, formatter: Any, train_file: Path) -> TrainData:
    """Memory-mapped table, cached tokenisation (rank 0 first), batch plan; data_summary.json."""
    cfg, strategy, t = run.cfg, run.strategy, run.cfg.train
    # VisualPRM400K as downloaded: <root>/annotations/*.jsonl with image paths relative to <root>
    image_root = cfg.data.image_root or str(default_image_root(cfg.data.train))
    cache_dir = Path(cfg.data.cache_dir) if cfg.data.cache_dir else run.out / "cache"
    with strategy.main_process_first():
        table = load_table(train_file, threshold=cfg.data.label_threshold, soft=cfg.data.soft_labels,
                           cache_dir=cache_dir)
        encoded = encode_table(table, formatter, image_root=image_root, cache_dir=cache_dir,
                               show_progress=strategy.is_main)
    lengths, n_labelled = column(encoded, "length"), column(encoded, "n_labelled")
    plan = BatchPlan(lengths, global_batch_size=t.global_batch_size, micro_batch_size=t.micro_batch_size,
                     world_size=strategy.world_size, seed=t.seed, epochs=t.epochs, max_steps=t.max_steps,
                     group_by_length=cfg.data.group_by_length)
    if strategy.is_main:
        summary = counts_summary(lengths, n_labelled, column(encoded, "n_steps_cut"))
        (run.out / "data_summary.json").write_text(json.dumps(
            {**summary, "train_file": str(train_file), "total_steps": plan.total_steps,
             "warmup_steps": warmup_steps(plan.total_steps, t.warmup_ratio), "accumulation": run.accumulation},
            indent=1))
    return TrainData(train_file, formatter, image_root, cache_dir, encoded, lengths, n_labelled, plan)


def prepare_optimizer(run: Run, model: torch.nn.Module, data: TrainData) -> tuple[Any, Any, Progress]:
    """AdamW, wrapping by the strategy, and the resumed counters (``train.resume``)."""
    cfg, strategy = run.cfg, run.strategy
    model, optimizer = strategy.prepare(model, make_optimizer(model, cfg, fused=strategy.device.type == "cuda"))
    progress = Progress(cfg=cfg, plan=data.plan, world=strategy.world_size)
    resume_from = ckpt.resolve_resume(cfg.train.resume, run.out)
    if resume_from is not None:
        state = ckpt.load_checkpoint(strategy, resume_from)
        _check_resume(state, cfg, strategy.world_size, strategy, resume_from)
        progress.step, progress.samples, progress.tokens = state["step"], state["samples"], state["tokens"]
        progress.wall_before = float(state.get("wall_s", 0.0))
    return model, optimizer, progress


def open_log(run: Run, data: TrainData, progress: Progress) -> RunLog:
    """metrics.jsonl, the progress bar and the trackers (rank 0)."""
    cfg, strategy = run.cfg, run.strategy
    trackers = strategy.is_main and any(r != "none" for r in cfg.logging.report_to)
    if trackers:
        strategy.init_trackers(cfg.logging.project, config=_flat(cfg.to_dict()),
                               run_name=cfg.logging.run_name or run.out.name)
    return RunLog(run.out, is_main=strategy.is_main, total_steps=data.plan.total_steps, start_step=progress.step,
                  progress_bar=cfg.logging.progress_bar, tracker=strategy.log if trackers else None)


def optimizer_step(run: Run, model: Any, optimizer: Any, data: TrainData, batches: Any, step: int
                   ) -> tuple[torch.Tensor, float, float]:
    """One optimiser step over its micro batches; returns (loss sum, labelled, correct) of this
    rank, the gradient norm and the learning rate."""
    strategy, t = run.strategy, run.cfg.train
    lr = lr_at(step, peak_lr=t.lr, total_steps=data.plan.total_steps, warmup_ratio=t.warmup_ratio)
    strategy.set_lr(optimizer, lr)
    step_total = data.plan.step_total(step, data.n_labelled)
    expected = data.n_labelled[data.plan.step_micro_batches(step)[:, strategy.rank]].sum(axis=-1)
    stats = torch.zeros(3, dtype=torch.float64, device=strategy.device)  # loss sum, labelled, correct
    grad_norm = float("nan")
    for slot in range(run.accumulation):
        batch = next(batches)
        mask = batch["prm_labels"] != IGNORE_LABEL
        if int(mask.sum()) != int(expected[slot]):
            raise RuntimeError(f"step {step} slot {slot}: the batch holds {int(mask.sum())} labelled steps, the "
                               f"cached table says {int(expected[slot])}; delete {data.cache_dir} and rerun")
        batch = {k: v.to(strategy.device, non_blocking=True) for k, v in batch.items()}
        mask = mask.to(strategy.device)
        with strategy.micro_step(model):
            outputs = model(**batch)
            loss = micro_batch_loss(outputs.loss_sum, outputs.n_labelled, mode=t.loss_normalization,
                                    step_total=step_total, world_size=strategy.world_size,
                                    accumulation=run.accumulation)
            strategy.backward(loss)
            if strategy.is_step_boundary:
                grad_norm = strategy.clip_and_step(model, optimizer, t.max_grad_norm)
        with torch.no_grad():
            labels = batch["prm_labels"][mask]
            right = ((outputs.scores[mask] >= TARGET_CUT) == (labels >= TARGET_CUT)).sum()
            stats += torch.stack([outputs.loss_sum.detach().double(), outputs.n_labelled.double(), right.double()])
    if not strategy.is_step_boundary:
        raise RuntimeError(f"step {step}: accumulation ended off the optimiser-step boundary")
    return stats, grad_norm, lr


def run_loop(run: Run, model: Any, optimizer: Any, data: TrainData, progress: Progress, log: RunLog) -> None:
    """One iteration per optimiser step: step, log, checkpoint, evaluate on the dev split."""
    cfg, strategy, t, plan = run.cfg, run.strategy, run.cfg.train, data.plan
    loader = make_loader(EncodedExamples(data.encoded, data.formatter, data.image_root),
                         RankBatchSampler(plan, strategy.rank, progress.step), num_workers=cfg.data.num_workers,
                         seed=t.seed)
    model.train()
    batches = iter(loader)
    progress.wall0 = interval_start = time.perf_counter()
    interval_samples = interval_tokens = 0
    shown_loss = float("nan")
    for step in range(progress.step, plan.total_steps):
        stats, grad_norm, lr = optimizer_step(run, model, optimizer, data, batches, step)
        real, padded = plan.padding(step)
        progress.samples += t.global_batch_size
        progress.tokens += real
        interval_samples += t.global_batch_size
        interval_tokens += real
        done = step + 1
        if done % t.log_every == 0 or done == plan.total_steps:
            loss_sum, n_lab, correct = strategy.sum(stats.tolist())
            now = time.perf_counter()
            seconds, interval_start = now - interval_start, now
            shown_loss = loss_sum / max(n_lab, 1)
            log.log({"step": done, "loss": shown_loss, "accuracy": correct / max(n_lab, 1),
                     "lr": lr, "grad_norm": grad_norm, "labelled_steps": int(n_lab),
                     "samples_per_s": interval_samples / seconds, "tokens_per_s": interval_tokens / seconds,
                     "padding_ratio": 1.0 - real / padded, "samples": progress.samples, "tokens": progress.tokens,
                     "wall_s": progress.wall_s})
            interval_samples = interval_tokens = 0
        log.progress(1, loss=shown_loss, lr=lr)
        if (t.save_every and done % t.save_every == 0) or done == plan.total_steps:
            ckpt.save_checkpoint(strategy, model, output_dir=run.out, step=done, trainer_state=progress.state(done),
                                 keep_last=t.keep_last, keep_models=t.keep_models)
        if t.eval_every and (done % t.eval_every == 0 or done == plan.total_steps):
            settings = EvalSettings.from_config(cfg, image_root=data.image_root)  # eval.image_root or the data's
            dev = evaluate_dev(strategy.unwrap(model), cfg, settings)
            log.log({"step": done, **{f"dev/{k}": v for k, v in dev.items()}})


def save_final(run: Run, model: Any, data: TrainData, progress: Progress, start_step: int) -> dict[str, Any]:
    """``OUTPUT_DIR/final`` (written to ``final.tmp``, then renamed) and run_summary.json."""
    strategy, out = run.strategy, run.out
    run_wall = time.perf_counter() - progress.wall0
    final = out / "final"

    def failed(exc: BaseException) -> ckpt.CheckpointError:
        return ckpt.CheckpointError(f"{final}: final model not saved ({ckpt.write_failure_reason(exc)}); "
                                    f"{shutil.disk_usage(out).free / 2**20:.1f} MiB free on {out}: free space and "
                                    "rerun (it resumes from the last checkpoint)")

    with ckpt.folder_written_whole(strategy, final, failed) as tmp:
        strategy.save_model(model, tmp)
    world = strategy.world_size
    summary = {"optimizer_steps": data.plan.total_steps, "steps_this_session": data.plan.total_steps - start_step,
               "samples": progress.samples, "tokens": progress.tokens, "wall_s": progress.wall_before + run_wall,
               "wall_s_this_session": run_wall, "world_size": world, "mode": strategy.mode,
               "device_type": strategy.device.type, "device_count": world if strategy.device.type == "cuda" else 0,
               "num_processes": world, "final_model": str(final)}
    if strategy.is_main:
        (out / "run_summary.json").write_text(json.dumps(summary, indent=1))
    return summary


class PlanRefusal(Refusal):
    """The memory plan says this run does not fit these GPUs (exit 3; the message is the plan and
    what to do, docs/training.md "Memory plan")."""


def preflight(cfg: Config, *, env: dict[str, str] | None = None, gpu_memory_gb: float | None = None) -> None:
    """Before any weight is loaded: raise :class:`PlanRefusal` when, on a GPU, the memory plan of
    this launch says the run does not fit (:func:`mprm.train.plan.preflight`; ``env`` and
    ``gpu_memory_gb`` default to this process's launch and GPU). Nothing on a CPU run."""
    from mprm.train.plan import preflight as plan_preflight

    refusal = plan_preflight(cfg, env=env, gpu_memory_gb=gpu_memory_gb)
    if refusal:
        raise PlanRefusal(refusal)


def train(cfg: Config, *, argv: list[str] | None = None, plan_check: bool = False) -> dict[str, Any]:
    """Run (or resume) one training run; returns the run summary (also OUTPUT_DIR/run_summary.json).

    ``plan_check``: first refuse a run the memory plan says does not fit (:func:`preflight`,
    :class:`PlanRefusal`); ``train.py`` turns it on unless ``--skip-plan-check``.
    """
    check_required(cfg)
    if plan_check:
        preflight(cfg)
    run = start_run(cfg, argv)
    train_file = select_training_file(run)
    model = build_model(cfg, run.strategy)
    data = prepare_data(run, model.formatter, train_file)
    model, optimizer, progress = prepare_optimizer(run, model, data)
    start_step = progress.step
    log = open_log(run, data, progress)
    run_loop(run, model, optimizer, data, progress, log)
    summary = save_final(run, model, data, progress, start_step)
    log.close()
    run.strategy.barrier()
    run.strategy.end()
    return summary


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


__all__ = ["PlanRefusal", "build_model", "make_optimizer", "micro_batch_loss", "model_dtype", "preflight", "train"]
