"""One error convention at every entry point (issue 13): a user error exits 2 with one line
``PROG: error: FILE[:LINE]: what (value): how to fix``, no traceback, and nothing written that
looks complete. The evaluation's own table is tests/eval/test_bad_inputs.py; this one covers
mprm select, train.py (config and data), mprm report, launch/sweep.py, mprm convert-internvl,
mprm format and mprm synth, with the shapes real files come in (BOM, CRLF, a truncated last line,
an extra field, NaN, an empty file, a folder where a file is expected, an unwritable output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Case:
    name: str
    argv: list[str]                      # {T}: the case's tmp folder, {S}: the synthetic corpus, {M}: tiny model
    exit: int = 2
    says: tuple[str, ...] = ()           # substrings of stderr ({T}, {S} expanded)
    absent: tuple[str, ...] = ()         # paths that must not exist afterwards (complete-looking outputs)
    setup: str = ""                      # name of a file recipe below
    env: dict = field(default_factory=dict)


def _corpus_lines(synth: Path) -> list[str]:
    return (sorted((synth / "annotations").glob("*.jsonl"))[0]).read_text(encoding="utf-8").splitlines()


def _setup(kind: str, tmp: Path, synth: Path) -> None:
    lines = _corpus_lines(synth)
    if kind == "truncated":
        (tmp / "c.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:40], encoding="utf-8")
    elif kind == "nan":
        row = json.loads(lines[1])
        row["steps_with_score"][0]["score"] = float("nan")
        (tmp / "c.jsonl").write_text(lines[0] + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    elif kind == "bom_crlf_extra":
        rows = [json.loads(ln) for ln in lines[:4]]
        for r in rows:
            r["reviewer_note"] = "an extra field real files carry"
        (tmp / "c.jsonl").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(json.dumps(r) for r in rows).encode() + b"\r\n")
    elif kind == "empty":
        (tmp / "c.jsonl").write_text("", encoding="utf-8")
    elif kind == "not_parquet":  # a .parquet that is not one (a failed download, a renamed jsonl)
        (tmp / "c.parquet").write_text(lines[0] + "\n", encoding="utf-8")
    elif kind == "yaml":
        (tmp / "c.yaml").write_text("train:\n  lr: [1e-5\n", encoding="utf-8")
    elif kind == "file_as_output":
        (tmp / "out").write_text("not a folder", encoding="utf-8")
    elif kind == "corpus_root":  # VisualPRM400K as downloaded: <root>/annotations + images beside it
        (tmp / "root" / "annotations").mkdir(parents=True)
        row = json.loads(lines[0])
        row["image"] = "VisualPRM400K-v1.1-Raw/missing/picture.png"
        (tmp / "root" / "annotations" / "src.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    elif kind == "selected":  # a training selection (what mprm select writes), not a corpus
        row = {"id": "a:1", "source": "a", "images": [], "question": "1 + 1?", "steps": ["2"], "labels": [1.0]}
        (tmp / "selected.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    elif kind == "bad_run":
        run = tmp / "runs" / "r1"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text("model: [unclosed\n", encoding="utf-8")


TRAIN = [sys.executable, str(REPO / "train.py"), "--config", str(REPO / "configs/tiny/qwen2_5_vl.yaml"),
         "model.path={M}", "data.image_root={S}", "train.output_dir={T}/run", "logging.progress_bar=false"]
MPRM = [sys.executable, "-m", "mprm.cli"]

CASES = [
    # mprm select
    Case("select: missing input", MPRM + ["select", "--input", "{T}/nope", "--strategy", "bis", "--fraction", "0.5",
                                          "--output", "{T}/out"], says=("{T}/nope",), absent=("{T}/out/selected.jsonl",)),
    Case("select: a .parquet that is not parquet", MPRM + ["select", "--input", "{T}/c.parquet", "--strategy", "bis",
                                                            "--fraction", "0.5", "--output", "{T}/out"],
         setup="not_parquet", says=("{T}/c.parquet: not a readable parquet file",),
         absent=("{T}/out/selected.jsonl", "{T}/out/report.json")),
    Case("select: truncated last line", MPRM + ["select", "--input", "{T}/c.jsonl", "--strategy", "bis", "--fraction",
                                                "0.5", "--output", "{T}/out"], setup="truncated",
         says=("{T}/c.jsonl:4:",), absent=("{T}/out/selected.jsonl", "{T}/out/report.json")),
    Case("select: NaN score", MPRM + ["select", "--input", "{T}/c.jsonl", "--strategy", "bis", "--fraction", "0.5",
                                      "--output", "{T}/out"], setup="nan",
         says=("{T}/c.jsonl:2:", "steps_with_score[0].score"), absent=("{T}/out/selected.jsonl",)),
    Case("select: BOM, CRLF and an extra field are read", MPRM + ["select", "--input", "{T}/c.jsonl", "--strategy",
                                                                 "bis", "--fraction", "0.5", "--output", "{T}/out"],
         setup="bom_crlf_extra", exit=0),
    Case("select: empty file", MPRM + ["select", "--input", "{T}/c.jsonl", "--strategy", "bis", "--fraction", "0.5",
                                       "--output", "{T}/out"], setup="empty",
         says=("{T}/c.jsonl", "no valid rollout"), absent=("{T}/out/selected.jsonl",)),
    Case("select: output is a file", MPRM + ["select", "--input", "{S}/annotations", "--strategy", "bis",
                                             "--fraction", "0.5", "--output", "{T}/out"], setup="file_as_output",
         says=("{T}/out", "not a folder")),
    Case("select: a folder without corpus files", MPRM + ["select", "--input", "{T}", "--strategy", "bis",
                                                          "--fraction", "0.5", "--output", "{T}/out"],
         says=("{T}: no .jsonl or .parquet files",)),
    Case("select: bad fraction", MPRM + ["select", "--input", "{S}/annotations", "--strategy", "bis", "--fraction",
                                         "1.5", "--output", "{T}/out"], says=("--fraction", "must be in (0, 1]")),
    # train.py: config
    Case("train: config key typo", TRAIN + ["data.train={S}/annotations", "train.lrr=1e-5"],
         says=("unknown key 'train.lrr'", "did you mean 'lr'"), absent=("{T}/run/config.yaml",)),
    Case("train: missing config file", [sys.executable, str(REPO / "train.py"), "--config", "{T}/none.yaml"],
         says=("{T}/none.yaml: no such config file",)),
    Case("train: YAML syntax error", [sys.executable, str(REPO / "train.py"), "--config", "{T}/c.yaml"],
         setup="yaml", says=("{T}/c.yaml: not valid YAML",)),
    Case("train: bad value", TRAIN + ["data.train={S}/annotations", "selection.fraction=2"],
         says=("selection.fraction = 2.0: must be in (0, 1]",)),
    # train.py: data and model
    Case("train: data.train missing", TRAIN + ["data.train={T}/nope"], says=("{T}/nope",),
         absent=("{T}/run/final",)),
    Case("train: model.path missing", TRAIN + ["data.train={S}/annotations", "model.path={T}/no_model"],
         says=("{T}/no_model",), absent=("{T}/run/final",)),
    Case("train: a bad corpus record", TRAIN + ["data.train={T}/c.jsonl"], setup="nan",
         says=("{T}/c.jsonl:2:",), absent=("{T}/run/final", "{T}/run/selection/selected.jsonl")),
    Case("train: a selected.jsonl with a selection strategy",
         TRAIN + ["data.train={T}/selected.jsonl", "selection.strategy=bis", "selection.fraction=0.5"],
         setup="selected", says=("{T}/selected.jsonl: already a training selection", "selection.strategy=full"),
         absent=("{T}/run/final", "{T}/run/selection")),
    Case("train: image missing under the default root", TRAIN[:4] + ["model.path={M}", "data.train={T}/root/annotations", "data.image_root=",
                                                                    "train.output_dir={T}/run"],
         setup="corpus_root", says=("{T}/root/VisualPRM400K-v1.1-Raw/missing/picture.png", "image root {T}/root"),
         absent=("{T}/run/final",)),
    # mprm report, sweep.py, convert-internvl, format, synth
    Case("report: runs folder missing", MPRM + ["report", "{T}/runs", "--output", "{T}/rep"], says=("{T}/runs",),
         absent=("{T}/rep/report.json",)),
    Case("report: output is a file", MPRM + ["report", "{T}", "--output", "{T}/out"], setup="file_as_output",
         says=("{T}/out: exists and is not a folder",)),
    Case("sweep: bad --set", [sys.executable, str(REPO / "launch/sweep.py"), "--set", "nonsense"],
         says=("--set 'nonsense': expected KEY=VALUE",)),
    Case("sweep: --filter matches nothing", [sys.executable, str(REPO / "launch/sweep.py"), "--filter", "zzz"],
         says=("--filter 'zzz': no grid cell matches",)),
    Case("convert-internvl: not a checkpoint", MPRM + ["convert-internvl", "--input", "{T}", "--output", "{T}/conv"],
         says=("{T}/config.json: not found",), absent=("{T}/conv/config.json",)),
    Case("format: line past the end", MPRM + ["format", "--model", "{M}", "--input", "{T}/c.jsonl", "--line", "9"],
         setup="nan", says=("{T}/c.jsonl:9: line: the file has only 2 lines",)),
    Case("format: input is a folder", MPRM + ["format", "--model", "{M}", "--input", "{T}"],
         says=("{T}", "not a file")),
    Case("synth: bad count", MPRM + ["synth", "--output", "{T}/sy", "--sources", "0"],
         says=("sources must be an integer >= 1",), absent=("{T}/sy/synth.json",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path, synth_dir, tiny_qwen_dir):
    _setup(case.setup, tmp_path, synth_dir)
    sub = {"{T}": str(tmp_path), "{S}": str(synth_dir), "{M}": str(tiny_qwen_dir)}

    def fill(text: str) -> str:
        for k, v in sub.items():
            text = text.replace(k, v)
        return text

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **case.env}
    env.pop("MPRM_DEBUG", None)
    proc = subprocess.run([fill(a) for a in case.argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == case.exit, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if case.exit == 2:
        errors = [ln for ln in proc.stderr.splitlines() if ": error: " in ln]
        assert len(errors) == 1, proc.stderr[-3000:]
        for text in case.says:
            assert fill(text) in errors[0], errors[0]
    for path in case.absent:
        assert not Path(fill(path)).exists(), fill(path)
