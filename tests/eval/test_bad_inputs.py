"""Bad inputs to eval.py, table-driven: each is exit code 2 and one line naming the file, no traceback,
and no output that looks complete (issue 13).

Every case runs the real entry point in a subprocess. The model-mode cases fail before a model is
loaded (a tiny real base checkpoint is named, never read), so the table stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

PC = {"label_coding": "process_correctness"}
ROWS = [
    {"id": "a1", "data_source": "MMMU_DEV_VAL", **PC, "labels": [1, -1, 0], "scores": [0.9, 0.3, 0.6]},
    {"id": "a2", "data_source": "MMMU_DEV_VAL", **PC, "labels": [1, -1], "scores": [0.8, 0.2]},
    {"id": "b1", "data_source": "WeMath", **PC, "labels": [1, -1], "scores": [0.5, 0.1]},
]


def lines(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def unwritable_folder(tmp: Path) -> Path | None:
    """A folder this process cannot create files in (chmod; as root, a path under /sys), or None."""
    ro = tmp / "read-only"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        (ro / "probe").write_text("x")
    except OSError:
        return ro / "out"
    (ro / "probe").unlink()
    candidate = Path("/sys/mprm-eval-test-out")  # root ignores permissions; sysfs refuses new folders
    try:
        candidate.mkdir()
    except OSError:
        return candidate
    candidate.rmdir()
    return None


class Ctx:
    """What a case builds its command from: a temporary folder, the synthetic data and a model folder."""

    def __init__(self, tmp: Path, synth: Path, model: Path) -> None:
        self.tmp, self.synth, self.model = tmp, synth, model
        self.out = tmp / "out"

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return path

    def predictions(self, content: str | bytes, name: str = "p.jsonl") -> list[str]:
        return ["--predictions", str(self.file(name, content)), "--output", str(self.out)]

    def bench_lines(self, n: int = 3) -> list[str]:
        return (self.synth / "benchmark" / "test.jsonl").read_text().splitlines()[:n]

    def model_mode(self, bench: Path, *extra: str) -> list[str]:
        return ["--model", str(self.model), "--benchmark", str(bench), "--image-root", str(self.synth),
                "--output", str(self.out), *extra]


def _broken_bench(c: Ctx) -> list[str]:
    first, second = c.bench_lines(2)
    bad = json.loads(second)
    bad["response"]["process_correctness"][0] = 5
    return c.model_mode(c.file("b.jsonl", first + "\n" + json.dumps(bad) + "\n"))


def _missing_image(c: Ctx, *, skip: bool, all_missing: bool) -> list[str]:
    items = [json.loads(x) for x in c.bench_lines(3)]
    for i, it in enumerate(items):
        if all_missing or i == 1:
            it["image"] = [f"images/nope-{i}.png"]
    return c.model_mode(c.file("b.jsonl", lines(items)), *(["--skip-missing-images"] if skip else []))


def _unwritable(c: Ctx, mode: str) -> list[str] | None:
    out = unwritable_folder(c.tmp)
    if out is None:
        return None
    c.out = out
    if mode == "predictions":
        return c.predictions(lines(ROWS))
    return c.model_mode(c.file("b.jsonl", "\n".join(c.bench_lines(2)) + "\n"))


# (case id, command builder, regex the one error line must match after "eval.py: error: ")
CASES: list[tuple[str, Callable[[Ctx], list[str] | None], str]] = [
    ("missing predictions file", lambda c: ["--predictions", str(c.tmp / "nope.jsonl"), "--output", str(c.out)],
     r".*/nope\.jsonl: no such file"),
    ("folder instead of a file", lambda c: ["--predictions", str(c.tmp), "--output", str(c.out)],
     r".*: is a folder, expected a file \(--predictions\)"),
    ("empty file", lambda c: c.predictions(""), r".*/p\.jsonl: empty file \(no rows\)"),
    ("byte-order mark", lambda c: c.predictions(b"\xef\xbb\xbf" + lines(ROWS).encode()),
     r".*/p\.jsonl:1: starts with a UTF-8 byte-order mark \(BOM\).*without BOM"),
    ("CRLF line ends", lambda c: c.predictions(lines(ROWS).replace("\n", "\r\n")),
     r".*/p\.jsonl:1: line ends with CRLF .*dos2unix"),
    ("truncated last line", lambda c: c.predictions(lines(ROWS)[:-20]),
     r".*/p\.jsonl:3: truncated last line \(no newline, not complete JSON\).*--resume"),
    ("extra unknown field", lambda c: c.predictions(lines([ROWS[0], {**ROWS[1], "note": "x"}, ROWS[2]])),
     r".*/p\.jsonl:2: unknown field 'note'"),
    ("NaN score", lambda c: c.predictions(lines(ROWS[:1]) + lines(ROWS[1:2]).replace("0.8", "NaN")),
     r".*/p\.jsonl:2: NaN is not a number JSON allows"),
    ("infinite score", lambda c: c.predictions(lines(ROWS).replace("0.9", "Infinity", 1)),
     r".*/p\.jsonl:1: Infinity is not a number JSON allows"),
    ("labels and scores of different lengths", lambda c: c.predictions(lines([ROWS[0], {**ROWS[1], "scores": [0.8]}])),
     r".*/p\.jsonl:2: 2 labels but 1 scores"),
    ("not JSON", lambda c: c.predictions("id,score\na1,0.5\n"), r".*/p\.jsonl:1: not valid JSON"),
    ("not UTF-8", lambda c: c.predictions(lines(ROWS).encode() + b'{"id": "\xff"}\n'), r".*/p\.jsonl:4: not valid UTF-8"),
    ("old label coding", lambda c: c.predictions(lines([{k: v for k, v in ROWS[0].items() if k != "label_coding"}])),
     r".*/p\.jsonl:1: no 'label_coding' field: .*old internal coding"),
    ("label outside the coding", lambda c: c.predictions(lines([{**ROWS[0], "labels": [1, 2, 0]}])),
     r".*/p\.jsonl:1: labels\[1\] = 2, expected 1 \(correct\), -1 \(incorrect\) or 0 \(neutral\)"),
    ("null score before a scored step", lambda c: c.predictions(lines([{**ROWS[0], "scores": [None, 0.3, 0.6]}])),
     r".*/p\.jsonl:1: scores\[0\] is null but a later step has a score"),
    ("duplicate id", lambda c: c.predictions(lines(ROWS + ROWS[:1])), r".*/p\.jsonl:4: id 'a1' already appears at .*p\.jsonl:1"),
    ("only neutral steps", lambda c: c.predictions(lines([{**ROWS[0], "labels": [0, 0, 0]}])),
     r".*/p\.jsonl: no scored non-neutral step"),
    ("dev file is a folder", lambda c: c.predictions(lines(ROWS)) + ["--dev", str(c.tmp)],
     r".*: is a folder, expected a file \(--dev\)"),
    ("unwritable output folder (predictions)", lambda c: _unwritable(c, "predictions"),
     r".*: cannot write into the output folder \(.*\): choose another --output"),
    ("missing model folder", lambda c: c.model_mode(c.tmp / "b.jsonl") [:1] + [str(c.tmp / "runs" / "x" / "final")]
     + c.model_mode(c.tmp / "b.jsonl")[2:], r".*/runs/x/final: no such model folder \(--model\)"),
    ("missing benchmark", lambda c: c.model_mode(c.tmp / "nope.jsonl"), r".*/nope\.jsonl: no such file \(--benchmark\)"),
    ("bad benchmark line", _broken_bench, r".*/b\.jsonl:2: response\.process_correctness\[0\]: not 1, 0 or -1"),
    ("missing image", lambda c: _missing_image(c, skip=False, all_missing=False),
     r".*/b\.jsonl: item '.*': image 'images/nope-1\.png' not found under .*--skip-missing-images"),
    ("no image found at all", lambda c: _missing_image(c, skip=True, all_missing=True),
     r".*/b\.jsonl: no image found for any of 3 items under .* \(first tried: .*images/nope-0\.png\)"),
    ("missing image root", lambda c: c.model_mode(c.file("b.jsonl", c.bench_lines(1)[0] + "\n"))[:5]
     + [str(c.tmp / "no-root")] + c.model_mode(c.tmp / "b.jsonl")[6:], r".*/no-root: no such folder \(--image-root\)"),
    ("unwritable output folder (model)", lambda c: _unwritable(c, "model"),
     r".*: cannot write into the output folder \(.*\): choose another --output"),
    ("missing run folder", lambda c: ["--checkpoints", str(c.tmp / "run"), "--benchmark", str(c.file("b.jsonl", c.bench_lines(1)[0] + "\n")),
                                      "--image-root", str(c.synth), "--output", str(c.out)],
     r".*/run: no such run folder \(--checkpoints\)"),
    ("missing Best-of-N file", lambda c: ["--bon", str(c.tmp / "bon.jsonl"), "--model", str(c.model), "--image-root",
                                          str(c.synth), "--output", str(c.out)], r".*/bon\.jsonl: no such file \(--bon\)"),
]


@pytest.mark.parametrize("build, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(build, pattern, tmp_path, synth_dir, tiny_qwen_dir, repo_root):
    ctx = Ctx(tmp_path, synth_dir, tiny_qwen_dir)
    argv = build(ctx)
    if argv is None:
        pytest.skip("no unwritable folder can be made here")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPRM_DEBUG": ""}
    res = subprocess.run([sys.executable, str(repo_root / "eval.py"), *argv], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("eval.py: error: "), res.stderr
    import re

    assert re.match(pattern, errors[0][len("eval.py: error: "):]), errors[0]
    for name in ("metrics.json", "metrics.md", "predictions.jsonl"):
        assert not (ctx.out / name).exists(), name


def test_debug_shows_the_traceback(tmp_path, repo_root):
    res = subprocess.run([sys.executable, str(repo_root / "eval.py"), "--predictions", str(tmp_path / "nope.jsonl"),
                          "--output", str(tmp_path / "out"), "--debug"], capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" in res.stderr and "nope.jsonl: no such file" in res.stderr
