"""``mprm select`` end to end on hand-made corpora: outputs, accounting, bad input strict and lenient."""

from __future__ import annotations

import json
import math

import pytest

from mprm.cli import main

BAD_CASES = [
    # (line bytes or record, field: problem in the message)
    (b'{"image": "a.png", "steps_with_score": [', "line: invalid JSON"),
    (b"[1, 2, 3]", "line: not a JSON object"),
    (b'"just a string"', "line: not a JSON object"),
    ("no_image", "image: missing"),
    ("empty_image", "image: empty"),
    ("empty_image_list", "image: empty"),
    ("no_steps", "steps_with_score: missing"),
    ("empty_steps", "steps_with_score: empty"),
    ("empty_step_text", "steps_with_score[1].step: empty"),
    ("blank_step_text", "steps_with_score[0].step: empty"),
    ("no_score", "steps_with_score[1].score: missing"),
    ("string_score", "steps_with_score[0].score: not a number"),
    ("bool_score", "steps_with_score[0].score: not a number"),
    (b'{"image": "a.png", "question": "q", "steps_with_score": [{"step": "s", "score": NaN}]}',
     "steps_with_score[0].score: NaN"),
    ("score_above_one", "steps_with_score[1].score: outside [0, 1]"),
    ("negative_score", "steps_with_score[0].score: outside [0, 1]"),
    ("correct_gt_total", "steps_with_score[0].num_mc_correct: greater than num_mc_total"),
    (b'{"image": "a\xff.png", "question": "q", "steps_with_score": [{"step": "s", "score": 1.0}]}',
     "line: not valid UTF-8"),
]


def _bad(tools, name):
    if isinstance(name, bytes):
        return name
    r = tools.rollout([1.0, 0.5])
    steps = r["steps_with_score"]
    edits = {
        "no_image": lambda: r.pop("image"),
        "empty_image": lambda: r.update(image=""),
        "empty_image_list": lambda: r.update(image=[]),
        "no_steps": lambda: r.pop("steps_with_score"),
        "empty_steps": lambda: r.update(steps_with_score=[]),
        "empty_step_text": lambda: steps[1].update(step=""),
        "blank_step_text": lambda: steps[0].update(step="  \n "),
        "no_score": lambda: steps[1].pop("score"),
        "string_score": lambda: steps[0].update(score="0.5"),
        "bool_score": lambda: steps[0].update(score=True),
        "score_above_one": lambda: steps[1].update(score=1.5),
        "negative_score": lambda: steps[0].update(score=-0.0625),
        "correct_gt_total": lambda: steps[0].update(num_mc_correct=17),
    }
    edits[name]()
    return r


def _run(args, capsys):
    code = main(["select", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("bad,message", BAD_CASES, ids=[m for _, m in BAD_CASES])
def test_bad_record_strict_and_lenient(tmp_path, tools, capsys, bad, message):
    good = [tools.rollout([1.0, 0.0]), tools.rollout([1.0, 1.0]), tools.rollout([0.5, 0.0, 0.0])]
    path = tools.write_jsonl(tmp_path / "ann" / "src.jsonl", [good[0], good[1], _bad(tools, bad), good[2]])
    out = tmp_path / "out"
    code, err = _run(["--input", str(path.parent), "--strategy", "bis", "--fraction", "0.5", "--no-plot", "--output", str(out)], capsys)
    assert code == 2
    assert f"{path}:3: {message}" in err  # FILE:LINE: field: problem (value)
    assert err.split(f"{path}:3: ")[1].split("\n")[0].rstrip().endswith(")")

    code, err = _run(["--input", str(path.parent), "--strategy", "bis", "--fraction", "0.5", "--lenient",
                      "--no-plot", "--output", str(out)], capsys)
    assert code == 0, err
    manifest = tools.read_jsonl(out / "manifest.jsonl")
    assert [r["line"] for r in manifest] == [1, 2, 3, 4]
    assert manifest[2]["reason"].startswith(message) and manifest[2]["score"] is None and not manifest[2]["selected"]
    report = json.loads((out / "report.json").read_text())
    assert report["input"]["rejected"] == 1 and report["input"]["valid"] == 3
    code_key = message.replace("[1]", "[]").replace("[0]", "[]")
    (reason, count), = report["input"]["rejected_by_reason"].items()
    assert count == 1 and reason.startswith(code_key)
    # k = max(1, floor(3 * 0.5)) = 1 among the three valid rollouts: BIS .3, .05, (2/9+.05)*.5 -> line 1
    assert [r["line"] for r in manifest if r["selected"]] == [1]


@pytest.mark.slow
def test_outputs_and_accounting(tmp_path, tools, capsys):
    ann = tmp_path / "annotations"
    a = [tools.rollout(s) for s in ([1.0, 0.0], [0.25, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0], [0.875, 0.0, 0.0])]
    a[1]["id"] = "custom-7"
    tools.write_jsonl(ann / "b_src.jsonl", [a[0], "", a[1], "   ", a[2], a[3], a[4], "[1]"])
    tools.write_jsonl(ann / "a_src.jsonl", [tools.rollout([1.0, 0.5, 0.0]), tools.rollout([1.0])])
    out = tmp_path / "out"
    code, err = _run(["--input", str(tmp_path), "--strategy", "bis", "--fraction", "0.4", "--alpha", "0.05",
                      "--lenient", "--output", str(out)], capsys)
    assert code == 0, err
    for name in ("manifest.jsonl", "selected.jsonl", "report.json", "report.md", "scores.png"):
        assert (out / name).stat().st_size > 0
    manifest = tools.read_jsonl(out / "manifest.jsonl")
    # one row per non-empty line: 2 + 6; files in sorted name order
    assert [(r["file"], r["line"]) for r in manifest] == [("a_src.jsonl", 1), ("a_src.jsonl", 2)] + [
        ("b_src.jsonl", n) for n in (1, 3, 5, 6, 7, 8)]
    assert manifest[3]["id"] == "custom-7" and manifest[2]["id"] == "b_src:1"
    report = json.loads((out / "report.json").read_text())
    # a_src: m = 2, k = max(1, floor(0.8)) = 1; b_src: m = 5, k = 2
    assert report["k"] == {"a_src": 1, "b_src": 2}
    assert sum(r["selected"] for r in manifest) == 3 == report["selected"]
    selected = tools.read_jsonl(out / "selected.jsonl")
    # b_src BIS: .3, (.25+.05)*.25=.075, .05, .05, (2/9+.05)*.875=.2382 -> lines 1 and 7
    assert [r["id"] for r in selected] == ["a_src:1", "b_src:1", "b_src:7"]
    assert selected[2]["labels"] == [1.0, 0.0, 0.0] and selected[2]["mc_scores"] == [0.875, 0.0, 0.0]
    assert selected[0]["question"] == "How many circles?" and selected[0]["images"] == ["images/a.png"]
    corpus = report["corpus"]["total"]
    assert corpus["rollouts"] == 7 and corpus["steps"] == 3 + 1 + 2 + 2 + 3 + 2 + 3
    assert corpus["error_step_ratio"] == pytest.approx(7 / 16)
    assert corpus["mean_mc"] == pytest.approx((1.5 + 1.0 + 1.0 + 0.25 + 3.0 + 0.0 + 0.875) / 16)
    assert corpus["mixed_share"] == pytest.approx(4 / 7)
    assert report["subset"]["total"]["rollouts"] == 3 and report["subset"]["total"]["steps"] == 8
    assert report["input"]["rejected_by_reason"] == {"line: not a JSON object": 1}
    assert "| **total** |" in (out / "report.md").read_text()


def test_thresholds_soft_labels_and_unannotated(tmp_path, tools, capsys):
    r = tools.rollout([1.0, 0.0625, 0.0, 0.0], totals=[16, 16, 16, 0])
    path = tools.write_jsonl(tmp_path / "s.jsonl", [r])
    out = tmp_path / "o"
    assert _run(["--input", str(path), "--strategy", "full", "--label-threshold", "1/16", "--no-plot", "--output", str(out)], capsys)[0] == 0
    row = tools.read_jsonl(out / "selected.jsonl")[0]
    assert row["labels"] == [1.0, 0.0, 0.0, 0.0]
    report = json.loads((out / "report.json").read_text())
    assert report["input"]["unannotated_steps"] == 1
    assert report["corpus"]["total"]["error_step_ratio"] == pytest.approx(3 / 4)  # s <= 1/16
    assert _run(["--input", str(path), "--strategy", "full", "--soft-labels", "--unannotated", "truncate",
                 "--no-plot", "--output", str(out)], capsys)[0] == 0
    row = tools.read_jsonl(out / "selected.jsonl")[0]
    assert row["labels"] == [1.0, 0.0625, 0.0] and len(row["steps"]) == 3
    report = json.loads((out / "report.json").read_text())
    assert report["corpus"]["total"]["steps"] == 3 and report["corpus"]["total"]["error_step_ratio"] == pytest.approx(1 / 3)
    # a rollout that starts unannotated has no annotated step left under truncate
    bad = tools.write_jsonl(tmp_path / "t.jsonl", [tools.rollout([0.0, 0.0], totals=[0, 0])])
    code, err = _run(["--input", str(bad), "--strategy", "full", "--unannotated", "truncate", "--output", str(out)], capsys)
    assert code == 2 and "t.jsonl:1: steps_with_score: no annotated step" in err


@pytest.mark.parametrize("args,needle", [
    (["--strategy", "bis"], "--fraction is required"),
    (["--strategy", "bis", "--fraction", "1.5"], "must be in (0, 1]"),
    (["--strategy", "nope", "--fraction", "0.5"], "invalid choice"),
    (["--strategy", "bis", "--fraction", "0.5", "--label-threshold", "0.1", "--soft-labels"], "not allowed"),
])
def test_bad_arguments_exit_2(tmp_path, tools, capsys, args, needle):
    path = tools.write_jsonl(tmp_path / "s.jsonl", [tools.rollout([1.0])])
    code, err = _run(["--input", str(path), "--output", str(tmp_path / "o"), *args], capsys)
    assert code == 2 and needle in err


def test_missing_input_exit_2(tmp_path, capsys):
    code, err = _run(["--input", str(tmp_path / "nope"), "--strategy", "full", "--output", str(tmp_path / "o")], capsys)
    assert code == 2 and "no such file" in err


def test_determinism_and_workers(tmp_path, tools, capsys, monkeypatch):
    import random

    from mprm.data import pipeline

    monkeypatch.setattr(pipeline, "POOL_MIN_BYTES", 0)  # a pool even for these small files

    rng = random.Random(1)
    for s in range(3):
        recs = [tools.rollout([rng.choice([0.0, 1.0, 0.5, 0.9375]) for _ in range(rng.randint(1, 6))]) for _ in range(40)]
        tools.write_jsonl(tmp_path / "ann" / f"s{s}.jsonl", recs)
    outs = []
    for i, (seed, workers) in enumerate([(5, 1), (5, 2), (6, 1)]):
        out = tmp_path / f"o{i}"
        assert _run(["--input", str(tmp_path / "ann"), "--strategy", "random", "--fraction", "0.25", "--seed", str(seed),
                     "--workers", str(workers), "--no-plot", "--output", str(out)], capsys)[0] == 0
        outs.append((out / "selected.jsonl").read_bytes() + (out / "manifest.jsonl").read_bytes())
    assert outs[0] == outs[1] and outs[0] != outs[2]


def _varied_lines(tools) -> list:
    """Valid lines of many shapes, lines the typed decoder accepts but the rules reject, and lines
    it cannot decode, so that every path of the fast scan and of the spliced writer is taken."""
    r = tools.rollout
    valid = [
        r([1.0, 0.0], id=7),
        r([0.5, 0.25, 0.0], id="abc", image=["x.png", "y.png"]),
        r([0.1, 0.7], id=None, question_orig="  "),  # blank question_orig -> question; 0.1 not dyadic
        r([1, 0], question_orig=5, answer=[1, 2]),
        r([0.0625, 0.0, 0.0], totals=[16, 0, 16], answer=None),
        r([1.0], question_orig="Combien de cercles ? é ü 中文", response={"nested": [1, "x"]}),
        r([0.75, 1e-300], id=1.5),
        r([0.5]) | {"steps_with_score": [{"step": "  leading space", "score": 0.5}]},
        r([0.5]) | {"steps_with_score": [{"step": "no counts", "score": 0.5, "num_mc_correct": None, "num_mc_total": None}]},
        r([0.9375, 0.0]) | {"answer": 4.0},
        r([0.0, 0.5], totals=[0, 16]),  # unannotated first step: rejected under truncate
        r([0.5, 0.5], id=123456789012345678901234567890, big=-123456789012345678901234567890, flag=True, note=None),
    ]
    decodable_bad = [
        r([1.5]),
        r([-0.0625, 1.0]),
        r([1.0]) | {"steps_with_score": [{"step": "a", "score": 0.5, "num_mc_correct": 9, "num_mc_total": 8}]},
        r([1.0]) | {"steps_with_score": [{"step": "", "score": 0.5}]},
        r([1.0]) | {"steps_with_score": [{"step": "\u3000 \n", "score": 0.5}]},
        r([1.0], image=""),
        r([1.0], image=[]),
        r([1.0], image=["a.png", " "]),
        r([1.0]) | {"steps_with_score": []},
        r([1.0]) | {"question_orig": None, "question": None},
    ]
    undecodable = [
        b'{"image": "a.png", "question": "q", "steps_with_score": [{"step": "s", "score": "0.5"}]}',
        b'{"image": "a.png", "question": "q", "steps_with_score": [{"step": "s", "score": NaN}]}',
        b'{"image": "a.png", "question": "q", "steps_with_score": [{"step": "s", "score": 0.5, "num_mc_total": -1}]}',
        b"[1, 2]",
        b'{"image": "a\xff.png", "question": "q", "steps_with_score": [{"step": "s", "score": 1.0}]}',
        b'{"image": "a.png", "steps_with_score": [',
    ]
    lines: list = []
    for i in range(3):
        lines += valid
        lines += [json.dumps(x, ensure_ascii=bool(i % 2)).encode() + (b"\r" if i == 1 else b"") for x in valid[:4]]
        lines += [decodable_bad[i :: 3], undecodable[i :: 3]][i % 2]
        lines += ["", "  "] if i == 2 else []
    return lines


@pytest.mark.parametrize("chunk_bytes", [64, 700, 1 << 21])
@pytest.mark.parametrize("unannotated,threshold", [("negative", 0.0), ("truncate", 0.0625)])
def test_fast_scan_agrees_with_precise_reader_in_every_chunking(tmp_path, tools, monkeypatch, chunk_bytes, unannotated, threshold):
    from mprm.data import jsonl
    from mprm.data.lines import iter_lines

    path = tools.write_jsonl(tmp_path / "src.jsonl", _varied_lines(tools))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    monkeypatch.setattr(jsonl, "CHUNK_BYTES", chunk_bytes)
    scan = jsonl.scan_file(path, source="src", lenient=True, unannotated=unannotated, threshold=threshold)
    results = tools.precise(path, unannotated=unannotated)
    assert scan.n_lines == len(results)
    expected = []
    for line, c, _ in results:
        if c is None:
            continue
        s = c.scores
        unann = sum(t == 0 for t in c.num_mc_total) if unannotated == "negative" else None
        expected.append((line, c.id, len(s), sum(v > 0 for v in s), math.fsum(s), sum(v <= threshold for v in s), unann))
    unann = scan.n_unannotated.tolist() if unannotated == "negative" else [None] * len(scan)
    got = list(zip(scan.line.tolist(), scan.ids or [None] * len(scan), scan.n_steps.tolist(), scan.n_pos.tolist(),
                   scan.sum_mc.tolist(), scan.n_err.tolist(), unann))
    assert got == expected
    assert [(line, reason) for line, _, reason, _ in scan.rejected] == [(n, why) for n, c, why in results if c is None]
    raw = path.read_bytes()
    spans = list(zip(scan.line.tolist(), scan.offset.tolist(), scan.size.tolist()))
    for line, offset, size in spans:  # offsets point at the line's own bytes
        assert raw[offset : offset + size].rstrip(b"\r") == raw.split(b"\n")[line - 1].lstrip(b"\xef\xbb\xbf").rstrip(b"\r")
    lines = list(iter_lines(path))  # the other readers' line reader: the same lines and offsets
    assert [n for n, _, _ in lines] == [n for n, _, _ in results]
    assert {n: (o, len(b)) for n, o, b in lines if n in scan.line} == {n: (o, size) for n, o, size in spans}


def test_manifest_lines_are_orjson_rows():
    import numpy as np
    import orjson

    from mprm.data.jsonl import FileScan
    from mprm.data.outputs import manifest_lines

    for ids in (None, ["own-1", None, 'q"uote']):
        scan = FileScan(path="x", file="50%_é.jsonl", source="50%_é", line=np.array([1, 4, 6]),
                        rejected=[(2, "50%_é:2", "line: invalid JSON ('x')", "line: invalid JSON"), (7, "z", "image: empty ('')", "image: empty")],
                        ids=ids)
        scores = np.array([0.25828, 1e-7, 0.1 + 0.2])
        kept = np.array([True, False, True])
        rows = [{"file": scan.file, "line": n, "source": scan.source, "id": (ids[j] if ids and ids[j] else f"{scan.source}:{n}"),
                 "score": float(scores[j]), "selected": bool(kept[j]), "reason": None} for j, n in enumerate([1, 4, 6])]
        rows += [{"file": scan.file, "line": n, "source": scan.source, "id": rid, "score": None, "selected": False, "reason": why}
                 for n, rid, why, _ in scan.rejected]
        rows.sort(key=lambda row: row["line"])
        assert manifest_lines(scan, scores, kept) == b"".join(orjson.dumps(row) + b"\n" for row in rows)


def test_scores_png_bars(tmp_path):
    """100 not-kept rollouts at score 0 and 10 kept at score 1: a grey bar at the left edge, a
    blue one at the right edge, the grey one taller (log axis: 100 vs 10)."""
    import numpy as np
    from PIL import Image

    from mprm.data.report import plot_scores

    plot_scores(tmp_path / "s.png", np.array([0.0] * 100 + [1.0] * 10), np.array([False] * 100 + [True] * 10), label="BIS")
    image = np.asarray(Image.open(tmp_path / "s.png").convert("RGB"))
    assert image.shape == (350, 600, 3)
    grey = np.argwhere((image == (187, 187, 187)).all(axis=2))
    blue = np.argwhere((image == (31, 119, 180)).all(axis=2))
    plot_grey, plot_blue = grey[grey[:, 1] < 480], blue[blue[:, 1] < 480]  # leave out the legend (top right)
    assert len(plot_grey) and plot_grey[:, 1].max() < 100 and not len(plot_blue[plot_blue[:, 0] > 60])
    bars_blue = blue[blue[:, 0] > 60]
    assert bars_blue[:, 1].min() > 560
    assert plot_grey[:, 0].min() < bars_blue[:, 0].min()  # the taller bar starts higher up


def test_strict_error_in_a_later_file_leaves_no_outputs(tmp_path, tools, capsys, monkeypatch):
    from mprm.data import pipeline

    monkeypatch.setattr(pipeline, "POOL_MIN_BYTES", 0)
    for i in range(3):
        recs = [tools.rollout([1.0, 0.0]), tools.rollout([0.5])] + ([b"not json"] if i == 2 else [])
        tools.write_jsonl(tmp_path / "ann" / f"s{i}.jsonl", recs)
    out = tmp_path / "out"
    code, err = _run(["--input", str(tmp_path / "ann"), "--strategy", "bis", "--fraction", "0.5", "--workers", "2",
                      "--output", str(out)], capsys)
    assert code == 2 and "s2.jsonl:3: line: invalid JSON" in err
    assert list(out.iterdir()) == []
