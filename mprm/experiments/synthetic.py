"""Small end-to-end experiments on synthetic data: the demo and the CPU-scale data-efficiency study.

Each step goes through the real entry points' libraries: ``mprm.data.synth.generate`` (``mprm synth``),
``mprm.train.loop.train`` (``train.py``, which selects with ``mprm.data.select_corpus``) and
``mprm.eval`` (``eval.py``), with typed configs built here (no command-line strings).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

from mprm.config import Config, checked
from mprm.data.synth import NoiseSettings, generate
from mprm.models.heads import DEFAULT_HEAD


class SynthSplit(NamedTuple):
    """A written synthetic corpus: the data folder (also the image root) and its benchmark split."""

    data: Path
    dev: Path
    test: Path
    n_dev: int
    n_test: int


def prepare_synth(out: Path, *, sources: int, rollouts: int, benchmark_items: int, seed: int,
                  noise: NoiseSettings | None = None) -> SynthSplit:
    """Write the synthetic corpus and split its benchmark: every third item -> dev, the rest -> test."""
    generate(out, sources=sources, rollouts=rollouts, benchmark_items=benchmark_items, seed=seed, noise=noise)
    lines = [ln for ln in (out / "benchmark" / "test.jsonl").read_text(encoding="utf-8").splitlines() if ln.strip()]
    dev, test = out / "benchmark" / "dev.jsonl", out / "benchmark" / "test_split.jsonl"
    dev.write_text("".join(ln + "\n" for i, ln in enumerate(lines) if i % 3 == 0), encoding="utf-8")
    test.write_text("".join(ln + "\n" for i, ln in enumerate(lines) if i % 3 != 0), encoding="utf-8")
    n_dev = len(range(0, len(lines), 3))
    return SynthSplit(out, dev, test, n_dev, len(lines) - n_dev)


def train_config(*, backbone_dir: Path, backbone: str, data: Path, output_dir: Path, strategy: str,
                 fraction: float, alpha: float = 0.05, seed: int = 0, batch_size: int = 16, lr: float = 1e-3,
                 epochs: int = 1, head: str = DEFAULT_HEAD) -> Config:
    """The training config of a one-process CPU run on a synthetic corpus: the paper's recipe
    (METHOD.md 6) scaled down, no intermediate checkpoints. Validated like a YAML config."""
    cfg = Config()
    cfg.model.path, cfg.model.backbone, cfg.model.head, cfg.model.max_length = str(backbone_dir), backbone, head, 1024
    cfg.data.train, cfg.data.image_root, cfg.data.num_workers = str(data / "annotations"), str(data), 0
    cfg.selection.strategy, cfg.selection.fraction = strategy, fraction
    cfg.selection.alpha, cfg.selection.seed = alpha, seed
    t = cfg.train
    t.output_dir, t.global_batch_size, t.micro_batch_size = str(output_dir), batch_size, batch_size
    t.lr, t.epochs, t.save_every, t.keep_last, t.resume, t.seed = lr, epochs, 1_000_000, 1, "none", seed
    cfg.logging.report_to = ["none"]
    return checked(cfg)


def train_reward_model(cfg: Config) -> dict[str, Any]:
    """Run train.py's recipe in this process; returns its run summary."""
    from mprm.train.loop import train

    return train(cfg, argv=list(sys.argv))


def evaluate(model_dir: Path, test: Path, data: Path, out: Path, dev: Path) -> dict[str, Any]:
    """eval.py on ``test`` with the threshold also tuned on ``dev``; returns metrics.json's content."""
    from mprm.eval.loading import LazyModel
    from mprm.eval.pipeline import evaluate_benchmark
    from mprm.eval.settings import EvalSettings

    settings = EvalSettings(image_root=data, batch_size=16)
    metrics = evaluate_benchmark(LazyModel.from_spec(model_dir, settings), test, out, settings, dev=dev)
    if metrics is None:
        raise RuntimeError("evaluate_benchmark returned no metrics in a single process")
    return metrics
