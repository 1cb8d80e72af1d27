"""Typed run configuration: dataclasses, YAML loading, dotted overrides, validation.

A run is described by one YAML file (``configs/...``) plus ``key=value`` overrides on the command
line (``train.lr=2e-5``). Every field carries its help text in ``metadata["help"]``; defaults are
the paper's protocol (METHOD.md 6). Unknown keys and invalid values are all collected and reported
at once, each naming the file and line (or the override), the key, the value and the fix.

This module imports no torch, so configs can be read anywhere (tests, CI, data-prep jobs); validating
``model.backbone`` and ``model.head`` imports their registries (and so torch) at that moment, so the
choices are whatever is registered, including a user's ``model.plugins``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from mprm.data.settings import STRATEGIES
from mprm.errors import UserError

#: Input layouts of the reward model (``model.prompt_style``, ``eval.py --prompt-style``, ``mprm format
#: --prompt-style``; decisions.md D-MODELS-10). Here, in a module without torch, so every parser can
#: offer them; ``mprm.models.prompting`` implements them.
PROMPT_STYLES = ("train", "authors_eval")


def _f(default: Any, help: str, choices: tuple[Any, ...] | None = None, registry: str | None = None,
       **kw: Any) -> Any:
    meta: dict[str, Any] = {"help": help}
    if choices is not None:
        meta["choices"] = choices
    if registry is not None:
        meta["registry"] = registry
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta, **kw)


@dataclass
class ModelConfig:
    path: str = _f("", "base checkpoint: a folder (a transformers layout loadable by from_pretrained) or a hub id "
                       "such as Qwen/Qwen2.5-VL-7B-Instruct (resolved through the Hugging Face cache)")
    revision: Optional[str] = _f(None, "hub revision (branch, tag or commit) of a model.path hub id; null = main")
    backbone: str = _f("qwen2_5_vl", "backbone family of model.path (the backbone registry, docs/models.md)",
                       registry="backbone")
    head: str = _f("yes_no", "step reward head: logits of 'Yes'/'No' at each <prm> (METHOD.md 6); also "
                             "linear (a new Linear(hidden, 1) with BCE); the head registry", registry="head")
    plugins: list = _f([], "Python modules imported before the model is built, e.g. one that calls "
                           "register_backbone / register_head (docs/models.md)")
    separator: str = _f("<prm>\n\n", "what follows each step in training; holds <prm> once (METHOD.md 10.4)")
    max_length: int = _f(8192, "token budget per example; later steps are cut (METHOD.md 6)")
    prompt_style: str = _f("train", "train: the authors' training layout (empty user turn, assistant turn with "
                                    "image + Question/Process); authors_eval: their VisualProcessBench script's "
                                    "input (steps joined by <prm> alone, <imageN> tags removed; D-MODELS-10)",
                           choices=PROMPT_STYLES)
    freeze_vision: bool = _f(True, "freeze the vision encoder; LM and projector are trained (METHOD.md 6)")
    lora_rank: int = _f(0, "LoRA rank on the language model; 0 = full fine-tuning (the paper's setting)")
    lora_alpha: int = _f(32, "LoRA alpha (used when lora_rank > 0)")
    lora_dropout: float = _f(0.05, "LoRA dropout (used when lora_rank > 0)")
    dtype: str = _f("auto", "weights' dtype: auto = bf16 under DeepSpeed bf16 (fp32 master weights in its optimiser), "
                            "else fp32 master weights with bf16 autocast; bfloat16 = pure bf16 training (half the "
                            "memory outside DeepSpeed); float32", choices=("auto", "bfloat16", "float32"))
    attn_implementation: str = _f("sdpa", "attention kernel", choices=("sdpa", "eager", "flash_attention_2"))
    multi_image: str = _f("canvas", "several images: one canvas (authors' evaluation) or separate",
                          choices=("canvas", "separate"))
    max_tiles: Optional[int] = _f(None, "tiles per image for tiling families (InternVL); null = the checkpoint's "
                                        "or the family's default (the paper's 6; docs/models.md, the zoo table)")
    min_pixels: Optional[int] = _f(None, "min_pixels for the Qwen-VL families; null = the checkpoint's or the "
                                         "family's default (the paper's 784 for Qwen2.5-VL)")
    max_pixels: Optional[int] = _f(None, "max_pixels for the Qwen-VL families; null = the checkpoint's or the "
                                         "family's default (the paper's 200704 for Qwen2.5-VL); a knob another "
                                         "family does not have is an error")


@dataclass
class DataConfig:
    train: str = _f("", "training data: a corpus folder (annotations/*.jsonl), a .jsonl/.parquet, or a selected.jsonl")
    image_root: str = _f("", "folder the records' image paths are relative to; empty = the folder holding "
                             "annotations/ when data.train is <root>/annotations (VisualPRM400K as downloaded), "
                             "else data.train's folder")
    label_threshold: float = _f(0.0, "hard label y = 1[s > tau] (METHOD.md 2); ignored when soft_labels")
    soft_labels: bool = _f(False, "train on the MC score itself as the target (METHOD.md 2 ablation)")
    group_by_length: bool = _f(True, "sort each optimiser step's examples by length into micro batches")
    num_workers: int = _f(2, "DataLoader worker processes loading and preprocessing images")
    cache_dir: str = _f("", "tokenisation cache; empty = OUTPUT_DIR/cache")
    lenient: bool = _f(False, "skip corpus records that fail validation instead of stopping")
    unannotated: str = _f("negative", "steps the MC generator never rolled out (num_mc_total 0, METHOD.md 9): "
                          "label them negative or truncate the rollout before them", choices=("negative", "truncate"))


@dataclass
class SelectionConfig:
    strategy: str = _f("full", "subset to train on (METHOD.md 3-4); full = every rollout",
                       choices=STRATEGIES)
    fraction: float = _f(1.0, "kept fraction rho per source file (METHOD.md 3)")
    alpha: float = _f(0.05, "BIS alpha (METHOD.md 3; the authors used 0.2 at rho = 10%)")
    seed: int = _f(0, "seed of the random baselines")
    per_source: bool = _f(True, "rank within each source file (METHOD.md 3); false = all sources together")


@dataclass
class TrainConfig:
    output_dir: str = _f("", "run folder: config, selection, checkpoints, metrics, final model")
    global_batch_size: int = _f(512, "examples per optimiser step = micro x accumulation x world size")
    micro_batch_size: int = _f(2, "examples per forward pass per process")
    epochs: int = _f(1, "passes over the data (the paper trains ONE pass)")
    max_steps: int = _f(0, "cap on optimiser steps; 0 = as many as the epochs give")
    lr: float = _f(1e-5, "peak learning rate (AdamW)")
    weight_decay: float = _f(0.05, "AdamW weight decay")
    adam_beta1: float = _f(0.9, "AdamW beta1")
    adam_beta2: float = _f(0.999, "AdamW beta2")
    adam_eps: float = _f(1e-8, "AdamW epsilon")
    warmup_ratio: float = _f(0.05, "fraction of optimiser steps of linear warm-up, then cosine to 0")
    max_grad_norm: float = _f(1.0, "gradient clipping by global norm; 0 = off")
    mixed_precision: str = _f("auto", "auto = bf16 on GPU, no on CPU", choices=("auto", "bf16", "no"))
    gradient_checkpointing: bool = _f(True, "recompute activations in backward to save memory")
    loss_normalization: str = _f(
        "optimizer_step",
        "optimizer_step: mean over all labelled steps of the optimiser step across ranks; "
        "micro_batch: the authors' per-micro-batch mean (METHOD.md 10.6)",
        choices=("optimizer_step", "micro_batch"))
    save_every: int = _f(50, "checkpoint every N optimiser steps (and at the end); 0 = only at the end")
    keep_last: int = _f(2, "resumable checkpoints (model + optimiser state) to keep")
    keep_models: bool = _f(True, "keep the model/ of older checkpoints when pruning their optimiser state")
    resume: str = _f("auto", "auto = latest complete checkpoint in output_dir, none, or a checkpoint folder")
    seed: int = _f(0, "seed of initialisation, data order and RNG streams")
    log_every: int = _f(1, "write metrics every N optimiser steps")
    eval_every: int = _f(0, "evaluate on eval.dev every N optimiser steps; 0 = off")


@dataclass
class EvalConfig:
    dev: str = _f("", "held-out labelled .jsonl (training format or VisualProcessBench) for eval_every")
    image_root: str = _f("", "image root of eval.dev; empty = data.image_root")
    batch_size: int = _f(8, "examples per scoring forward pass")
    threshold: float = _f(0.5, "a step is predicted correct when its score >= threshold")
    max_items: int = _f(0, "evaluate only the first N dev items; 0 = all")


@dataclass
class LoggingConfig:
    report_to: list = _f(["tensorboard"], "trackers: tensorboard, wandb (optional) or none")
    project: str = _f("mprm", "tracker project name")
    run_name: str = _f("", "tracker run name; empty = the output folder's name")
    progress_bar: bool = _f(True, "tqdm bar on rank 0 (stderr)")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]
TRACKERS = ("tensorboard", "wandb", "none")


class ConfigError(UserError):
    """Every problem found in a config, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in self.problems))


def field_help() -> dict[str, str]:
    """``{"section.key": help}`` for every field (used by ``train.py --help``)."""
    out = {}
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            choices = f.metadata.get("choices") or (registry_choices(f.metadata["registry"]) if "registry" in f.metadata else None)
            extra = f" (one of: {', '.join(map(str, choices))})" if choices else ""
            out[f"{name}.{f.name}"] = f"{f.metadata['help']}{extra} [default: {_default(f)!r}]"
    return out


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def _field_type(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def _coerce(value: Any, tp: Any, *, from_text: bool) -> Any:
    """Convert ``value`` to ``tp``; raise ValueError with a short reason."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (from_text and str(value).lower() in ("none", "null", "")):
            return None
        return _coerce(value, args[0], from_text=from_text)
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if from_text and text in ("true", "yes", "1", "on"):
            return True
        if from_text and text in ("false", "no", "0", "off"):
            return False
        raise ValueError("expected true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            return value
        if from_text or isinstance(value, str):
            try:
                return int(str(value).replace("_", ""))
            except ValueError:
                raise ValueError("expected an integer") from None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError("expected an integer")
    if tp is float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(str(value))
        except ValueError:
            raise ValueError("expected a number") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ValueError("expected a string")
        return "" if value is None else str(value)
    if tp is list or typing.get_origin(tp) is list:
        if isinstance(value, list):
            return [str(v) for v in value]
        text = str(value).strip()
        if text.startswith("["):
            loaded = yaml.safe_load(text)
            if not isinstance(loaded, list):
                raise ValueError("expected a list")
            return [str(v) for v in loaded]
        return [t.strip() for t in text.split(",") if t.strip()]
    raise ValueError(f"unsupported type {tp}")


def _yaml_lines(text: str) -> dict[str, int]:
    """1-based line of every ``section.key`` in a YAML text (for error messages)."""
    lines: dict[str, int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if not isinstance(root, yaml.MappingNode):
        return lines
    for knode, vnode in root.value:
        lines[str(knode.value)] = knode.start_mark.line + 1
        if isinstance(vnode, yaml.MappingNode):
            for k2, _ in vnode.value:
                lines[f"{knode.value}.{k2.value}"] = k2.start_mark.line + 1
    return lines


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(options)}"


def _set(cfg: Config, dotted: str, raw: Any, *, where: str, from_text: bool, problems: list[str]) -> None:
    parts = dotted.split(".")
    if len(parts) != 2 or parts[0] not in SECTIONS:
        head = parts[0]
        if head not in SECTIONS:
            problems.append(f"{where}: unknown section {head!r} in {dotted!r}; {_suggest(head, list(SECTIONS))}")
        else:
            problems.append(f"{where}: {dotted!r} must be written section.key, e.g. {head}.{dataclasses.fields(SECTIONS[head])[0].name}")
        return
    section, key = parts
    cls = SECTIONS[section]
    names = [f.name for f in dataclasses.fields(cls)]
    if key not in names:
        problems.append(f"{where}: unknown key {dotted!r}; {_suggest(key, names)}")
        return
    try:
        value = _coerce(raw, _field_type(cls, key), from_text=from_text)
    except ValueError as exc:
        problems.append(f"{where}: {dotted} = {raw!r}: {exc}")
        return
    setattr(getattr(cfg, section), key, value)


def parse_override(text: str) -> tuple[str, str]:
    """Split ``section.key=value``; the value stays text and is parsed by the field's type."""
    if "=" not in text:
        raise ConfigError([f"override {text!r}: expected section.key=value, e.g. train.lr=2e-5"])
    key, value = text.split("=", 1)
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config, apply dotted ``key=value`` overrides, validate; raise ConfigError listing
    every problem (unknown keys, wrong types, invalid values) at once."""
    cfg = Config()
    problems: list[str] = []
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError([f"{path}: no such config file"])
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
        lines = _yaml_lines(text)
        if not isinstance(data, dict):
            raise ConfigError([f"{path}: the top level must be a mapping of sections ({', '.join(SECTIONS)})"])
        for section, body in data.items():
            where = f"{path}:{lines.get(str(section), 1)}"
            if section not in SECTIONS:
                problems.append(f"{where}: unknown section {section!r}; {_suggest(str(section), list(SECTIONS))}")
                continue
            if body is None:
                continue
            if not isinstance(body, dict):
                problems.append(f"{where}: section {section!r} must be a mapping of key: value")
                continue
            for key, raw in body.items():
                dotted = f"{section}.{key}"
                _set(cfg, dotted, raw, where=f"{path}:{lines.get(dotted, lines.get(str(section), 1))}",
                     from_text=False, problems=problems)
    for item in overrides:
        try:
            key, value = parse_override(item)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        _set(cfg, key, value, where=f"override {item!r}", from_text=True, problems=problems)
    problems.extend(validate(cfg))
    if problems:
        raise ConfigError(problems)
    return cfg


def registry_choices(kind: str) -> list[str]:
    """Names registered for a component kind (``backbone``, ``head``): the config's choices.

    Imported here, at validation time, so that this module itself imports no torch.
    """
    if kind == "backbone":
        from mprm.models.backbones import backbone_names

        return backbone_names()
    if kind == "head":
        from mprm.models.heads import head_names

        return head_names()
    raise KeyError(f"unknown registry {kind!r}")


def import_plugins(modules: list[str]) -> list[str]:
    """Import ``model.plugins`` (they register backbones or heads); returns the problems."""
    import importlib

    problems = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            problems.append(f"model.plugins contains {name!r}: cannot import it ({exc}); make it importable "
                            "(installed, or on PYTHONPATH) or remove it")
    return problems


def validate(cfg: Config) -> list[str]:
    """Value checks that types alone cannot express; returns the problems (empty when valid)."""
    p: list[str] = import_plugins(cfg.model.plugins)
    for name, cls in SECTIONS.items():
        section = getattr(cfg, name)
        for f in dataclasses.fields(cls):
            value = getattr(section, f.name)
            choices = f.metadata.get("choices")
            if "registry" in f.metadata:
                choices = registry_choices(f.metadata["registry"])
            if choices and value not in choices:
                p.append(f"{name}.{f.name} = {value!r}: choose one of {', '.join(map(str, choices))}"
                         + (f" (register another with register_{f.metadata['registry']}, docs/models.md)"
                            if "registry" in f.metadata else ""))
    m, d, s, t, e, lg = cfg.model, cfg.data, cfg.selection, cfg.train, cfg.eval, cfg.logging

    def need(cond: bool, msg: str) -> None:
        if not cond:
            p.append(msg)

    need(m.max_length > 0, f"model.max_length = {m.max_length}: must be > 0")
    need(m.lora_rank >= 0, f"model.lora_rank = {m.lora_rank}: must be >= 0 (0 = full fine-tuning)")
    need(m.separator.count("<prm>") == 1, f"model.separator = {m.separator!r}: must contain <prm> exactly once")
    for name in ("max_tiles", "min_pixels", "max_pixels"):
        value = getattr(m, name)
        need(value is None or value > 0, f"model.{name} = {value}: must be > 0 or null")
    need(d.label_threshold >= 0.0 and d.label_threshold < 1.0,
         f"data.label_threshold = {d.label_threshold}: must be in [0, 1) (METHOD.md 2: 0, 1/16, 2/16)")
    need(d.num_workers >= 0, f"data.num_workers = {d.num_workers}: must be >= 0")
    need(0.0 < s.fraction <= 1.0, f"selection.fraction = {s.fraction}: must be in (0, 1], e.g. 0.1 for 10%")
    need(s.alpha >= 0.0, f"selection.alpha = {s.alpha}: must be >= 0")
    if s.strategy == "full" and s.fraction != 1.0:
        p.append(f"selection.fraction = {s.fraction} with selection.strategy = full: set a strategy (bis, random, ...) "
                 "or fraction 1.0")
    need(t.global_batch_size > 0, f"train.global_batch_size = {t.global_batch_size}: must be > 0")
    need(t.micro_batch_size > 0, f"train.micro_batch_size = {t.micro_batch_size}: must be > 0")
    if t.global_batch_size > 0 and t.micro_batch_size > 0 and t.global_batch_size % t.micro_batch_size:
        p.append(f"train.global_batch_size = {t.global_batch_size} is not a multiple of train.micro_batch_size = "
                 f"{t.micro_batch_size}: pick sizes with global = micro x accumulation x world size")
    need(t.epochs >= 1, f"train.epochs = {t.epochs}: must be >= 1")
    need(t.max_steps >= 0, f"train.max_steps = {t.max_steps}: must be >= 0 (0 = one pass)")
    need(t.lr > 0, f"train.lr = {t.lr}: must be > 0")
    need(t.weight_decay >= 0, f"train.weight_decay = {t.weight_decay}: must be >= 0")
    need(0 <= t.adam_beta1 < 1 and 0 <= t.adam_beta2 < 1, f"train.adam_beta1/adam_beta2 = {t.adam_beta1}/{t.adam_beta2}: must be in [0, 1)")
    need(t.adam_eps > 0, f"train.adam_eps = {t.adam_eps}: must be > 0")
    need(0.0 <= t.warmup_ratio < 1.0, f"train.warmup_ratio = {t.warmup_ratio}: must be in [0, 1)")
    need(t.max_grad_norm >= 0, f"train.max_grad_norm = {t.max_grad_norm}: must be >= 0 (0 = no clipping)")
    need(t.save_every >= 0, f"train.save_every = {t.save_every}: must be >= 0 (0 = only at the end)")
    need(t.keep_last >= 1, f"train.keep_last = {t.keep_last}: must be >= 1 (the latest checkpoint is needed to resume)")
    need(t.log_every >= 1, f"train.log_every = {t.log_every}: must be >= 1")
    need(t.eval_every >= 0, f"train.eval_every = {t.eval_every}: must be >= 0 (0 = off)")
    if t.eval_every > 0 and not e.dev:
        p.append(f"train.eval_every = {t.eval_every} needs eval.dev (a held-out labelled .jsonl); set it or eval_every=0")
    need(e.batch_size > 0, f"eval.batch_size = {e.batch_size}: must be > 0")
    need(0.0 <= e.threshold <= 1.0, f"eval.threshold = {e.threshold}: must be in [0, 1]")
    need(e.max_items >= 0, f"eval.max_items = {e.max_items}: must be >= 0")
    for tracker in lg.report_to:
        need(tracker in TRACKERS, f"logging.report_to contains {tracker!r}: choose from {', '.join(TRACKERS)}")
    return p


def weights_dtype(model_dtype: str, *, deepspeed: bool, mixed_precision: str) -> str:
    """The dtype the model's weights are built in (``model.dtype``), as a name; the one rule that
    training (``mprm.train.loop.model_dtype``) and the memory plan (``mprm.train.plan``) share.

    ``auto``: bf16 under DeepSpeed with bf16 mixed precision (DeepSpeed keeps fp32 master weights
    in its optimiser), else fp32 (master weights; bf16 compute comes from autocast).
    ``mixed_precision`` is the resolved one (``bf16`` or ``no``).
    """
    if model_dtype != "auto":
        return model_dtype
    return "bfloat16" if deepspeed and mixed_precision == "bf16" else "float32"


def checked(cfg: Config) -> Config:
    """``cfg`` after :func:`validate` (a config built in code is checked like a YAML one)."""
    problems = validate(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def check_required(cfg: Config) -> None:
    """Fields a training run cannot start without (a config file may leave them to overrides)."""
    missing = [k for k, v in (("model.path", cfg.model.path), ("data.train", cfg.data.train),
                              ("train.output_dir", cfg.train.output_dir)) if not v]
    if missing:
        raise ConfigError([f"{k} is empty: set it in the config file or as {k}=VALUE on the command line" for k in missing])


def accumulation_steps(global_batch_size: int, micro_batch_size: int, world_size: int) -> int:
    """global = micro x accumulation x world (METHOD.md 6: 512 = 2 x 64 x 4); a clear error otherwise."""
    per_step = micro_batch_size * world_size
    if global_batch_size % per_step:
        lo = max(per_step, global_batch_size // per_step * per_step)
        raise ConfigError([
            f"train.global_batch_size = {global_batch_size} is not divisible by train.micro_batch_size x world size "
            f"= {micro_batch_size} x {world_size} = {per_step}: use a global batch that is a multiple of {per_step} "
            f"(e.g. {lo} or {lo + per_step}) or change the micro batch / number of processes"])
    return global_batch_size // per_step


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML (saved as OUTPUT_DIR/config.yaml; loadable by load_config)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True)


def from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config from ``to_dict`` output (validated)."""
    cfg = Config()
    problems: list[str] = []
    for section, body in data.items():
        for key, value in (body or {}).items():
            _set(cfg, f"{section}.{key}", value, where="dict", from_text=False, problems=problems)
    problems.extend(validate(cfg))
    if problems:
        raise ConfigError(problems)
    return cfg


def dumps(cfg: Config) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True)
