"""The one distributed layer: every line that differs between 1 process, DDP, ZeRO-2 and ZeRO-3.

The loop talks only to :class:`Strategy`; evaluation asks :func:`process_state` for its rank and
device; the memory plan reads the launch through :func:`launch_env`. accelerate is imported
nowhere else. Which mode runs is chosen by ``accelerate launch --config_file launch/...`` (its
environment variables), never by the training config.

DeepSpeed itself appears in two more places, both because a ZeRO-3 run hands them partitioned
weights or an active ZeRO-3 config they must see through, not to run anything distributed:
``mprm.models.reward.add_prm_token`` gathers the partitioned input / output embedding
(``deepspeed.zero.GatheredParameters``) to write the ``<prm>`` row whole (the model layer does not
import the training layer), and
:func:`whole_model_loading` (used by ``mprm.rewards``) sets transformers' ZeRO-3 config aside so
that a reward model loaded inside a ZeRO-3 policy training script stays whole in each process.

Details that matter (docs/training.md, ENVIRONMENT.md "Distributed runs on CPU"):

* ZeRO-3: the Accelerator (and with it accelerate's ``DeepSpeedPlugin``, which holds the
  ``HfDeepSpeedConfig`` that makes ``from_pretrained`` build the model partitioned under
  ``deepspeed.zero.Init``) is created *before* the model and kept alive for the whole run.
* DeepSpeed on CPU needs a gloo process group (``InitProcessGroupKwargs(backend="gloo")``);
  DDP on CPU needs ``Accelerator(cpu=True)``, otherwise the processes train unsynchronised.
* Gradient accumulation: accelerate divides each micro-batch loss by the accumulation count
  (DeepSpeed's engine does the same itself), and DDP / DeepSpeed average gradients over ranks;
  the loss function in ``loop.py`` is written against exactly these two conventions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


def _env_true(name: str, env: Mapping[str, str]) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class LaunchEnv:
    """What ``accelerate launch`` (or torchrun) told this process through its environment.

    ``launched``: run by a launcher (``ACCELERATE_USE_DEEPSPEED`` or ``WORLD_SIZE`` is set);
    ``world_size`` / ``local_world_size``: processes in all / on this machine; ``cpu``:
    ``--cpu``; ``deepspeed``: a DeepSpeed launch, with its ``deepspeed_config_file`` (None when
    the launch file gives the ZeRO keys inline), ``zero_stage`` (accelerate's default 2 when
    unset) and the offload devices (None when unset).
    """

    launched: bool
    world_size: int
    local_world_size: int
    cpu: bool
    deepspeed: bool
    deepspeed_config_file: str | None
    zero_stage: int
    offload_optimizer_device: str | None
    offload_param_device: str | None

    @property
    def machines(self) -> int:
        return max(1, self.world_size // self.local_world_size)


def launch_env(env: Mapping[str, str] | None = None) -> LaunchEnv:
    """The launch described by ``env`` (default: this process's environment)."""
    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE", "1"))
    return LaunchEnv(
        launched="ACCELERATE_USE_DEEPSPEED" in env or "WORLD_SIZE" in env,
        world_size=world, local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)),
        cpu=_env_true("ACCELERATE_USE_CPU", env), deepspeed=_env_true("ACCELERATE_USE_DEEPSPEED", env),
        deepspeed_config_file=env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE") or None,
        zero_stage=int(env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")),
        offload_optimizer_device=env.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE"),
        offload_param_device=env.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE"))


def process_state() -> Any:
    """accelerate's process state (``process_index``, ``num_processes``, ``is_main_process``,
    ``device``) for processes that score rather than train (evaluation); CPU processes when
    there is no CUDA device."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


@contextmanager
def whole_model_loading() -> Iterator[None]:
    """Models loaded in this block are not partitioned, even where a ZeRO-3 config is active (a
    training script built its ZeRO-3 arguments, so ``from_pretrained`` would partition every
    model it loads): transformers' DeepSpeed config is set aside, then restored."""
    from transformers.integrations import deepspeed as hf_deepspeed

    ref = hf_deepspeed._hf_deepspeed_config_weak_ref
    active = ref() if ref is not None else None
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if active is not None:
            hf_deepspeed.set_hf_deepspeed_config(active)


class Strategy:
    """Accelerator set-up, model preparation, backward/step, gathering and saving."""

    def __init__(self, *, mixed_precision: str = "auto", log_with: list[str] | None = None,
                 project_dir: str | Path | None = None) -> None:
        from accelerate import Accelerator
        from accelerate.utils import (
            DistributedDataParallelKwargs,
            GradientAccumulationPlugin,
            InitProcessGroupKwargs,
            ProjectConfiguration,
        )

        launch = launch_env()
        self.uses_deepspeed = launch.deepspeed
        cuda = torch.cuda.is_available() and not launch.cpu
        if mixed_precision == "auto":
            mixed_precision = "bf16" if cuda else "no"
        handlers: list[Any] = []
        if self.uses_deepspeed and not cuda:
            handlers.append(InitProcessGroupKwargs(backend="gloo"))
        elif not self.uses_deepspeed:
            handlers.append(DistributedDataParallelKwargs(find_unused_parameters=False))
        self.accelerator = Accelerator(
            cpu=not cuda and not self.uses_deepspeed,
            mixed_precision=mixed_precision,
            gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=1, sync_with_dataloader=False),
            step_scheduler_with_optimizer=False,
            kwargs_handlers=handlers,
            log_with=[t for t in (log_with or []) if t != "none"] or None,
            project_config=ProjectConfiguration(project_dir=str(project_dir)) if project_dir else None,
        )
        self.mixed_precision = mixed_precision
        self.zero_stage = 0
        if self.uses_deepspeed:
            self.zero_stage = int(self.accelerator.state.deepspeed_plugin.deepspeed_config
                                  .get("zero_optimization", {}).get("stage", 0))

    # -- facts -------------------------------------------------------------------------------
    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def mode(self) -> str:
        """A short name of the distributed mode, for logs and run_summary.json."""
        if self.uses_deepspeed:
            return f"zero{self.zero_stage}"
        return "ddp" if self.world_size > 1 else "single"

    # -- set-up ------------------------------------------------------------------------------
    @staticmethod
    def seed_everything(seed: int) -> None:
        """Seed python, numpy and torch (every device) the way accelerate does."""
        from accelerate.utils import set_seed

        set_seed(seed)

    def configure_batches(self, *, micro_batch_size: int, accumulation: int, max_grad_norm: float) -> None:
        """Tell accelerate (and DeepSpeed's config, whose batch keys are "auto") the batch geometry."""
        self.accelerator.gradient_accumulation_steps = accumulation
        if self.uses_deepspeed:
            ds = self.accelerator.state.deepspeed_plugin.deepspeed_config
            ds["train_micro_batch_size_per_gpu"] = micro_batch_size
            ds["gradient_accumulation_steps"] = accumulation
            ds["train_batch_size"] = micro_batch_size * accumulation * self.world_size
            ds["gradient_clipping"] = max_grad_norm

    def build_model(self, factory: Callable[[], torch.nn.Module]) -> torch.nn.Module:
        """Build the model; under ZeRO-3 init, check that transformers will partition it at load."""
        if self.uses_deepspeed and self.accelerator.state.deepspeed_plugin.zero3_init_flag:
            from transformers.integrations import is_deepspeed_zero3_enabled

            if not is_deepspeed_zero3_enabled():
                raise RuntimeError("ZeRO-3 init is on but transformers does not see the DeepSpeed config: "
                                   "the Accelerator must exist (and be kept alive) before the model is built")
        return factory()

    def prepare(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
        """Wrap the model (DDP / DeepSpeed engine) and the optimiser. DataLoaders stay ours: the
        sampler in sampler.py already shards them, and its cursor is the resume state."""
        if self.uses_deepspeed:
            self._fill_hidden_size_keys(model)
        return self.accelerator.prepare(model, optimizer)

    def _fill_hidden_size_keys(self, model: torch.nn.Module) -> None:
        """DeepSpeed bucket sizes left "auto" from the language model's width (accelerate only looks
        at ``config.hidden_size``, which vision-language configs keep in ``text_config``)."""
        config = getattr(model, "config", None)
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        hidden = getattr(text, "hidden_size", None)
        if hidden is None:
            return
        zero = self.accelerator.state.deepspeed_plugin.deepspeed_config.setdefault("zero_optimization", {})
        for key, value in (("reduce_bucket_size", hidden * hidden),
                           ("stage3_prefetch_bucket_size", int(0.9 * hidden * hidden)),
                           ("stage3_param_persistence_threshold", 10 * hidden)):
            if zero.get(key) == "auto":
                zero[key] = value

    def unwrap(self, model: Any) -> torch.nn.Module:
        return self.accelerator.unwrap_model(model)

    @contextmanager
    def main_process_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. writes a cache), the others after it (and read it)."""
        with self.accelerator.main_process_first():
            yield

    # -- trackers ----------------------------------------------------------------------------
    def init_trackers(self, project: str, *, config: dict[str, Any], run_name: str) -> None:
        """Start the configured trackers (TensorBoard, W&B) on rank 0."""
        self.accelerator.init_trackers(project, config=config, init_kwargs={"wandb": {"name": run_name}})

    def log(self, values: dict[str, float], *, step: int) -> None:
        """Send numbers to the trackers (rank 0)."""
        self.accelerator.log(values, step=step)

    # -- one micro batch ---------------------------------------------------------------------
    @contextmanager
    def micro_step(self, model: Any) -> Iterator[None]:
        """Context of one micro batch: gradient sync (DDP) and the optimiser step (DeepSpeed) only
        happen on the last micro batch of an optimiser step."""
        with self.accelerator.accumulate(model):
            yield

    @property
    def is_step_boundary(self) -> bool:
        return self.accelerator.sync_gradients

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def clip_and_step(self, model: Any, optimizer: Any, max_grad_norm: float) -> float:
        """Clip (global norm) and step; returns the pre-clipping gradient norm. Under DeepSpeed the
        engine already clipped and stepped inside ``backward`` and this reads its norm."""
        if self.uses_deepspeed or max_grad_norm > 0:
            norm = self.accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        else:
            grads = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
            norm = torch.stack(grads).norm() if grads else torch.zeros(())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(norm) if norm is not None else float("nan")

    def set_lr(self, optimizer: Any, lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr

    # -- communication -----------------------------------------------------------------------
    def sum(self, values: list[float]) -> list[float]:
        """Sum a few numbers over ranks (once per logged optimiser step)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        return self.accelerator.reduce(t, reduction="sum").tolist() if self.world_size > 1 else t.tolist()

    def barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    # -- saving ------------------------------------------------------------------------------
    def save_state(self, directory: Path) -> None:
        """Model, optimiser and RNG states of every rank (DeepSpeed: its own partitioned layout)."""
        self.accelerator.save_state(str(directory), safe_serialization=False)

    def load_state(self, directory: Path) -> None:
        self.accelerator.load_state(str(directory))

    def save_model(self, model: Any, directory: Path) -> None:
        """``save_pretrained`` of the full model on rank 0 (ZeRO-3: gathered from every rank)."""
        unwrapped = self.unwrap(model)
        if self.zero_stage == 3:
            state = self.accelerator.get_state_dict(model)  # collective; full state on rank 0 only
            if self.is_main:
                # transformers 5 records an extra PrefixChange when from_pretrained runs under
                # zero.Init, and reverting it on save writes "model.model.layers..." keys that no
                # longer load. Without the record it reverts the default mapping, as a 1-process
                # save does (decisions.md D-TRAIN-5).
                hf = getattr(unwrapped, "hf_model", unwrapped)
                recorded = getattr(hf, "_weight_conversions", None)
                hf._weight_conversions = None
                try:
                    unwrapped.save_pretrained(str(directory), state_dict=state)
                finally:
                    hf._weight_conversions = recorded
        elif self.is_main:
            unwrapped.save_pretrained(str(directory))
        self.barrier()

    def end(self) -> None:
        self.accelerator.end_training()
