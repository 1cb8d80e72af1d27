"""Synthetic data generator (mprm/data/synth.py, ``mprm synth``).

The consistency tests re-derive every fact from the PNG pixels with a checker written here,
independently of the generator: each cell's colour is the palette colour found in it and its
shape follows from the area it covers (Pillow draws a 20-pixel square as 400 pixels, the circle
inscribed in it as 308, the triangle with that base and height as 210).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from PIL import Image

from mprm.cli import main
from mprm.data.synth import NoiseSettings, generate, pretraining_pairs, simulate_mc, solution_pairs

PALETTE = {(230, 0, 0): "red", (0, 160, 0): "green", (0, 0, 230): "blue", (240, 200, 0): "yellow"}
CELL_NAMES = ("Top left", "Top right", "Bottom left", "Bottom right")
BENCH_SOURCES = {"DynaMath", "MMMU_DEV_VAL", "MathVerse_MINI_Vision_Only", "MathVision_MINI", "WeMath"}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def read_cells(png: Path) -> list[tuple[str, str] | None]:
    """(colour, shape) of each 28x28 cell, from the pixels alone."""
    img = Image.open(png).convert("RGB")
    assert img.size == (56, 56)
    px = img.load()
    cells = []
    for i in range(4):
        x0, y0 = (i % 2) * 28, (i // 2) * 28
        counts: dict[str, int] = {}
        for x in range(x0, x0 + 28):
            for y in range(y0, y0 + 28):
                colour = PALETTE.get(px[x, y])
                if colour:
                    counts[colour] = counts.get(colour, 0) + 1
                else:
                    assert px[x, y] == (255, 255, 255), f"{png}: unexpected pixel {px[x, y]}"
        if not counts:
            cells.append(None)
            continue
        assert len(counts) == 1, f"{png}: cell {i} holds several colours {counts}"
        (colour, area), = counts.items()
        shape = "square" if area > 360 else "circle" if area > 250 else "triangle"
        cells.append((colour, shape))
    return cells


def desc(cell: tuple[str, str] | None) -> str:
    return "empty" if cell is None else f"a {cell[0]} {cell[1]}"


def statements(question: str, steps: list[str], scenes: list[list]) -> tuple[list[bool], str]:
    """Whether each step's own statement is true of the pictures, and the right answer,
    derived here from the question text and the cells."""
    ok: list[bool] = []
    plural = {"circles": "circle", "squares": "square", "triangles": "triangle"}
    if len(scenes) == 2:
        counts = [sum(c is not None for c in s) for s in scenes]
        truth = str(sum(counts))
        total = 0
        for k, text in enumerate(steps):
            if k < 2:
                total += counts[k]
                m = re.match(r"Image (\d): (\d+) shapes?\. Total so far: (\d+)\.", text)
                ok.append(bool(m) and int(m[1]) == k + 1 and int(m[2]) == counts[k] and int(m[3]) == total)
            elif text.startswith("So there"):
                ok.append(text == f"So there are {truth} shapes in total.")
            else:
                ok.append(text == f"The answer is {truth}.")
        return ok, truth
    cells = scenes[0]
    m = re.fullmatch(r"How many shapes are there\?|How many (\w+) shapes are there\?|How many (\w+) are there\?", question)
    if m:
        if m[1]:
            match = lambda c: c is not None and c[0] == m[1]  # noqa: E731
        elif m[2]:
            match = lambda c: c is not None and c[1] == plural[m[2]]  # noqa: E731
        else:
            match = lambda c: c is not None  # noqa: E731
        truth = str(sum(map(match, cells)))
        tally = 0
        for j, text in enumerate(steps):
            if j < 4:
                tally += match(cells[j])
                mm = re.fullmatch(r"([A-Za-z ]+): (empty|a \w+ \w+)\. \w+ so far: (\d+)\.", text)
                ok.append(bool(mm) and mm[1] == CELL_NAMES[j] and mm[2] == desc(cells[j]) and int(mm[3]) == tally)
            elif text.startswith("So there"):
                ok.append(re.fullmatch(r"So there (is|are) (\d+) .*\.", text)[2] == truth)
            else:
                ok.append(text == f"The answer is {truth}.")
        return ok, truth
    m = re.fullmatch(r"What (colour is the shape|shape is) in the (\w+ \w+)\?", question)
    assert m, question
    cell = cells[[n.lower() for n in CELL_NAMES].index(m[2])]
    truth = cell[0] if m[1].startswith("colour") else cell[1]
    for j, text in enumerate(steps):
        if j == 0:
            ok.append(text == f"{m[2].capitalize()}: {desc(cell)}.")
        elif text.startswith("So the"):
            ok.append(text in (f"So the colour is {truth}.", f"So the shape is a {truth}."))
        else:
            ok.append(text == f"The answer is {truth}.")
    return ok, truth


def step_truths(question: str, steps: list[str], scenes: list[list]) -> tuple[list[bool], str]:
    """A step is right when its statement and every earlier one are true (process labels).

    Also checks that an error propagates: after the first false statement, every later
    statement is false too (the tally, summary and answer inherit the mistake)."""
    ok, truth = statements(question, steps, scenes)
    first = ok.index(False) if False in ok else len(ok)
    assert not any(ok[first:]), (question, steps, ok)
    return [j < first for j in range(len(ok))], truth


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kw = dict(sources=2, rollouts=30, benchmark_items=14, bon_items=3)
    generate(tmp_path / "a", seed=7, **kw)
    generate(tmp_path / "b", seed=7, **kw)
    generate(tmp_path / "c", seed=8, **kw)
    a, b, c = all_files(tmp_path / "a"), all_files(tmp_path / "b"), all_files(tmp_path / "c")
    assert any(name.endswith(".png") for name in a)
    assert a == b
    for name in ("annotations/synth_shapes_00.jsonl", "benchmark/test.jsonl", "bon/test.jsonl"):
        assert a[name] != c[name]


def test_corpus_layout_and_fields(synth_dir):
    files = sorted(p.name for p in (synth_dir / "annotations").iterdir())
    assert files == ["synth_shapes_00.jsonl", "synth_shapes_01.jsonl", "synth_shapes_02.jsonl"]
    ids = set()
    for name in files:
        rows = read_jsonl(synth_dir / "annotations" / name)
        assert len(rows) == 60
        for row in rows:
            assert isinstance(row["image"], str) and (synth_dir / row["image"]).is_file()
            assert row["image"].startswith("images/") and not Path(row["image"]).is_absolute()
            assert "<image>" in row["question"] and row["question"].endswith(row["question_orig"])
            assert isinstance(row["answer"], str) and row["answer"]
            assert row["num_mc_sequences"] == 16
            steps = row["steps_with_score"]
            assert 2 <= len(steps) <= 6
            assert row["response"] == "\n\n".join(s["step"] for s in steps)
            for s in steps:
                assert set(s) == {"step", "score", "num_mc_correct", "num_mc_total"}
                assert isinstance(s["step"], str) and 10 <= len(s["step"]) <= 80
                assert isinstance(s["num_mc_correct"], int) and isinstance(s["num_mc_total"], int)
                assert s["num_mc_total"] in (0, 16) and 0 <= s["num_mc_correct"] <= s["num_mc_total"]
                assert s["score"] == s["num_mc_correct"] / 16
            totals = [s["num_mc_total"] for s in steps]
            if 0 in totals:  # unannotated steps only trail a measured zero (METHOD.md 9)
                first = totals.index(0)
                assert first > 0 and steps[first - 1]["num_mc_correct"] == 0 and set(totals[first:]) == {0}
            assert row["id"] not in ids
            ids.add(row["id"])


def test_benchmark_layout_and_fields(synth_dir):
    rows = read_jsonl(synth_dir / "benchmark" / "test.jsonl")
    assert len(rows) == 24
    assert [r["data_source"] for r in rows[:5]] == ["DynaMath", "MMMU_DEV_VAL", "MathVerse_MINI_Vision_Only", "MathVision_MINI", "WeMath"]
    assert {r["data_source"] for r in rows} == BENCH_SOURCES
    assert [i for i, r in enumerate(rows) if len(r["image"]) == 2] == [5, 17]
    for r in rows:
        assert isinstance(r["image"], list) and all((synth_dir / p).is_file() for p in r["image"])
        assert isinstance(r["question"], str) and isinstance(r["answer"], str) and isinstance(r["policy_model"], str)
        steps, labels = r["response"]["steps"], r["response"]["process_correctness"]
        assert len(steps) == len(labels) >= 2 and set(labels) <= {1, 0, -1}
    assert "<image 1> <image 2>" in rows[5]["question"]


def test_bon_layout(tmp_path):
    generate(tmp_path, sources=1, rollouts=4, benchmark_items=0, bon_items=6)
    rows = read_jsonl(tmp_path / "bon" / "test.jsonl")
    assert [r["data_source"] for r in rows] == ["MM-K12", "OlympiadBench", "MathVerse", "MathVista", "MM-K12", "OlympiadBench"]
    for r in rows:
        assert set(r) == {"id", "data_source", "image", "question", "answer", "candidates"}
        assert len(r["candidates"]) == 8 and (tmp_path / r["image"][0]).is_file()
        for cand in r["candidates"]:
            truths, answer = step_truths(r["question"], cand["steps"], [read_cells(tmp_path / r["image"][0])])
            assert answer == r["answer"]
            assert cand["correct"] is truths[-1]
            assert cand["correct"] == (cand["steps"][-1] == f"The answer is {answer}.")


def test_benchmark_labels_match_the_pixels(tmp_path):
    generate(tmp_path, sources=1, rollouts=4, benchmark_items=120, seed=3)
    rows = read_jsonl(tmp_path / "benchmark" / "test.jsonl")
    checked = 0
    for r in rows:
        scenes = [read_cells(tmp_path / p) for p in r["image"]]
        truths, answer = step_truths(r["question"], r["response"]["steps"], scenes)
        assert answer == r["answer"], r
        for label, truth in zip(r["response"]["process_correctness"], truths):
            if label != 0:  # VisualProcessBench coding: 1 correct, -1 incorrect, 0 neutral
                assert label == (1 if truth else -1), r
                checked += 1
    assert checked > 400


def test_corpus_truth_matches_the_pixels_and_wrong_stays_wrong(synth_dir):
    wrong = 0
    for path in sorted((synth_dir / "annotations").glob("*.jsonl")):
        for row in read_jsonl(path):
            steps = [s["step"] for s in row["steps_with_score"]]
            truths, answer = step_truths(row["question_orig"], steps, [read_cells(synth_dir / row["image"])])
            assert answer == row["answer"]
            assert row["synth_step_correct"] == [int(t) for t in truths]
            first = truths.index(False) if False in truths else len(truths)
            assert truths == [True] * first + [False] * (len(truths) - first)
            wrong += first < len(truths)
    assert wrong > 0


def test_wrong_stays_wrong_in_benchmark_labels(tmp_path):
    generate(tmp_path, sources=1, rollouts=4, benchmark_items=300, images=False, seed=5)
    for r in read_jsonl(tmp_path / "benchmark" / "test.jsonl"):
        known = [x for x in r["response"]["process_correctness"] if x != 0]
        assert known == sorted(known, reverse=True), r


def test_corpus_statistics_in_realistic_bands(tmp_path):
    summary = generate(tmp_path, sources=2, rollouts=3000, benchmark_items=600, images=False)
    steps = zeros = mixed = rollouts = fn = fp = correct_steps = wrong_steps = 0
    mc_sum = 0.0
    wrong_mc = []
    for path in sorted((tmp_path / "annotations").glob("*.jsonl")):
        for row in read_jsonl(path):
            rollouts += 1
            scores = [s["score"] for s in row["steps_with_score"]]
            steps += len(scores)
            mc_sum += sum(scores)
            zeros += scores.count(0.0)
            mixed += 0.0 in scores and any(scores)
            for s, truth in zip(row["steps_with_score"], row["synth_step_correct"]):
                if s["num_mc_total"] == 0:
                    continue
                if truth:
                    correct_steps += 1
                    fn += s["num_mc_correct"] == 0
                else:
                    wrong_steps += 1
                    fp += s["num_mc_correct"] > 0
                    wrong_mc.append(s["score"])
    assert rollouts == 6000
    assert 5.0 <= steps / rollouts <= 5.8
    assert 0.80 <= mc_sum / steps <= 0.90
    assert 0.025 <= zeros / steps <= 0.07
    assert 0.05 <= mixed / rollouts <= 0.11
    assert 0.001 <= fn / correct_steps <= 0.03  # false negatives on hard items
    assert 0.25 <= fp / wrong_steps <= 0.75  # pseudo-positives after an error ...
    assert sum(wrong_mc) / len(wrong_mc) < 0.15  # ... with low MC (METHOD.md 5)
    corpus = summary["corpus"]
    assert corpus["steps"] == steps and corpus["mean_mc"] == round(mc_sum / steps, 4)
    assert corpus["mixed_share"] == round(mixed / rollouts, 4)
    bench = summary["benchmark"]
    assert bench["correct"] + bench["incorrect"] + bench["neutral"] == bench["steps"]
    assert 0.55 <= bench["correct"] / bench["steps"] <= 0.65
    assert 0.25 <= bench["incorrect"] / bench["steps"] <= 0.35
    assert 0.07 <= bench["neutral"] / bench["steps"] <= 0.13


def test_simulate_mc_hand_cases():
    rng = random.Random(0)
    no_stop = NoiseSettings(early_stop=0.0)
    assert simulate_mc(rng, 1.0, 4, 4, no_stop) == [(16, 16)] * 4
    assert simulate_mc(rng, 0.0, 3, 3, NoiseSettings(early_stop=1.0)) == [(0, 16), (0, 0), (0, 0)]
    assert simulate_mc(rng, 0.0, 3, 3, no_stop) == [(0, 16)] * 3
    assert simulate_mc(rng, 1.0, 3, 1, NoiseSettings(wrong_beta=(1e-9, 1e9), early_stop=0.0)) == [(16, 16), (0, 16), (0, 16)]
    ks = [simulate_mc(rng, 0.25, 1, 1, no_stop)[0][0] for _ in range(4000)]
    assert abs(sum(ks) / len(ks) - 4.0) < 0.15  # Binomial(16, 0.25) has mean 4


def test_noise_settings_reject_bad_values():
    with pytest.raises(ValueError, match=r"wrong_rate must lie in \[0, 1\] \(got 1.5\)"):
        NoiseSettings(wrong_rate=1.5)
    with pytest.raises(ValueError, match="hard_beta"):
        NoiseSettings(hard_beta=(0.0, 1.0))
    with pytest.raises(ValueError, match="rollouts must be an integer >= 1"):
        generate("/nonexistent-never-written", rollouts=0)


def test_step_chars_pads_with_neutral_filler(tmp_path):
    generate(tmp_path / "plain", sources=1, rollouts=40, benchmark_items=10, images=False)
    generate(tmp_path / "long", sources=1, rollouts=40, benchmark_items=10, images=False, step_chars=300)
    plain = read_jsonl(tmp_path / "plain" / "annotations" / "synth_shapes_00.jsonl")
    long = read_jsonl(tmp_path / "long" / "annotations" / "synth_shapes_00.jsonl")
    for a, b in zip(plain, long):
        assert a["steps_with_score"] != b["steps_with_score"]
        assert [s["num_mc_correct"] for s in a["steps_with_score"]] == [s["num_mc_correct"] for s in b["steps_with_score"]]
        for sa, sb in zip(a["steps_with_score"], b["steps_with_score"]):
            assert sb["step"].startswith(sa["step"] + " ")
            assert 300 <= len(sb["step"]) <= 345
    bench = read_jsonl(tmp_path / "long" / "benchmark" / "test.jsonl")
    assert all(len(s) >= 300 for r in bench for s in r["response"]["steps"])


def test_cli_writes_and_no_images_writes_no_png(tmp_path, capsys):
    out = tmp_path / "synth"
    argv = ["synth", "--output", str(out), "--sources", "2", "--rollouts", "10", "--benchmark-items", "7", "--bon-items", "2", "--seed", "4", "--no-images"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 sources, 20 rollouts" in printed and "7 items" in printed
    assert not list(out.rglob("*.png"))
    rows = read_jsonl(out / "annotations" / "synth_shapes_01.jsonl")
    assert len(rows) == 10 and all(r["image"].endswith(".png") for r in rows)
    assert len(read_jsonl(out / "bon" / "test.jsonl")) == 2
    meta = json.loads((out / "synth.json").read_text())
    assert meta["parameters"]["rollouts_per_source"] == 10 and meta["images_written"] == 0
    assert main(["synth", "--output", str(tmp_path / "x"), "--sources", "0"]) == 2
    assert "sources must be an integer >= 1 (got 0)" in capsys.readouterr().err


def test_pretraining_pairs_describe_their_pictures(tmp_path):
    pairs = list(pretraining_pairs(6, seed=2, image_dir=tmp_path / "pre"))
    again = list(pretraining_pairs(6, seed=2, image_dir=tmp_path / "again"))
    assert len(pairs) == 6 and [p["text"] for p in pairs] == [p["text"] for p in again]
    for pair in pairs:
        cells = read_cells(Path(pair["image"]))
        for name, cell in zip(CELL_NAMES, cells):
            assert f"{name}: {desc(cell)}." in pair["text"]
        assert pair["text"].endswith(f"Shapes: {sum(c is not None for c in cells)}.")


def test_solution_pairs_are_correct_for_their_pictures(tmp_path):
    pairs = list(solution_pairs(40, seed=4, image_dir=tmp_path))
    assert [Path(p["image"]).name for p in pairs[:2]] == ["solution_000000.png", "solution_000001.png"]
    for p in pairs:
        truths, answer = step_truths(p["question"], p["steps"], [read_cells(Path(p["image"]))])
        assert all(truths) and answer == p["answer"], p
    with pytest.raises(ValueError, match="solution_pairs: n must be an integer >= 0"):
        list(solution_pairs(-1, image_dir=tmp_path))
