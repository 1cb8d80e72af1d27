"""The synthetic domain of ``mprm synth``: small shape pictures, questions about them and
step-by-step solutions whose every step is checkable (no torch).

Every item is a question about a 56x56 picture split into a 2x2 grid of cells (top left, top
right, bottom left, bottom right), each cell empty or holding one big solid shape (circle,
square, triangle) in a primary colour on white. With patch 14 and a 2x2 merge (or InternVL's
0.5 pixel shuffle) each cell is exactly one image token of the tiny backbones, so every fact a
step states can be checked from the image and the text alone.

Solutions are written step by step; every step states a checkable fact. A wrong solution goes
wrong at one step and stays wrong: counting solutions carry a running tally, so an error shifts
every later tally, the summary and the answer. The truth of each step is known by construction.
``mprm.data.synth`` turns these into the corpus, benchmark and Best-of-N files.
"""

from __future__ import annotations

import bisect
import random
from pathlib import Path
from typing import Any

IMAGE_SIZE = 56
CELL = IMAGE_SIZE // 2
SHAPE_SIZE = 20
JITTER = 2
CELLS = ("top left", "top right", "bottom left", "bottom right")
COLOURS = {"red": (230, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 230), "yellow": (240, 200, 0)}
SHAPES = ("circle", "square", "triangle")
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}
# (kind, weight): counting questions walk all four cells; position questions look at one.
KINDS = ("count_colour", "count_shape", "count_all", "colour_at", "shape_at")
KIND_WEIGHTS = (0.3, 0.3, 0.25, 0.075, 0.075)
SHAPE_COUNT_WEIGHTS = (0.1, 0.2, 0.3, 0.4)  # P(1..4 shapes)
SUMMARY_PROB = {"count": 0.9, "position": 0.7}
MISREAD_PROB = 0.6  # an error in a cell step is a misread (else a tally slip)
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


# ---------------------------------------------------------------- scenes and pictures


def random_scene(rng: random.Random) -> Scene:
    """A scene of 1-4 shapes in random cells, colours, kinds and small offsets."""
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


def make_question(rng: random.Random, kind: str, scene: Scene) -> tuple[str, Any]:
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


def two_image_solution(rng: random.Random, scenes: tuple[Scene, Scene], wrong: bool) -> tuple[list[str], int, str]:
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


def make_solution(rng: random.Random, kind: str, scene: Scene, target: Any, wrong: bool) -> tuple[list[str], int, str]:
    """Step texts, the index of the first wrong step (len(steps) if none) and the true answer."""
    if kind.startswith("count"):
        return _count_solution(rng, kind, scene, target, wrong)
    return _position_solution(rng, kind, scene, target, wrong)


class Padder:
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
