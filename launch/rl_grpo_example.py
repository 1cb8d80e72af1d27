#!/usr/bin/env python
"""GRPO on image questions with a trained mprm reward model as the process reward (docs/rl.md).

Needs TRL: ``pip install -e ".[rl]"``. Tiny by default, on the CPU (about 15 s, most of it
imports): a tiny random Qwen2.5-VL policy, a tiny reward model and ``mprm synth`` image
questions are written under OUTPUT, then 2 GRPO steps run and the script prints what happened:

    python launch/rl_grpo_example.py --output runs/rl_tiny

Real models on GPUs, one process per GPU; each process keeps its own copy of the reward model on
its own GPU, beside its policy replica (``StepReward`` picks ``cuda:LOCAL_RANK``):

    accelerate launch --config_file launch/ddp.yaml launch/rl_grpo_example.py \\
        --policy Qwen/Qwen2.5-VL-7B-Instruct --reward-model runs/qwen2_5_vl_7b/bis10/final \\
        --questions bon.jsonl --image-root imgs --output runs/rl --steps 500 --bf16 \\
        --gradient-checkpointing --batch-size 4 --num-generations 8 --max-completion-length 1024 --lr 1e-6

(``launch/ddp.yaml`` holds a full 7B policy per GPU; for more, ZeRO-3 via ``launch/zero3.yaml``
shards the policy, the reward model stays whole in each process.) ``--questions`` is any JSONL
with ``question`` and ``image``/``images`` (paths under ``--image-root``): a Best-of-N file, a
VisualProcessBench file, or ``mprm synth`` output. Without torchvision (CPU machines) the policy's
processor is built without its video processor (:func:`mprm.rewards.image_only_processor`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mprm.eval.aggregate import AGGREGATES  # noqa: E402

#: What the policy is asked, after the question: steps separated by a blank line, the separator
#: StepReward splits on by default (and the one of VisualPRM400K's solutions).
INSTRUCTION = "Solve it step by step. Separate the steps with a blank line and end with 'The answer is ...'."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True, help="run folder (tiny models and synthetic questions go here too)")
    p.add_argument("--policy", help="policy checkpoint folder or hub id (default: a tiny random Qwen2.5-VL)")
    p.add_argument("--reward-model", help="a saved mprm reward model (default: a tiny untrained one, plumbing only)")
    p.add_argument("--questions", help="JSONL of image questions (default: `mprm synth` Best-of-N questions)")
    p.add_argument("--image-root", help="folder the --questions image paths are relative to")
    p.add_argument("--max-questions", type=int, default=None, help="use only the first N questions")
    p.add_argument("--aggregate", choices=tuple(AGGREGATES), default="min", help="step-score aggregate (default min)")
    p.add_argument("--reward-batch-size", type=int, default=8, help="completions per reward forward pass")
    p.add_argument("--steps", type=int, default=2, help="GRPO optimiser steps (default 2)")
    p.add_argument("--batch-size", type=int, default=4, help="completions per device per step (default 4)")
    p.add_argument("--num-generations", type=int, default=4, help="completions per prompt (default 4)")
    p.add_argument("--max-completion-length", type=int, default=24, help="tokens per completion (default 24)")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--bf16", action="store_true", help="bf16 policy training and reward model")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--measure-reward", action="store_true",
                   help="no training: time the reward alone on the Best-of-N candidates of --questions")
    return p.parse_args(argv)


def tiny_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the unset model and data arguments with tiny ones written under ``args.output``."""
    out = Path(args.output)
    if args.policy is None:
        from mprm.models.tiny import build_tiny

        args.policy = str(out / "tiny_policy")
        if not (out / "tiny_policy" / "config.json").is_file():
            build_tiny("qwen2_5_vl", args.policy, seed=1)
    if args.reward_model is None:
        from mprm.models import build_reward_model
        from mprm.models.tiny import build_tiny

        args.reward_model = str(out / "tiny_reward_model")
        if not (out / "tiny_reward_model" / "mprm_config.json").is_file():
            base = build_tiny("qwen2_5_vl", out / "tiny_reward_base", seed=0)
            build_reward_model(base).save_pretrained(args.reward_model)
    if args.questions is None:
        from mprm.data.synth import generate

        if not (out / "synth" / "synth.json").is_file():
            generate(out / "synth", sources=1, rollouts=1, benchmark_items=0, bon_items=16, seed=args.seed)
        args.questions, args.image_root = str(out / "synth" / "bon" / "test.jsonl"), str(out / "synth")
    return args


def question_dataset(path: str | Path, image_root: str | Path | None, limit: int | None = None) -> Any:
    """A TRL dataset: conversational ``prompt``, ``images`` (PIL), ``question`` and ``id`` columns.

    TRL puts the ``images`` into the prompt for the policy and hands every column to the reward.
    """
    from datasets import Dataset, Features, Image as ImageFeature, List, Value
    from PIL import Image

    from mprm.models import clean_question

    root = Path(image_root) if image_root is not None else Path(".")
    rows: dict[str, list[Any]] = {"prompt": [], "images": [], "question": [], "id": []}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            raw = json.loads(line)
            paths = raw.get("images", raw.get("image")) or []
            paths = [paths] if isinstance(paths, str) else paths
            if not isinstance(raw.get("question"), str) or not paths:
                raise ValueError(f"{path}:{n}: needs a 'question' string and an 'image'/'images' path")
            question = clean_question(raw["question"])
            images = []
            for p in paths:
                with Image.open(root / p) as im:
                    images.append(im.convert("RGB"))
            rows["prompt"].append([{"role": "user", "content": f"{question}\n{INSTRUCTION}"}])
            rows["images"].append(images)
            rows["question"].append(question)
            rows["id"].append(str(raw.get("id", n)))
            if limit is not None and len(rows["question"]) >= limit:
                break
    features = Features({"prompt": List({"role": Value("string"), "content": Value("string")}),
                         "images": List(ImageFeature()), "question": Value("string"), "id": Value("string")})
    return Dataset.from_dict(rows, features=features)


def policy_and_processor(policy: str, *, bf16: bool) -> tuple[Any, Any]:
    """The policy and its processor; without torchvision, the image-only Qwen-VL processor."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mprm.rewards import image_only_processor

    model = AutoModelForImageTextToText.from_pretrained(policy, dtype=torch.bfloat16 if bf16 else torch.float32)
    if importlib.util.find_spec("torchvision") is None:
        processor = image_only_processor(policy)
    else:
        processor = AutoProcessor.from_pretrained(policy)
    return model, processor


def make_trainer(args: argparse.Namespace, reward_funcs: list[Any], dataset: Any, model: Any, processor: Any,
                 **config: Any) -> Any:
    """GRPOTrainer with the settings of ``args`` (CPU when there is no CUDA device); ``config``:
    further ``GRPOConfig`` fields."""
    import torch
    from trl import GRPOConfig, GRPOTrainer

    config = GRPOConfig(
        output_dir=str(Path(args.output) / "grpo"), max_steps=args.steps, learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size, num_generations=args.num_generations,
        max_completion_length=args.max_completion_length, bf16=args.bf16, use_cpu=not torch.cuda.is_available(),
        activation_checkpointing=args.gradient_checkpointing, logging_steps=1, save_strategy="no", report_to="none",
        seed=args.seed, **config,
    )
    return GRPOTrainer(model=model, reward_funcs=reward_funcs, args=config, train_dataset=dataset,
                       processing_class=processor)


def measure_reward(args: argparse.Namespace) -> dict[str, float]:
    """Time :class:`StepReward` on every candidate of a Best-of-N file, as GRPO would call it
    (calls of ``batch_size * num_generations`` completions); prints and returns the rates."""
    import torch

    from mprm.eval.bon import read_bon
    from mprm.rewards import StepReward, split_steps

    rows = read_bon(args.questions)[:args.max_questions]
    root = Path(args.image_root or ".")
    samples = [(r, "\n\n".join(c["steps"])) for r in rows for c in r["candidates"]]
    reward = StepReward(args.reward_model, aggregate=args.aggregate, batch_size=args.reward_batch_size,
                        image_root=root, image_column="images", dtype=torch.bfloat16 if args.bf16 else None)
    per_call = args.batch_size * args.num_generations
    t0 = time.perf_counter()
    n_steps = sum(len(split_steps(text)) for _, text in samples)
    split_s = time.perf_counter() - t0
    reward([[{"role": "user", "content": "warm-up"}]], [samples[0][1]], images=[samples[0][0]["images"]])
    t0 = time.perf_counter()
    for i in range(0, len(samples), per_call):
        chunk = samples[i:i + per_call]
        reward([[{"role": "user", "content": r["question"]}] for r, _ in chunk], [text for _, text in chunk],
               images=[r["images"] for r, _ in chunk], question=[r["question"] for r, _ in chunk])
    total = time.perf_counter() - t0
    rates = {"completions": len(samples), "steps": n_steps, "seconds": total, "split_seconds": split_s,
             "completions_per_s": len(samples) / total, "steps_per_s": n_steps / total}
    print(f"reward: {len(samples)} completions, {n_steps} steps in {total:.2f} s on {reward.device} "
          f"({rates['completions_per_s']:.1f} completions/s, {rates['steps_per_s']:.0f} steps/s; "
          f"splitting {split_s * 1000:.1f} ms; calls of {per_call}, forward batches of {args.reward_batch_size})")
    return rates


def main(argv: list[str] | None = None) -> int:
    import torch

    from mprm.rewards import StepReward

    start = time.perf_counter()
    args = tiny_defaults(parse_args(argv))
    if args.measure_reward:
        measure_reward(args)
        return 0
    dataset = question_dataset(args.questions, args.image_root, args.max_questions)
    model, processor = policy_and_processor(args.policy, bf16=args.bf16)
    reward = StepReward(args.reward_model, aggregate=args.aggregate, batch_size=args.reward_batch_size,
                        dtype=torch.bfloat16 if args.bf16 else None)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = make_trainer(args, [reward], dataset, model, processor)
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    if trainer.accelerator.is_main_process:
        changed = sum(not torch.equal(before[n], p.detach().to(before[n].device))
                      for n, p in trainer.model.named_parameters() if n in before)
        rewards = [h[f"rewards/{reward.__name__}/mean"] for h in trainer.state.log_history
                   if f"rewards/{reward.__name__}/mean" in h]
        last = reward.last
        print(f"GRPO: {args.steps} steps in {train_s:.1f} s ({time.perf_counter() - start:.1f} s with start-up); "
              f"mean reward per step ({args.aggregate}): {', '.join(f'{r:.4f}' for r in rewards)}")
        print(f"policy parameters changed: {changed} of {len(before)} tensors")
        if last:
            print(f"last completion: {len(last[-1].steps)} steps, step scores "
                  f"{[round(x, 4) for x in last[-1].step_scores]}, reward {last[-1].reward}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
