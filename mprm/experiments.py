"""Small end-to-end experiments on synthetic data: the demo and the CPU-scale data-efficiency study.

Each step goes through the real entry points' code: ``mprm.data.synth.generate`` (``mprm synth``),
``mprm.train.loop.train`` (``train.py``, which runs ``mprm select``) and
``mprm.eval.pipeline.evaluate_model`` (``eval.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from mprm.data.synth import NoiseSettings, generate


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


def train_overrides(*, backbone_dir: Path, backbone: str, data: Path, output_dir: Path, strategy: str,
                    fraction: float, alpha: float = 0.05, seed: int = 0, batch_size: int = 16, lr: float = 1e-3,
                    epochs: int = 1, head: str = "yes_no") -> list[str]:
    """``train.py`` overrides for a one-process CPU run on a synthetic corpus (no intermediate checkpoints)."""
    return [
        f"model.path={backbone_dir}", f"model.backbone={backbone}", f"model.head={head}",
        "model.max_length=1024",
        f"data.train={data / 'annotations'}", f"data.image_root={data}", "data.num_workers=0",
        f"selection.strategy={strategy}", f"selection.fraction={fraction}", f"selection.alpha={alpha}",
        f"selection.seed={seed}", f"train.output_dir={output_dir}", f"train.global_batch_size={batch_size}",
        f"train.micro_batch_size={batch_size}", f"train.lr={lr}", f"train.epochs={epochs}",
        "train.save_every=1000000", "train.keep_last=1", "train.resume=none", f"train.seed={seed}",
        "logging.report_to=[none]",
    ]


def train_reward_model(overrides: list[str]) -> dict[str, Any]:
    """Run train.py's loop in this process with ``overrides``; returns its run summary."""
    from mprm.config import load_config
    from mprm.train.loop import train

    return train(load_config(None, overrides), argv=["train.py", *overrides])


def evaluate(model_dir: Path, test: Path, data: Path, out: Path, dev: Path) -> dict[str, Any]:
    """eval.py on ``test`` with the threshold also tuned on ``dev``; returns metrics.json's content."""
    from mprm.eval.pipeline import evaluate_model

    metrics = evaluate_model(model_dir, test, data, out, batch_size=16, dev=dev)
    assert metrics is not None  # one process: rank 0
    return metrics
