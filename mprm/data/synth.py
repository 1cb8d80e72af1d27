"""Synthetic MC-annotated corpus, process benchmark and Best-of-N set about small shape images
(``mprm synth``; the pictures, questions and solutions come from :mod:`mprm.data.synth_domain`).

MC labels are simulated as METHOD.md 1 describes (s_j = K_j / N, N = 16, K_j ~ Binomial(N, p_j))
with the noise METHOD.md 5 analyses: hard items give low p on correct steps (false negatives),
after the first wrong step p is low but noisy (pseudo-positives with low MC), and the
generator sometimes stops after a zero-score step, leaving later steps unannotated
(``num_mc_total`` 0, METHOD.md 9). docs/synthetic_data.md documents the layout and parameters.
Bad arguments raise :class:`mprm.errors.UserError`.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from mprm.data.labels import FILE_CORRECT, FILE_INCORRECT, FILE_NEUTRAL
from mprm.data.synth_domain import (
    IMAGE_SIZE,
    KIND_WEIGHTS,
    KINDS,
    Padder,
    Scene,
    describe_scene,
    draw_scene,
    make_question,
    make_solution,
    random_scene,
    two_image_solution,
)
from mprm.errors import UserError

NUM_MC = 16
BON_N = 8
ROLLOUTS_PER_QUESTION = 4
BENCH_SOURCES = ("DynaMath", "MMMU_DEV_VAL", "MathVerse_MINI_Vision_Only", "MathVision_MINI", "WeMath")
BON_SOURCES = ("MM-K12", "OlympiadBench", "MathVerse", "MathVista")
POLICY_MODEL = "synthetic-policy"
INSTRUCTION = "Answer the question about the picture step by step, then give the final answer."
BENCH_WRONG_RATE = 0.55  # gives about 60% correct / 30% incorrect / 10% neutral steps
BENCH_NEUTRAL_SHARE = 0.1
BON_SOLVE_RANGE = (0.2, 0.8)  # per item, each candidate is right with a p drawn from this range
TWO_IMAGE_EVERY = 12  # benchmark items i with i % 12 == 5 show two pictures


@dataclass(frozen=True)
class NoiseSettings:
    """How MC labels depart from the truth (METHOD.md 5); the defaults give corpus statistics
    near VisualPRM400K-v1.1-Raw's (METHOD.md 1). docs/synthetic_data.md explains each value.

    A question is hard with probability ``hard_share``; its correct steps then have
    p ~ Beta(*hard_beta), else p ~ Beta(*easy_beta). A rollout is wrong with probability
    ``wrong_rate`` (``hard_wrong_rate`` on hard questions); from its first wrong step on,
    p = p_w * wrong_decay ** (steps since the error), p_w ~ Beta(*wrong_beta). After a step with
    K = 0 the generator stops with probability ``early_stop`` (later steps unannotated). Each
    source scales ``wrong_rate``, ``hard_wrong_rate`` and ``hard_share`` by a factor drawn
    uniformly from [1 - source_spread, 1 + source_spread].
    """

    wrong_rate: float = 0.06
    hard_wrong_rate: float = 0.25
    hard_share: float = 0.12
    easy_beta: tuple[float, float] = (10.0, 0.4)
    hard_beta: tuple[float, float] = (1.0, 1.5)
    wrong_beta: tuple[float, float] = (0.4, 3.0)
    wrong_decay: float = 0.6
    early_stop: float = 0.3
    source_spread: float = 0.4

    def __post_init__(self) -> None:
        problems = []
        for name in ("wrong_rate", "hard_wrong_rate", "hard_share", "early_stop"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                problems.append(f"{name} must lie in [0, 1] (got {v!r})")
        if not 0.0 < self.wrong_decay <= 1.0:
            problems.append(f"wrong_decay must lie in (0, 1] (got {self.wrong_decay!r})")
        if not 0.0 <= self.source_spread < 1.0:
            problems.append(f"source_spread must lie in [0, 1) (got {self.source_spread!r})")
        for name in ("easy_beta", "hard_beta", "wrong_beta"):
            v = getattr(self, name)
            if len(v) != 2 or min(v) <= 0:
                problems.append(f"{name} must be two positive Beta parameters (got {v!r})")
        if problems:
            raise UserError("NoiseSettings: " + "; ".join(problems))


# ---------------------------------------------------------------- MC simulation (METHOD.md 1, 5)


def _binomial(draw: Any, p: float) -> int:
    if p <= 0.0:
        return 0
    if p >= 1.0:
        return NUM_MC
    return sum(1 for _ in range(NUM_MC) if draw() < p)


def simulate_mc(rng: random.Random, p_item: float, n_steps: int, first_error: int, noise: NoiseSettings) -> list[tuple[int, int]]:
    """(num_mc_correct, num_mc_total) per step: K_j ~ Binomial(16, p_j) (METHOD.md 1).

    Correct steps use the item's p; from the first wrong step on, p decays from a low, noisy
    p_w (pseudo-positives, METHOD.md 5). After a K = 0 step the generator may stop: later steps
    are unannotated, (0, 0) (METHOD.md 9).
    """
    p_w = rng.betavariate(*noise.wrong_beta) if first_error < n_steps else 0.0
    draw = rng.random
    out: list[tuple[int, int]] = []
    stopped = False
    for j in range(n_steps):
        if stopped:
            out.append((0, 0))
            continue
        p = p_item if j < first_error else p_w * noise.wrong_decay ** (j - first_error)
        k = _binomial(draw, p)
        out.append((k, NUM_MC))
        if k == 0 and draw() < noise.early_stop:
            stopped = True
    return out


# ---------------------------------------------------------------- writers


class _Stats:
    def __init__(self) -> None:
        self.rollouts = self.steps = self.zero = self.mixed = self.unannotated = 0
        self.mc_sum = 0.0
        self.true_pos = self.false_neg = self.true_wrong = self.false_pos = self.wrong_rollouts = 0

    def add(self, mc: list[tuple[int, int]], first_error: int) -> None:
        self.rollouts += 1
        self.steps += len(mc)
        self.wrong_rollouts += first_error < len(mc)
        pos = neg = 0
        for j, (k, total) in enumerate(mc):
            self.mc_sum += k / NUM_MC
            if k == 0:
                neg += 1
                self.unannotated += total == 0
            else:
                pos += 1
            if total:
                if j < first_error:
                    self.true_pos += 1
                    self.false_neg += k == 0
                else:
                    self.true_wrong += 1
                    self.false_pos += k > 0
        self.zero += neg
        self.mixed += pos > 0 and neg > 0

    def summary(self) -> dict[str, Any]:
        def ratio(a: float, b: int) -> float:
            return round(a / max(b, 1), 4)

        return {
            "rollouts": self.rollouts, "steps": self.steps, "steps_per_rollout": ratio(self.steps, self.rollouts),
            "error_step_ratio": ratio(self.zero, self.steps), "mean_mc": ratio(self.mc_sum, self.steps),
            "mixed_share": ratio(self.mixed, self.rollouts), "unannotated_steps": self.unannotated,
            "wrong_rollout_share": ratio(self.wrong_rollouts, self.rollouts),
            "false_negative_rate": ratio(self.false_neg, self.true_pos),
            "false_positive_rate": ratio(self.false_pos, self.true_wrong),
        }


def _dump(fh: Any, row: dict[str, Any]) -> None:
    fh.write(orjson.dumps(row) + b"\n")


def _write_source(out: Path, s: int, n: int, seed: int, images: bool, pad: Padder, noise: NoiseSettings, stats: _Stats, bar: Any) -> tuple[str, int]:
    name = f"synth_shapes_{s:02d}"
    rng = random.Random(f"{seed}:corpus:{s}")
    scale = random.Random(f"{seed}:scale:{s}").uniform(1 - noise.source_spread, 1 + noise.source_spread)
    hard_share = min(1.0, noise.hard_share * scale)
    written = 0
    with open(out / "annotations" / f"{name}.jsonl", "wb") as fh:
        for q in range((n + ROLLOUTS_PER_QUESTION - 1) // ROLLOUTS_PER_QUESTION):
            scene = random_scene(rng)
            kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
            question, target = make_question(rng, kind, scene)
            hard = rng.random() < hard_share
            p_item = rng.betavariate(*(noise.hard_beta if hard else noise.easy_beta))
            wrong_rate = min(1.0, (noise.hard_wrong_rate if hard else noise.wrong_rate) * scale)
            image = f"images/{name}/{q:06d}.png"
            if images:
                draw_scene(scene, out / image)
                written += 1
            for r in range(min(ROLLOUTS_PER_QUESTION, n - q * ROLLOUTS_PER_QUESTION)):
                steps, err, answer = make_solution(rng, kind, scene, target, rng.random() < wrong_rate)
                steps = [pad(t) for t in steps]
                mc = simulate_mc(rng, p_item, len(steps), err, noise)
                stats.add(mc, err)
                _dump(fh, {
                    "image": image,
                    "question": f"<image>\n{INSTRUCTION}\n\nQuestion: {question}",
                    "question_orig": question,
                    "answer": answer,
                    "response": "\n\n".join(steps),
                    "num_mc_sequences": NUM_MC,
                    "steps_with_score": [
                        {"step": t, "score": k / NUM_MC, "num_mc_correct": k, "num_mc_total": tot}
                        for t, (k, tot) in zip(steps, mc)
                    ],
                    "id": f"{name}-{q:06d}-{r}",
                    "synth_kind": kind,
                    "synth_step_correct": [int(j < err) for j in range(len(steps))],
                })
            bar.update(min(ROLLOUTS_PER_QUESTION, n - q * ROLLOUTS_PER_QUESTION))
    return name, written


def _write_benchmark(out: Path, n: int, seed: int, images: bool, pad: Padder) -> tuple[dict[str, int], int]:
    rng = random.Random(f"{seed}:benchmark")
    counts = {"items": n, "steps": 0, "correct": 0, "incorrect": 0, "neutral": 0, "two_image_items": 0}
    written = 0
    with open(out / "benchmark" / "test.jsonl", "wb") as fh:
        for i in range(n):
            wrong = rng.random() < BENCH_WRONG_RATE
            if i % TWO_IMAGE_EVERY == 5:
                scenes = (random_scene(rng), random_scene(rng))
                question = "<image 1> <image 2> How many shapes are there in the two images together?"
                steps, err, answer = two_image_solution(rng, scenes, wrong)
                counts["two_image_items"] += 1
            else:
                scenes = (random_scene(rng),)
                kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
                question, target = make_question(rng, kind, scenes[0])
                steps, err, answer = make_solution(rng, kind, scenes[0], target, wrong)
            paths = [f"images/benchmark/{i:06d}_{k}.png" for k in range(len(scenes))]
            if images:
                for scene, p in zip(scenes, paths):
                    draw_scene(scene, out / p)
                    written += 1
            # The benchmark file's own coding (METHOD.md 7; mprm.data.labels): 1 correct, -1 incorrect, 0 neutral.
            labels = [FILE_NEUTRAL if rng.random() < BENCH_NEUTRAL_SHARE else (FILE_CORRECT if j < err else FILE_INCORRECT)
                      for j in range(len(steps))]
            counts["steps"] += len(steps)
            counts["correct"] += labels.count(FILE_CORRECT)
            counts["incorrect"] += labels.count(FILE_INCORRECT)
            counts["neutral"] += labels.count(FILE_NEUTRAL)
            _dump(fh, {
                "id": f"synth-bench-{i:06d}",
                "image": paths,
                "question": question,
                "answer": answer,
                "response": {"steps": [pad(t) for t in steps], "process_correctness": labels},
                "policy_model": POLICY_MODEL,
                "data_source": BENCH_SOURCES[i % len(BENCH_SOURCES)],
            })
    return counts, written


def _write_bon(out: Path, n: int, seed: int, images: bool, pad: Padder) -> tuple[dict[str, int], int]:
    rng = random.Random(f"{seed}:bon")
    counts = {"items": n, "candidates": 0, "correct_candidates": 0, "items_with_a_correct_candidate": 0}
    written = 0
    with open(out / "bon" / "test.jsonl", "wb") as fh:
        for i in range(n):
            scene = random_scene(rng)
            kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
            question, target = make_question(rng, kind, scene)
            solve = rng.uniform(*BON_SOLVE_RANGE)
            candidates, answer = [], ""
            for _ in range(BON_N):
                steps, err, answer = make_solution(rng, kind, scene, target, rng.random() >= solve)
                candidates.append({"steps": [pad(t) for t in steps], "correct": err == len(steps)})
            good = sum(c["correct"] for c in candidates)
            counts["candidates"] += BON_N
            counts["correct_candidates"] += good
            counts["items_with_a_correct_candidate"] += good > 0
            image = f"images/bon/{i:06d}.png"
            if images:
                draw_scene(scene, out / image)
                written += 1
            _dump(fh, {
                "id": f"synth-bon-{i:06d}",
                "data_source": BON_SOURCES[i % len(BON_SOURCES)],
                "image": [image],
                "question": question,
                "answer": answer,
                "candidates": candidates,
            })
    return counts, written


def generate(
    output_dir: str | Path,
    *,
    sources: int = 3,
    rollouts: int = 200,
    benchmark_items: int = 60,
    bon_items: int = 0,
    seed: int = 0,
    images: bool = True,
    step_chars: int | None = None,
    noise: NoiseSettings | None = None,
) -> dict[str, Any]:
    """Write a synthetic corpus, benchmark (and Best-of-N set) under ``output_dir``.

    ``rollouts`` is per source. Layout: ``annotations/synth_shapes_NN.jsonl``
    (VisualPRM400K-v1.1-Raw, METHOD.md 9), ``benchmark/test.jsonl`` (VisualProcessBench,
    METHOD.md 7), ``bon/test.jsonl`` when ``bon_items`` > 0, PNGs under ``images/`` unless
    ``images`` is False, and ``synth.json`` (parameters and statistics). Image paths are relative
    to ``output_dir``. The same arguments give byte-identical files. Returns the summary that
    ``synth.json`` holds.
    """
    for name, value, low in (("sources", sources, 1), ("rollouts", rollouts, 1), ("benchmark_items", benchmark_items, 0), ("bon_items", bon_items, 0)):
        if not isinstance(value, int) or value < low:
            raise UserError(f"synth: {name} must be an integer >= {low} (got {value!r})")
    if step_chars is not None and (not isinstance(step_chars, int) or step_chars < 1):
        raise UserError(f"synth: step_chars must be a positive integer or None (got {step_chars!r})")
    noise = noise or NoiseSettings()
    out = Path(output_dir)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "benchmark").mkdir(parents=True, exist_ok=True)
    stats = _Stats()
    files, written = [], 0
    total = sources * rollouts
    with tqdm(total=total, unit="rollout", desc="synth", file=sys.stderr, disable=total < 20000) as bar:
        for s in range(sources):
            name, w = _write_source(out, s, rollouts, seed, images, Padder(step_chars, random.Random(f"{seed}:pad:{s}")), noise, stats, bar)
            files.append(f"annotations/{name}.jsonl")
            written += w
    bench, w = _write_benchmark(out, benchmark_items, seed, images, Padder(step_chars, random.Random(f"{seed}:pad:bench")))
    written += w
    bon: dict[str, Any] | None = None
    if bon_items:
        (out / "bon").mkdir(parents=True, exist_ok=True)
        bon, w = _write_bon(out, bon_items, seed, images, Padder(step_chars, random.Random(f"{seed}:pad:bon")))
        bon["path"] = "bon/test.jsonl"
        written += w
    summary: dict[str, Any] = {
        "parameters": {
            "sources": sources, "rollouts_per_source": rollouts, "benchmark_items": benchmark_items,
            "bon_items": bon_items, "seed": seed, "images": images, "step_chars": step_chars,
            "image_size": IMAGE_SIZE, "rollouts_per_question": ROLLOUTS_PER_QUESTION,
            "noise": asdict(noise),
        },
        "annotation_files": files,
        "corpus": stats.summary(),
        "benchmark": {"path": "benchmark/test.jsonl", **bench},
        "bon": bon,
        "images_written": written,
    }
    (out / "synth.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    return {"output_dir": str(out), **summary}


def _pictures(n: int, *, seed: int, tag: str, prefix: str, image_dir: str | Path,
              caller: str) -> Iterator[tuple[random.Random, Scene, Path]]:
    """``n`` random scenes drawn as PNGs under ``image_dir``, with the seeded rng that drew them."""
    if not isinstance(n, int) or n < 0:
        raise UserError(f"{caller}: n must be an integer >= 0 (got {n!r})")
    rng = random.Random(f"{seed}:{tag}")
    root = Path(image_dir)
    for i in range(n):
        scene = random_scene(rng)
        path = root / f"{prefix}_{i:06d}.png"
        draw_scene(scene, path)
        yield rng, scene, path


def pretraining_pairs(n: int, *, seed: int = 0, image_dir: str | Path) -> Iterator[dict[str, str]]:
    """Yield ``n`` image-caption pairs for pre-training a tiny backbone on the synthetic domain.

    Each pair is ``{"image": path of a PNG written under image_dir, "text": caption}``; the
    caption states every cell and the counts in the vocabulary of the solution steps.
    """
    for _, scene, path in _pictures(n, seed=seed, tag="pretrain", prefix="pretrain", image_dir=image_dir,
                                    caller="pretraining_pairs"):
        yield {"image": str(path), "text": describe_scene(scene)}


def solution_pairs(n: int, *, seed: int = 0, image_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Yield ``n`` pictures with a question and a CORRECT step-by-step solution, for pre-training.

    ``{"image": PNG path under image_dir, "question": str, "steps": [str], "answer": str}``. Like a
    policy model trained on good solutions, a backbone pretrained on these has seen how right
    solutions read, never a wrong step, a step label or an MC score.
    """
    for rng, scene, path in _pictures(n, seed=seed, tag="solutions", prefix="solution", image_dir=image_dir,
                                        caller="solution_pairs"):
        kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
        question, target = make_question(rng, kind, scene)
        steps, _, answer = make_solution(rng, kind, scene, target, False)
        yield {"image": str(path), "question": question, "steps": steps, "answer": answer}
