"""The selection library call: ``SelectionSettings`` validation, ``select_corpus``'s result and
errors, the worker pool against one process, and ``mprm select`` as a thin caller."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mprm.data import SelectionSettings, select_corpus
from mprm.data import pipeline
from mprm.data.settings import SelectionSettingsError
from mprm.data.validation import DataError, InputPathError
from mprm.errors import UserError


@pytest.mark.parametrize("kwargs,needle", [
    ({"strategy": "best"}, "strategy = 'best': not one of full, random, bis"),
    ({"strategy": "bis"}, "fraction is required for strategy 'bis'"),
    ({"strategy": "bis", "fraction": 0.0}, "fraction = 0.0: must be a number in (0, 1]"),
    ({"strategy": "bis", "fraction": 1.5}, "fraction = 1.5"),
    ({"strategy": "bis", "fraction": True}, "fraction = True"),
    ({"strategy": "bis", "fraction": 0.1, "alpha": -0.1}, "alpha = -0.1: must be a finite number >= 0"),
    ({"strategy": "bis", "fraction": 0.1, "alpha": float("nan")}, "alpha = nan"),
    ({"strategy": "random", "fraction": 0.1, "seed": 1.5}, "seed = 1.5: must be an integer"),
    ({"strategy": "full", "label_threshold": 1.0}, "label_threshold = 1.0: must be in [0, 1)"),
    ({"strategy": "full", "label_threshold": 0.0625, "soft_labels": True}, "label_threshold = 0.0625 with soft_labels"),
    ({"strategy": "full", "unannotated": "drop"}, "unannotated = 'drop': not one of negative, truncate"),
    ({"strategy": "full", "lenient": "yes"}, "lenient = 'yes': must be True or False"),
])
def test_settings_are_validated(kwargs, needle):
    with pytest.raises(SelectionSettingsError) as err:
        SelectionSettings(**kwargs)
    assert needle in str(err.value) and isinstance(err.value, UserError)


def test_settings_as_applied_and_frozen():
    full = SelectionSettings("full", fraction=0.3)
    assert full.kept_fraction == 1.0  # full keeps everything whatever the fraction
    soft = SelectionSettings("bis", fraction=0.25, soft_labels=True)
    assert soft.threshold == 0.0 and SelectionSettings("bis", 0.25, label_threshold=0.125).threshold == 0.125
    assert soft.parameters() == {"strategy": "bis", "fraction": 0.25, "alpha": 0.05, "seed": 0, "per_source": True,
                                 "label_threshold": 0.0, "soft_labels": True, "unannotated": "negative", "lenient": False}
    with pytest.raises(dataclasses.FrozenInstanceError):
        soft.alpha = 0.2  # type: ignore[misc]


def _corpus(tools, root):
    r = tools.rollout
    # a: BIS .3 (mixed 1/2), .05 (all positive), (2/9 + .05) * .5 = .1361 -> k = max(1, floor(3 * .5)) = 1 keeps line 1
    tools.write_jsonl(root / "a.jsonl", [r([1.0, 0.0]), r([1.0, 1.0]), r([0.5, 0.0, 0.0])])
    # b: one bad line, then BIS .05 (all negative) and .2375; k = max(1, floor(2 * .5)) = 1 keeps line 3
    tools.write_jsonl(root / "b.jsonl", [b"[1]", r([0.0, 0.0]), r([1.0, 0.0, 0.0, 0.0]), ""])
    return root


def test_result_counts_every_line(tmp_path, tools):
    root = _corpus(tools, tmp_path / "ann")
    result = select_corpus(root, SelectionSettings("bis", 0.5, lenient=True), tmp_path / "out", plot=False)
    assert (result.lines, result.valid, result.rejected, result.kept) == (6, 5, 1, 2)
    assert result.rejected_by_reason == {"line: not a JSON object": 1}
    a, b = result.sources["a"], result.sources["b"]
    assert (a.file, a.lines, a.valid, a.rejected, a.k, a.kept) == ("a.jsonl", 3, 3, 0, 1, 1)
    assert (b.file, b.lines, b.valid, b.rejected, b.k, b.kept) == ("b.jsonl", 3, 2, 1, 1, 1)
    assert [r["id"] for r in tools.read_jsonl(result.selected)] == ["a:1", "b:3"]
    assert result.plot is None and not (tmp_path / "out" / "scores.png").exists()
    for path in (result.manifest, result.selected, result.report_json, result.report_md):
        assert path.parent == tmp_path / "out" and path.stat().st_size > 0
    assert json.loads(result.report_json.read_text())["selected"] == 2
    assert result.summary() == f"kept 2 of 5 valid rollouts (1 rejected) -> {tmp_path / 'out'}"
    # global ranking: k = max(1, floor(5 * .5)) = 2 over both files, .3 and .2375 again; no k per source
    glob = select_corpus(root, SelectionSettings("bis", 0.5, per_source=False, lenient=True), tmp_path / "g")
    assert glob.kept == 2 and glob.sources["a"].k is None and glob.plot == tmp_path / "g" / "scores.png"


def test_several_inputs_are_one_corpus(tmp_path, tools):
    root = _corpus(tools, tmp_path / "ann")
    settings = SelectionSettings("bis", 0.5, lenient=True)
    one = select_corpus(root, settings, tmp_path / "one", plot=False)
    two = select_corpus([root / "b.jsonl", root / "a.jsonl"], settings, tmp_path / "two", plot=False)
    assert one.selected.read_bytes() == two.selected.read_bytes()
    assert one.manifest.read_bytes() == two.manifest.read_bytes()
    with pytest.raises(InputPathError, match=r"two input files share a source name \(the file stem\): \['a'\]"):
        select_corpus([root, root / "a.jsonl"], settings, tmp_path / "x")


def test_errors_are_exceptions(tmp_path, tools):
    with pytest.raises(InputPathError, match="nope: no such file or directory"):
        select_corpus(tmp_path / "nope", SelectionSettings("full"), tmp_path / "o")
    (tmp_path / "x.txt").write_text("{}")
    with pytest.raises(InputPathError, match=r"x.txt: expected a directory, a .jsonl or a .parquet file"):
        select_corpus(tmp_path / "x.txt", SelectionSettings("full"), tmp_path / "o")
    root = _corpus(tools, tmp_path / "ann")
    with pytest.raises(DataError) as err:
        select_corpus(root, SelectionSettings("full"), tmp_path / "o")
    assert str(err.value) == f"{root / 'b.jsonl'}:1: line: not a JSON object ('list')"
    assert (err.value.file, err.value.line) == (str(root / "b.jsonl"), 1)
    with pytest.raises(SelectionSettingsError, match="workers = 0: must be an integer >= 1"):
        select_corpus(root, SelectionSettings("full"), tmp_path / "o", workers=0)
    with pytest.raises(TypeError, match="settings must be a SelectionSettings"):
        select_corpus(root, {"strategy": "full"}, tmp_path / "o")  # type: ignore[arg-type]


def test_pool_and_one_process_write_the_same_bytes(tmp_path, tools, monkeypatch):
    import random

    rng = random.Random(2)
    for s in range(4):
        recs = [tools.rollout([rng.choice([0.0, 1.0, 0.5, 0.9375]) for _ in range(rng.randint(1, 6))]) for _ in range(50)]
        tools.write_jsonl(tmp_path / "ann" / f"s{s}.jsonl", recs + [b"not json"] * (s == 2))
    settings = SelectionSettings("bis", 0.3, lenient=True)
    monkeypatch.setattr(pipeline, "POOL_MIN_BYTES", 0)
    pooled = select_corpus(tmp_path / "ann", settings, tmp_path / "p", workers=2)
    single = select_corpus(tmp_path / "ann", settings, tmp_path / "s", workers=1)
    for name in ("selected.jsonl", "manifest.jsonl", "report.md", "scores.png"):
        assert (tmp_path / "p" / name).read_bytes() == (tmp_path / "s" / name).read_bytes(), name
    assert pooled.sources == single.sources and pooled.kept == single.kept == 4 * 15
    assert not [p for p in (tmp_path / "p").iterdir() if ".part-" in p.name]  # part files are joined and removed


def test_cli_writes_what_the_library_writes(tmp_path, tools, capsys):
    from mprm.cli import main

    root = _corpus(tools, tmp_path / "ann")
    assert main(["select", "--input", str(root), "--strategy", "bis", "--fraction", "1/2", "--lenient",
                 "--output", str(tmp_path / "cli")]) == 0
    assert capsys.readouterr().err.strip() == f"mprm select: kept 2 of 5 valid rollouts (1 rejected) -> {tmp_path / 'cli'}"
    select_corpus(root, SelectionSettings("bis", 0.5, lenient=True), tmp_path / "lib")
    for name in ("selected.jsonl", "manifest.jsonl", "report.md", "scores.png"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes(), name
    assert main(["select", "--input", str(root), "--strategy", "full", "--output", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"mprm select: error: {root / 'b.jsonl'}:1: line: not a JSON object ('list')",
                   "mprm select: stopped at the first bad record (strict mode); --lenient skips and counts bad records"]
