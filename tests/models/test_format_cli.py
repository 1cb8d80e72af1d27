"""``mprm format``: what the model sees for one record of a corpus, a selection or a benchmark file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mprm.data.examples import default_image_root, read_example
from mprm.data.validation import DataError


def _mprm(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mprm.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_read_example_of_each_format(synth_dir, tmp_path):
    corpus = sorted((synth_dir / "annotations").glob("*.jsonl"))[0]
    kind, ex = read_example(corpus, 1)
    raw = json.loads(corpus.read_text().splitlines()[0])
    assert kind == "corpus" and ex["steps"] == [s["step"] for s in raw["steps_with_score"]]
    assert ex["labels"] == [1.0 if s["score"] > 0 else 0.0 for s in raw["steps_with_score"]]
    kind, ex = read_example(synth_dir / "benchmark" / "test.jsonl", 2)
    bench = json.loads((synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()[1])
    assert kind == "benchmark"
    assert ex["labels"] == [{1: 1, -1: 0, 0: -1}[y] for y in bench["response"]["process_correctness"]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "question": "q"}\n\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: line: not a corpus \(steps_with_score\), training"):
        read_example(bad, 1)
    with pytest.raises(DataError, match=r"bad.jsonl:2: line: empty"):
        read_example(bad, 2)
    with pytest.raises(DataError, match=r"bad.jsonl:5: line: the file has only 2 lines"):
        read_example(bad, 5)
    (tmp_path / "root" / "annotations").mkdir(parents=True)
    assert default_image_root(tmp_path / "root" / "annotations" / "x.jsonl") == (tmp_path / "root").resolve()
    assert default_image_root(tmp_path / "vpb" / "test.jsonl") == (tmp_path / "vpb").resolve()


@pytest.mark.slow
def test_mprm_format_human_and_json(tiny_internvl_dir, synth_dir, tmp_path):
    from mprm.models import build_reward_model

    corpus = sorted((synth_dir / "annotations").glob("*.jsonl"))[0]
    res = _mprm("format", "--model", tiny_internvl_dir, "--input", corpus, "--line", 3)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("<s><|im_start|>system\n")
    assert "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n<img><IMG_CONTEXT>x" in res.stdout
    assert "<prm>[label=" in res.stdout and "TRUNCATED" not in res.stdout

    bench = synth_dir / "benchmark" / "test.jsonl"
    res = _mprm("format", "--model", tiny_internvl_dir, "--input", bench, "--image-root", synth_dir, "--json")
    assert res.returncode == 0, res.stderr
    view = json.loads(res.stdout)
    item = json.loads(bench.read_text().splitlines()[0])
    assert set(view) == {"text", "input_ids", "prm_positions", "labels"}
    assert len(view["prm_positions"]) == len(item["response"]["steps"])
    assert view["labels"] == [{1: 1.0, -1: 0.0, 0: None}[y] for y in item["response"]["process_correctness"]]
    assert "<IMG_CONTEXT><IMG_CONTEXT>" in view["text"]  # the full decode: nothing shortened

    short = tmp_path / "short"
    build_reward_model(tiny_internvl_dir, max_length=320).save_pretrained(short)
    res = _mprm("format", "--model", short, "--input", corpus, "--line", 3)
    assert res.returncode == 0, res.stderr
    assert "TRUNCATED:" in res.stdout and "cut by max_length 320" in res.stdout

    res = _mprm("format", "--model", tiny_internvl_dir, "--input", bench)  # images are not beside test.jsonl here
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "not found (image root" in res.stderr and str(bench.parent) in res.stderr


def test_mprm_format_labels_as_training_makes_them(tiny_internvl_dir, synth_dir):
    """--soft-labels shows the MC scores themselves, --label-threshold T hard 1[s > T]; not both."""
    corpus = sorted((synth_dir / "annotations").glob("*.jsonl"))[0]
    lines = corpus.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1)
                if any(0 < s["score"] < 1 for s in json.loads(text)["steps_with_score"]))
    scores = [s["score"] for s in json.loads(lines[line - 1])["steps_with_score"]]
    common = ("format", "--model", tiny_internvl_dir, "--input", corpus, "--line", line, "--json")
    soft = _mprm(*common, "--soft-labels")
    assert soft.returncode == 0, soft.stderr
    assert json.loads(soft.stdout)["labels"] == scores
    hard = _mprm(*common, "--label-threshold", 0.5)
    assert hard.returncode == 0, hard.stderr
    assert json.loads(hard.stdout)["labels"] == [1.0 if s > 0.5 else 0.0 for s in scores]
    both = _mprm(*common, "--soft-labels", "--label-threshold", 0.5)
    assert both.returncode == 2 and "not allowed with" in both.stderr
