"""Synthetic MC-annotated corpus, process benchmark and Best-of-N set about small shape images.

Every item is a question about a 56x56 picture split into a 2x2 grid of cells (top left, top
right, bottom left, bottom right), each cell empty or holding one big solid shape (circle,
square, triangle) in a primary colour on white. With patch 14 and a 2x2 merge (or InternVL's
0.5 pixel shuffle) each cell is exactly one image token of the tiny backbones, so every fact a
step states can be checked from the image and the text alone.

Solutions are written step by step; every step states a checkable fact. A wrong solution goes
wrong at one step and stays wrong: counting solutions carry a running tally, so an error shifts
every later tally, the summary and the answer. The truth of each step is known by construction.

MC labels are simulated as METHOD.md 1 describes (s_j = K_j / N, N = 16, K_j ~ Binomial(N, p_j))
with the noise METHOD.md 5 analyses: hard items give low p on correct steps (false negatives),
after the first wrong step p is low but noisy (pseudo-positives with low MC), and the
generator sometimes stops after a zero-score step, leaving later steps unannotated
(``num_mc_total`` 0, METHOD.md 9). docs/synthetic_data.md documents the layout and parameters.
"""

from __future__ import annotations

import bisect
import random
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from mprm.data.labels import FILE_CORRECT, FILE_INCORRECT, FILE_NEUTRAL

IMAGE_SIZE = 56
CELL = IMAGE_SIZE // 2
SHAPE_SIZE = 20
JITTER = 2
NUM_MC = 16
BON_N = 8
ROLLOUTS_PER_QUESTION = 4
CELLS = ("top left", "top right", "bottom left", "bottom right")
COLOURS = {"red": (230, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 230), "yellow": (240, 200, 0)}
SHAPES = ("circle", "square", "triangle")
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}
BENCH_SOURCES = ("DynaMath", "MMMU_DEV_VAL", "MathVerse_MINI_Vision_Only", "MathVision_MINI", "WeMath")
BON_SOURCES = ("MM-K12", "OlympiadBench", "MathVerse", "MathVista")
POLICY_MODEL = "synthetic-policy"
INSTRUCTION = "Answer the question about the picture step by step, then give the final answer."
# (kind, weight): counting questions walk all four cells; position questions look at one.
KINDS = ("count_colour", "count_shape", "count_all", "colour_at", "shape_at")
KIND_WEIGHTS = (0.3, 0.3, 0.25, 0.075, 0.075)
SHAPE_COUNT_WEIGHTS = (0.1, 0.2, 0.3, 0.4)  # P(1..4 shapes)
SUMMARY_PROB = {"count": 0.9, "position": 0.7}
MISREAD_PROB = 0.6  # an error in a cell step is a misread (else a tally slip)
BENCH_WRONG_RATE = 0.55  # gives about 60% correct / 30% incorrect / 10% neutral steps
BENCH_NEUTRAL_SHARE = 0.1
BON_SOLVE_RANGE = (0.2, 0.8)  # per item, each candidate is right with a p drawn from this range
TWO_IMAGE_EVERY = 12  # benchmark items i with i % 12 == 5 show two pictures
FILLER = (
    "I check this against the picture.",
    "The grid has four cells.",
    "I read the cells in order.",
    "Each shape sits inside one cell.",
    "The background is white.",
    "I keep track of what I have seen.",
    "Nothing else in the picture matters here.",
    "I look at the picture once more.",
)

Cell = tuple[str, str, int, int] | None  # (colour, shape, dx, dy) or empty
Scene = tuple[Cell, Cell, Cell, Cell]


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
            raise ValueError("NoiseSettings: " + "; ".join(problems))


# ---------------------------------------------------------------- scenes and pictures


def _scene(rng: random.Random) -> Scene:
    n = rng.choices((1, 2, 3, 4), SHAPE_COUNT_WEIGHTS)[0]
    filled = set(rng.sample(range(4), n))
    colours = tuple(COLOURS)
    cells = []
    for i in range(4):
        if i in filled:
            cells.append((rng.choice(colours), rng.choice(SHAPES), rng.randint(-JITTER, JITTER), rng.randint(-JITTER, JITTER)))
        else:
            cells.append(None)
    return tuple(cells)  # type: ignore[return-value]


def draw_scene(scene: Scene, path: Path) -> None:
    """Write the picture of ``scene`` as a PNG (no anti-aliasing: pure colours on white)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    margin = (CELL - SHAPE_SIZE) // 2
    for i, cell in enumerate(scene):
        if cell is None:
            continue
        colour, shape, dx, dy = cell
        x0 = (i % 2) * CELL + margin + dx
        y0 = (i // 2) * CELL + margin + dy
        x1, y1 = x0 + SHAPE_SIZE - 1, y0 + SHAPE_SIZE - 1
        fill = COLOURS[colour]
        if shape == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif shape == "square":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.polygon(((x0 + SHAPE_SIZE // 2, y0), (x0, y1), (x1, y1)), fill=fill)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", optimize=False)


def describe_scene(scene: Scene) -> str:
    """A caption in the steps' vocabulary: every cell, then the counts."""
    parts = [f"{CELLS[i].capitalize()}: {_desc(c)}." for i, c in enumerate(scene)]
    shapes = [c for c in scene if c is not None]
    for colour in COLOURS:
        k = sum(c[0] == colour for c in shapes)
        if k:
            parts.append(f"{colour.capitalize()} shapes: {k}.")
    for shape in SHAPES:
        k = sum(c[1] == shape for c in shapes)
        if k:
            parts.append(f"{PLURAL[shape].capitalize()}: {k}.")
    parts.append(f"Shapes: {len(shapes)}.")
    return " ".join(parts)


def _desc(cell: Cell) -> str:
    return "empty" if cell is None else f"a {cell[0]} {cell[1]}"


# ---------------------------------------------------------------- questions and solutions


def _question(rng: random.Random, kind: str, scene: Scene) -> tuple[str, Any]:
    """The question text and its target (a colour, a shape, a cell index or None)."""
    shapes = [c for c in scene if c is not None]
    if kind == "count_colour":
        pool = [c[0] for c in shapes] if rng.random() < 0.7 else list(COLOURS)
        target = rng.choice(pool)
        return f"How many {target} shapes are there?", target
    if kind == "count_shape":
        pool = [c[1] for c in shapes] if rng.random() < 0.7 else list(SHAPES)
        target = rng.choice(pool)
        return f"How many {PLURAL[target]} are there?", target
    if kind == "count_all":
        return "How many shapes are there?", None
    target = rng.choice([i for i, c in enumerate(scene) if c is not None])
    if kind == "colour_at":
        return f"What colour is the shape in the {CELLS[target]}?", target
    return f"What shape is in the {CELLS[target]}?", target


def _other(rng: random.Random, values: tuple[str, ...], not_this: str) -> str:
    return rng.choice([v for v in values if v != not_this])


def _slip(rng: random.Random, value: int) -> int:
    return 1 if value == 0 or rng.random() < 0.5 else -1


def _count_solution(rng: random.Random, kind: str, scene: Scene, target: Any, wrong: bool) -> tuple[list[str], int, str]:
    if kind == "count_colour":
        match = lambda c: c is not None and c[0] == target  # noqa: E731
        label = target.capitalize()
    elif kind == "count_shape":
        match = lambda c: c is not None and c[1] == target  # noqa: E731
        label = PLURAL[target].capitalize()
    else:
        match = lambda c: c is not None  # noqa: E731
        label = "Shapes"
    summary = rng.random() < SUMMARY_PROB["count"]
    n_steps = 4 + summary + 1
    err = rng.randrange(n_steps) if wrong else n_steps
    steps, tally, offset = [], 0, 0
    for i, cell in enumerate(scene):
        tally += match(cell)
        desc = _desc(cell)
        if i == err:
            if rng.random() < MISREAD_PROB:
                desc, offset = _misread(rng, kind, cell, target, bool(match(cell)))
            else:
                offset = _slip(rng, tally)
        steps.append(f"{CELLS[i].capitalize()}: {desc}. {label} so far: {tally + offset}.")
    if summary:
        if err == 4:
            offset = _slip(rng, tally)
        n = tally + offset
        if kind == "count_colour":
            noun = f"{target} shape" if n == 1 else f"{target} shapes"
        elif kind == "count_shape":
            noun = target if n == 1 else PLURAL[target]
        else:
            noun = "shape" if n == 1 else "shapes"
        steps.append(f"So there {'is' if n == 1 else 'are'} {n} {noun}.")
    if err == n_steps - 1:
        offset = _slip(rng, tally)
    steps.append(f"The answer is {tally + offset}.")
    return steps, err, str(tally)


def _misread(rng: random.Random, kind: str, cell: Cell, target: Any, matched: bool) -> tuple[str, int]:
    """A wrong description of ``cell`` that changes the tally by one (returns text, offset)."""
    if kind == "count_all":
        if cell is None:
            return f"a {rng.choice(tuple(COLOURS))} {rng.choice(SHAPES)}", 1
        return "empty", -1
    if kind == "count_colour":
        if cell is None:
            return f"a {target} {rng.choice(SHAPES)}", 1
        if matched:
            return f"a {_other(rng, tuple(COLOURS), target)} {cell[1]}", -1
        return f"a {target} {cell[1]}", 1
    if cell is None:
        return f"a {rng.choice(tuple(COLOURS))} {target}", 1
    if matched:
        return f"a {cell[0]} {_other(rng, SHAPES, target)}", -1
    return f"a {cell[0]} {target}", 1


def _position_solution(rng: random.Random, kind: str, scene: Scene, target: int, wrong: bool) -> tuple[list[str], int, str]:
    cell = scene[target]
    assert cell is not None
    colour, shape = cell[0], cell[1]
    attr, values, truth = ("colour", tuple(COLOURS), colour) if kind == "colour_at" else ("shape", SHAPES, shape)
    summary = rng.random() < SUMMARY_PROB["position"]
    n_steps = 2 + summary
    err = rng.randrange(n_steps) if wrong else n_steps
    said = _other(rng, values, truth) if err == 0 else truth
    seen = f"a {said} {shape}" if attr == "colour" else f"a {colour} {said}"
    steps = [f"{CELLS[target].capitalize()}: {seen}."]
    if summary:
        if err == 1:
            said = _other(rng, values, truth)
        steps.append(f"So the colour is {said}." if attr == "colour" else f"So the shape is a {said}.")
    if err == n_steps - 1 and err > 0:
        said = _other(rng, values, truth)
    steps.append(f"The answer is {said}.")
    return steps, err, truth


def _two_image_solution(rng: random.Random, scenes: tuple[Scene, Scene], wrong: bool) -> tuple[list[str], int, str]:
    summary = rng.random() < SUMMARY_PROB["count"]
    n_steps = 2 + summary + 1
    err = rng.randrange(n_steps) if wrong else n_steps
    steps, total, offset = [], 0, 0
    for k, scene in enumerate(scenes):
        n = sum(c is not None for c in scene)
        total += n
        said = n
        if k == err:
            delta = _slip(rng, n)
            said, offset = n + delta, delta
        steps.append(f"Image {k + 1}: {said} {'shape' if said == 1 else 'shapes'}. Total so far: {total + offset}.")
    if summary:
        if err == 2:
            offset = _slip(rng, total)
        steps.append(f"So there are {total + offset} shapes in total.")
    if err == n_steps - 1:
        offset = _slip(rng, total)
    steps.append(f"The answer is {total + offset}.")
    return steps, err, str(total)


def _solution(rng: random.Random, kind: str, scene: Scene, target: Any, wrong: bool) -> tuple[list[str], int, str]:
    """Step texts, the index of the first wrong step (len(steps) if none) and the true answer."""
    if kind.startswith("count"):
        return _count_solution(rng, kind, scene, target, wrong)
    return _position_solution(rng, kind, scene, target, wrong)


class _Padder:
    """Pads a step to about ``chars`` characters with neutral filler (true of every picture)."""

    def __init__(self, chars: int | None, rng: random.Random) -> None:
        self.chars, self.rng = chars, rng
        self.texts: list[str] = []
        self.ends: list[list[int]] = []
        if chars:
            for start in range(len(FILLER)):
                order = FILLER[start:] + FILLER[:start]
                text, ends = "", []
                while len(text) < chars:
                    for sentence in order:
                        text = f"{text} {sentence}" if text else sentence
                        ends.append(len(text))
                self.texts.append(text)
                self.ends.append(ends)

    def __call__(self, step: str) -> str:
        if not self.chars:
            return step
        need = self.chars - len(step) - 1
        if need <= 0:
            return step
        k = self.rng.randrange(len(FILLER))
        ends = self.ends[k]
        return f"{step} {self.texts[k][: ends[min(bisect.bisect_left(ends, need), len(ends) - 1)]]}"


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


def _write_source(out: Path, s: int, n: int, seed: int, images: bool, pad: _Padder, noise: NoiseSettings, stats: _Stats, bar: Any) -> tuple[str, int]:
    name = f"synth_shapes_{s:02d}"
    rng = random.Random(f"{seed}:corpus:{s}")
    scale = random.Random(f"{seed}:scale:{s}").uniform(1 - noise.source_spread, 1 + noise.source_spread)
    hard_share = min(1.0, noise.hard_share * scale)
    written = 0
    with open(out / "annotations" / f"{name}.jsonl", "wb") as fh:
        for q in range((n + ROLLOUTS_PER_QUESTION - 1) // ROLLOUTS_PER_QUESTION):
            scene = _scene(rng)
            kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
            question, target = _question(rng, kind, scene)
            hard = rng.random() < hard_share
            p_item = rng.betavariate(*(noise.hard_beta if hard else noise.easy_beta))
            wrong_rate = min(1.0, (noise.hard_wrong_rate if hard else noise.wrong_rate) * scale)
            image = f"images/{name}/{q:06d}.png"
            if images:
                draw_scene(scene, out / image)
                written += 1
            for r in range(min(ROLLOUTS_PER_QUESTION, n - q * ROLLOUTS_PER_QUESTION)):
                steps, err, answer = _solution(rng, kind, scene, target, rng.random() < wrong_rate)
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


def _write_benchmark(out: Path, n: int, seed: int, images: bool, pad: _Padder) -> tuple[dict[str, int], int]:
    rng = random.Random(f"{seed}:benchmark")
    counts = {"items": n, "steps": 0, "correct": 0, "incorrect": 0, "neutral": 0, "two_image_items": 0}
    written = 0
    with open(out / "benchmark" / "test.jsonl", "wb") as fh:
        for i in range(n):
            wrong = rng.random() < BENCH_WRONG_RATE
            if i % TWO_IMAGE_EVERY == 5:
                scenes = (_scene(rng), _scene(rng))
                question = "<image 1> <image 2> How many shapes are there in the two images together?"
                steps, err, answer = _two_image_solution(rng, scenes, wrong)
                counts["two_image_items"] += 1
            else:
                scenes = (_scene(rng),)
                kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
                question, target = _question(rng, kind, scenes[0])
                steps, err, answer = _solution(rng, kind, scenes[0], target, wrong)
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


def _write_bon(out: Path, n: int, seed: int, images: bool, pad: _Padder) -> tuple[dict[str, int], int]:
    rng = random.Random(f"{seed}:bon")
    counts = {"items": n, "candidates": 0, "correct_candidates": 0, "items_with_a_correct_candidate": 0}
    written = 0
    with open(out / "bon" / "test.jsonl", "wb") as fh:
        for i in range(n):
            scene = _scene(rng)
            kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
            question, target = _question(rng, kind, scene)
            solve = rng.uniform(*BON_SOLVE_RANGE)
            candidates, answer = [], ""
            for _ in range(BON_N):
                steps, err, answer = _solution(rng, kind, scene, target, rng.random() >= solve)
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
            raise ValueError(f"synth: {name} must be an integer >= {low} (got {value!r})")
    if step_chars is not None and (not isinstance(step_chars, int) or step_chars < 1):
        raise ValueError(f"synth: step_chars must be a positive integer or None (got {step_chars!r})")
    noise = noise or NoiseSettings()
    out = Path(output_dir)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "benchmark").mkdir(parents=True, exist_ok=True)
    stats = _Stats()
    files, written = [], 0
    total = sources * rollouts
    with tqdm(total=total, unit="rollout", desc="synth", file=sys.stderr, disable=total < 20000) as bar:
        for s in range(sources):
            name, w = _write_source(out, s, rollouts, seed, images, _Padder(step_chars, random.Random(f"{seed}:pad:{s}")), noise, stats, bar)
            files.append(f"annotations/{name}.jsonl")
            written += w
    bench, w = _write_benchmark(out, benchmark_items, seed, images, _Padder(step_chars, random.Random(f"{seed}:pad:bench")))
    written += w
    bon: dict[str, Any] | None = None
    if bon_items:
        (out / "bon").mkdir(parents=True, exist_ok=True)
        bon, w = _write_bon(out, bon_items, seed, images, _Padder(step_chars, random.Random(f"{seed}:pad:bon")))
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
        raise ValueError(f"{caller}: n must be an integer >= 0 (got {n!r})")
    rng = random.Random(f"{seed}:{tag}")
    root = Path(image_dir)
    for i in range(n):
        scene = _scene(rng)
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
        question, target = _question(rng, kind, scene)
        steps, _, answer = _solution(rng, kind, scene, target, False)
        yield {"image": str(path), "question": question, "steps": steps, "answer": answer}
