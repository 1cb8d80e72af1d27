"""eval.py end to end on a tiny Qwen2.5-VL reward model and the synthetic benchmark.

The real entry point runs in subprocesses (with OMP_NUM_THREADS=1, so a 1-process and a 2-process
run use the same kernels and can be compared bit for bit); the cheaper checks call the library
in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mprm.eval.metrics import step_data_from_rows
from mprm.eval.thresholds import summarise

pytestmark = pytest.mark.slow
KEYS_M = {"overall", "macro_f1_pooled", "f1_positive", "f1_negative", "auc", "n_steps", "per_source"}


def run_eval(repo_root: Path, *args: object, launcher: list[str] | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = (launcher or [sys.executable]) + [str(repo_root / "eval.py"), *map(str, args)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=600)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def rm_dir(tiny_qwen_dir, tmp_path_factory) -> Path:
    from mprm.models import build_reward_model

    out = tmp_path_factory.mktemp("reward_model")
    build_reward_model(tiny_qwen_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def dev_file(synth_dir, tmp_path_factory) -> Path:
    lines = (synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()[:6]
    path = tmp_path_factory.mktemp("dev") / "dev.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def single_run(repo_root, rm_dir, synth_dir, dev_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "out"
    res = run_eval(repo_root, "--model", rm_dir, "--benchmark", synth_dir / "benchmark" / "test.jsonl",
                   "--image-root", synth_dir, "--output", out, "--batch-size", 4, "--dev", dev_file)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "overall macro-F1: fixed (t=0.5000)" in res.stdout
    assert "scoring" in res.stderr  # the progress bar
    return out


def test_end_to_end_single_process(single_run, synth_dir, rm_dir):
    bench = read_jsonl(synth_dir / "benchmark" / "test.jsonl")
    rows = read_jsonl(single_run / "predictions.jsonl")
    assert [r["id"] for r in rows] == [b["id"] for b in bench]
    raw = {1: 1, -1: 0, 0: -1}  # VisualProcessBench coding -> internal (decisions.md D-DATA-6)
    assert [r["labels"] for r in rows] == [[raw[x] for x in b["response"]["process_correctness"]] for b in bench]
    assert [r["data_source"] for r in rows] == [b["data_source"] for b in bench]
    assert all(len(r["scores"]) == len(r["labels"]) and all(0.0 < x < 1.0 for x in r["scores"]) for r in rows)
    assert len(read_jsonl(single_run / "dev" / "predictions.jsonl")) == 6

    m = json.loads((single_run / "metrics.json").read_text())
    assert set(m) == {"thresholds", "results"} and set(m["results"]) == {"fixed", "dev", "oracle"}
    assert all(set(m["results"][k]) == KEYS_M for k in m["results"])
    assert m["results"]["oracle"]["overall"] >= max(m["results"]["fixed"]["overall"], m["results"]["dev"]["overall"])
    # the metrics are those of the predictions written (recomputed here independently of eval.py)
    dev = step_data_from_rows(read_jsonl(single_run / "dev" / "predictions.jsonl"))
    assert summarise(step_data_from_rows(rows), fixed=0.5, dev=dev) == m
    assert "| oracle |" in (single_run / "metrics.md").read_text()

    # the rows are what the model layer gives for the same items (runner passes the right examples)
    from mprm.models import load_reward_model, score_batch

    model = load_reward_model(rm_dir)
    examples = [{"id": b["id"], "images": b["image"], "question": b["question"], "steps": b["response"]["steps"]}
                for b in bench[:4]]
    direct = score_batch(model, examples, image_root=synth_dir, batch_size=4)
    for r, d in zip(rows[:4], direct):
        assert r["scores"] == pytest.approx(d, abs=1e-5)


def test_resume_after_kill(single_run, repo_root, rm_dir, synth_dir, dev_file, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(single_run, out)
    full = read_jsonl(single_run / "predictions.jsonl")
    kept = [dict(r, kept=True) for i, r in enumerate(full[:10]) if i not in (5, 6, 7)]  # rows 5-7 lost
    text = "".join(json.dumps(r) + "\n" for r in kept) + json.dumps(full[10])[:40]  # killed mid-line
    (out / "predictions.jsonl").write_text(text)
    (out / "metrics.json").unlink()

    res = run_eval(repo_root, "--model", rm_dir, "--benchmark", synth_dir / "benchmark" / "test.jsonl",
                   "--image-root", synth_dir, "--output", out, "--batch-size", 4, "--dev", dev_file, "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = read_jsonl(out / "predictions.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in full]  # nothing lost, no duplicates, in order
    assert sum(bool(r.get("kept")) for r in rows) == 7  # the kept rows were not scored again
    for r, f in zip(rows, full):
        assert r["scores"] == pytest.approx(f["scores"], abs=1e-5)
    a = json.loads((out / "metrics.json").read_text())
    b = json.loads((single_run / "metrics.json").read_text())
    for kind in ("fixed", "dev", "oracle"):
        assert a["results"][kind]["overall"] == pytest.approx(b["results"][kind]["overall"], abs=1e-6)


def test_existing_output_without_resume_is_refused(single_run, rm_dir, synth_dir, tmp_path):
    from mprm.eval.pipeline import evaluate_model

    out = tmp_path / "out"
    shutil.copytree(single_run, out)
    with pytest.raises(FileExistsError, match="already holds predictions; pass --resume"):
        evaluate_model(rm_dir, synth_dir / "benchmark" / "test.jsonl", synth_dir, out)


@pytest.mark.distributed
def test_two_processes_equal_one(single_run, repo_root, rm_dir, synth_dir, dev_file, tmp_path):
    out = tmp_path / "out"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--multi_gpu"]
    res = run_eval(repo_root, "--model", rm_dir, "--benchmark", synth_dir / "benchmark" / "test.jsonl",
                   "--image-root", synth_dir, "--output", out, "--batch-size", 4, "--dev", dev_file,
                   launcher=launcher, env={"ACCELERATE_USE_CPU": "true"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "[0/2]" in res.stderr  # really two ranks
    assert sorted(p.name for p in out.iterdir()) == ["dev", "metrics.json", "metrics.md", "predictions.jsonl"]
    for name in ("predictions.jsonl", "dev/predictions.jsonl", "metrics.json"):
        assert (out / name).read_text() == (single_run / name).read_text(), name


def test_missing_image_error_and_skip(rm_dir, synth_dir, tmp_path):
    from mprm.eval.pipeline import evaluate_model

    lines = (synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()[:3]
    broken = json.loads(lines[1])
    broken["image"] = ["images/benchmark/nope.png"]
    bench = tmp_path / "test.jsonl"
    bench.write_text("\n".join([lines[0], json.dumps(broken), lines[2]]) + "\n")
    with pytest.raises(FileNotFoundError, match=rf"item '{broken['id']}': image 'images/benchmark/nope.png' not found"):
        evaluate_model(rm_dir, bench, synth_dir, tmp_path / "a")
    m = evaluate_model(rm_dir, bench, synth_dir, tmp_path / "b", skip_missing_images=True)
    assert m["skipped"] == {"count": 1, "items": [{"id": broken["id"], "path": "images/benchmark/nope.png"}],
                            "dev": None}
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["skipped"]["count"] == 1
    assert [r["id"] for r in read_jsonl(tmp_path / "b" / "predictions.jsonl")] == [
        json.loads(lines[0])["id"], json.loads(lines[2])["id"]]


def test_best_of_n_end_to_end(rm_dir, tmp_path):
    from mprm.data.synth import generate
    from mprm.eval.cli import main

    data = tmp_path / "data"
    generate(data, sources=1, rollouts=1, benchmark_items=0, bon_items=3, seed=1)
    assert main(["--bon", str(data / "bon" / "test.jsonl"), "--model", str(rm_dir), "--image-root", str(data),
                 "--output", str(tmp_path / "bon"), "--batch-size", "8"]) == 0
    res = json.loads((tmp_path / "bon" / "bon.json").read_text())
    items = read_jsonl(data / "bon" / "test.jsonl")
    cands = read_jsonl(tmp_path / "bon" / "bon_predictions.jsonl")
    assert len(cands) == sum(len(it["candidates"]) for it in items)
    for it, p in zip(items, res["picks"]):
        means = [sum(c["scores"]) / len(c["scores"]) for c in cands if c["item"] == it["id"]]
        assert p["picked"] == means.index(max(means)) and p["scores"] == pytest.approx(means)
    flags = [[c["correct"] for c in it["candidates"]] for it in items]
    o = res["overall"]
    assert o["n_items"] == 3
    assert o["first"] == pytest.approx(sum(f[0] for f in flags) / 3)
    assert o["random"] == pytest.approx(sum(sum(f) / len(f) for f in flags) / 3)
    assert o["oracle"] == pytest.approx(sum(any(f) for f in flags) / 3)
    assert o["reranked"] == pytest.approx(sum(f[p["picked"]] for f, p in zip(flags, res["picks"])) / 3)
    assert "| Overall | 3 |" in (tmp_path / "bon" / "bon.md").read_text()


def test_checkpoint_curve_and_resume(rm_dir, synth_dir, tmp_path, capsys):
    from mprm.eval.cli import main

    run = tmp_path / "run"
    shutil.copytree(rm_dir, run / "checkpoints" / "step-000002" / "model")
    shutil.copytree(rm_dir, run / "final")
    (run / "final" / "meta.json").write_text(json.dumps({"step": 3}))
    bench = tmp_path / "test.jsonl"
    bench.write_text("\n".join((synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()[:4]) + "\n")
    args = ["--checkpoints", str(run), "--benchmark", str(bench), "--image-root", str(synth_dir),
            "--output", str(tmp_path / "curve"), "--batch-size", "4"]
    assert main(args) == 0
    curve = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert [(p["name"], p["step"]) for p in curve["points"]] == [("step-000002", 2), ("final", 3)]
    assert curve["final"]["name"] == "final" and curve["best"]["fixed"]["name"] == "step-000002"  # equal: earliest
    assert curve["points"][0]["overall"] == curve["points"][1]["overall"]  # same weights in both
    assert (tmp_path / "curve" / "curve.png").stat().st_size > 0
    assert "best (fixed threshold): step-000002 (step 2)" in capsys.readouterr().out
    # rerun: nothing is scored again (a marked row survives), the curve is rewritten the same
    preds = tmp_path / "curve" / "step-000002" / "predictions.jsonl"
    rows = read_jsonl(preds)
    rows[0]["marker"] = 1
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(args) == 0
    assert read_jsonl(preds)[0]["marker"] == 1
    assert json.loads((tmp_path / "curve" / "curve.json").read_text()) == curve


def test_steps_cut_by_max_length_are_an_error(rm_dir, synth_dir, tmp_path):
    from mprm.eval.pipeline import evaluate_model
    from mprm.models import load_reward_model

    line = (synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()[0]
    item = json.loads(line)
    bench = tmp_path / "one.jsonl"
    bench.write_text(line + "\n")
    example = {"id": item["id"], "images": item["image"], "question": item["question"],
               "steps": item["response"]["steps"]}
    n_tokens = len(load_reward_model(rm_dir).formatter.encode(example, synth_dir)["input_ids"])
    n = len(example["steps"])
    with pytest.raises(ValueError, match=rf"item '{item['id']}': \d+ of {n} steps were not scored .* --max-length"):
        evaluate_model(rm_dir, bench, synth_dir, tmp_path / "o", max_length=n_tokens - 1)
