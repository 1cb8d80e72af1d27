"""eval.py end to end on a tiny Qwen2.5-VL reward model and the synthetic benchmark.

The real entry point runs in subprocesses (with OMP_NUM_THREADS=1, so a 1-process and a 2-process
run use the same kernels and can be compared bit for bit); the cheaper checks call the library
in-process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mprm.errors import UserError
from mprm.eval.metrics import step_data_from_rows
from mprm.eval.predictions import read_predictions
from mprm.eval.thresholds import summarise

pytestmark = pytest.mark.slow
KEYS_M = {"overall", "macro_f1_pooled", "f1_positive", "f1_negative", "auc", "n_steps", "per_source"}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def dev_file(synth_dir, tmp_path_factory) -> Path:
    lines = (synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()[:6]
    return write_lines(tmp_path_factory.mktemp("dev") / "dev.jsonl", lines)


@pytest.fixture(scope="module")
def single_run(run_eval, rm_dir, synth_dir, dev_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "out"
    res = run_eval("--model", rm_dir, "--benchmark", synth_dir / "benchmark" / "test.jsonl",
                   "--image-root", synth_dir, "--output", out, "--batch-size", 4, "--dev", dev_file)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "overall macro-F1: fixed (t=0.5000)" in res.stdout
    assert "scoring" in res.stderr  # the progress bar
    return out


def test_end_to_end_single_process(single_run, synth_dir, rm_dir):
    bench = read_jsonl(synth_dir / "benchmark" / "test.jsonl")
    rows = read_jsonl(single_run / "predictions.jsonl")
    assert [r["id"] for r in rows] == [b["id"] for b in bench]
    # the file speaks the benchmark's coding: labels are process_correctness exactly (decisions.md D-EVAL-7)
    assert [r["labels"] for r in rows] == [b["response"]["process_correctness"] for b in bench]
    assert all(r["label_coding"] == "process_correctness" for r in rows)
    assert [r["data_source"] for r in rows] == [b["data_source"] for b in bench]
    assert all(len(r["scores"]) == len(r["labels"]) and all(0.0 < x < 1.0 for x in r["scores"]) for r in rows)
    assert len(read_jsonl(single_run / "dev" / "predictions.jsonl")) == 6

    m = json.loads((single_run / "metrics.json").read_text())
    assert set(m) == {"thresholds", "results", "cut", "model"}
    assert m["model"] == {"name": str(rm_dir), "zero_shot": False}
    assert m["cut"] == {"count": 0, "items": [], "dev": {"count": 0, "items": []}}
    assert set(m["results"]) == {"fixed", "dev", "oracle"}
    assert all(set(m["results"][k]) == KEYS_M for k in m["results"])
    assert m["results"]["oracle"]["overall"] >= max(m["results"]["fixed"]["overall"], m["results"]["dev"]["overall"])
    # the metrics are those of the predictions written (recomputed here independently of eval.py)
    dev = step_data_from_rows(read_predictions(single_run / "dev" / "predictions.jsonl"))
    test = step_data_from_rows(read_predictions(single_run / "predictions.jsonl"))
    assert summarise(test, fixed=0.5, dev=dev) == {k: m[k] for k in ("thresholds", "results")}
    assert "| oracle |" in (single_run / "metrics.md").read_text()

    # the rows are what the model layer gives for the same items (runner passes the right examples)
    from mprm.models import load_reward_model, score_batch

    model = load_reward_model(rm_dir)
    examples = [{"id": b["id"], "images": b["image"], "question": b["question"], "steps": b["response"]["steps"]}
                for b in bench[:4]]
    direct = score_batch(model, examples, image_root=synth_dir, batch_size=4)
    for r, d in zip(rows[:4], direct):
        assert r["scores"] == pytest.approx(d, abs=1e-5)


def test_resume_after_kill(single_run, run_eval, rm_dir, synth_dir, dev_file, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(single_run, out)
    full = read_jsonl(single_run / "predictions.jsonl")
    # rows 5-7 lost, the others marked by a score no model gives, the last one killed mid-line
    kept = [dict(r, scores=[0.125] + r["scores"][1:]) for i, r in enumerate(full[:10]) if i not in (5, 6, 7)]
    text = "".join(json.dumps(r) + "\n" for r in kept) + json.dumps(full[10])[:40]
    (out / "predictions.jsonl").write_text(text)
    (out / "metrics.json").unlink()

    res = run_eval("--model", rm_dir, "--benchmark", synth_dir / "benchmark" / "test.jsonl",
                   "--image-root", synth_dir, "--output", out, "--batch-size", 4, "--dev", dev_file, "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = read_jsonl(out / "predictions.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in full]  # nothing lost, no duplicates, in order
    assert sum(r["scores"][0] == 0.125 for r in rows) == 7  # the kept rows were not scored again
    # a partly scored batch is scored whole again, so every new row equals the unbroken run's exactly
    assert [r for r in rows if r["scores"][0] != 0.125] == [r for i, r in enumerate(full) if i >= 10 or i in (5, 6, 7)]
    assert sorted(p.name for p in out.iterdir()) == ["dev", "metrics.json", "metrics.md", "predictions.jsonl"]


def test_resume_refuses_the_predictions_of_another_benchmark(single_run, rm_dir, synth_dir, tmp_path):
    from mprm.eval.loading import LazyModel, resolve_model
    from mprm.eval.pipeline import evaluate_benchmark
    from mprm.eval.settings import EvalSettings

    out = tmp_path / "out"
    shutil.copytree(single_run, out)
    settings = EvalSettings(image_root=synth_dir, batch_size=4)
    model = LazyModel(resolve_model(rm_dir), settings)
    bench = synth_dir / "benchmark" / "test.jsonl"
    with pytest.raises(UserError, match=r"predictions.jsonl: already holds predictions: pass --resume"):
        evaluate_benchmark(model, bench, out, settings)
    # the same items under other ids (no ids: content digests): the first foreign row is named
    lines = [json.loads(x) for x in bench.read_text().splitlines()]
    other = write_lines(tmp_path / "other.jsonl", [json.dumps({k: v for k, v in it.items() if k != "id"})
                                                   for it in lines])
    resume = EvalSettings(image_root=synth_dir, batch_size=4, resume=True)
    with pytest.raises(UserError, match=rf"predictions.jsonl:1: row id '{lines[0]['id']}' is not an item of "
                                        rf".*other.jsonl: it was written for another benchmark"):
        evaluate_benchmark(model, other, out, resume)
    # the same ids with other labels
    pc = lines[2]["response"]["process_correctness"]
    pc[0] = -1 if pc[0] == 1 else 1
    changed = write_lines(tmp_path / "changed.jsonl", [json.dumps(it) for it in lines])
    with pytest.raises(UserError, match=rf"predictions.jsonl:3: row id '{lines[2]['id']}': labels = .*, but the item in .*changed.jsonl has"):
        evaluate_benchmark(model, changed, out, resume)
    assert not model.loaded  # refused before anything was loaded or scored
    assert not (out / "metrics.json").exists()  # a failed run leaves no metrics that look like its own


@pytest.mark.distributed
def test_two_processes_equal_one(single_run, run_eval, two_cpu_processes, rm_dir, synth_dir, dev_file, tmp_path):
    out = tmp_path / "out"
    res = run_eval("--model", rm_dir, "--benchmark", synth_dir / "benchmark" / "test.jsonl",
                   "--image-root", synth_dir, "--output", out, "--batch-size", 4, "--dev", dev_file,
                   launcher=two_cpu_processes, env={"ACCELERATE_USE_CPU": "true"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "[0/2]" in res.stderr  # really two ranks
    assert sorted(p.name for p in out.iterdir()) == ["dev", "metrics.json", "metrics.md", "predictions.jsonl"]
    for name in ("predictions.jsonl", "dev/predictions.jsonl", "metrics.json"):
        assert (out / name).read_text() == (single_run / name).read_text(), name


def test_missing_image_error_and_skip(rm_dir, synth_dir, tmp_path):
    from mprm.eval.loading import LazyModel
    from mprm.eval.pipeline import evaluate_benchmark
    from mprm.eval.settings import EvalSettings

    def evaluate_model(model_dir, bench, root, out, **kw):
        settings = EvalSettings(image_root=root, **kw)
        return evaluate_benchmark(LazyModel.from_spec(model_dir, settings), bench, out, settings)

    lines = (synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()[:3]
    broken = json.loads(lines[1])
    broken["image"] = ["images/benchmark/nope.png"]
    bench = write_lines(tmp_path / "test.jsonl", [lines[0], json.dumps(broken), lines[2]])
    with pytest.raises(UserError, match=rf"item '{broken['id']}': image 'images/benchmark/nope.png' not found under"):
        evaluate_model(rm_dir, bench, synth_dir, tmp_path / "a")
    m = evaluate_model(rm_dir, bench, synth_dir, tmp_path / "b", skip_missing_images=True)
    assert m["skipped"] == {"count": 1, "items": [{"id": broken["id"], "path": "images/benchmark/nope.png"}],
                            "dev": None}
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["skipped"]["count"] == 1
    assert [r["id"] for r in read_jsonl(tmp_path / "b" / "predictions.jsonl")] == [
        json.loads(lines[0])["id"], json.loads(lines[2])["id"]]


def test_zero_shot_base_checkpoint(run_eval, tiny_qwen_dir, rm_dir, synth_dir, tmp_path):
    # rm_dir is build_reward_model(tiny_qwen_dir) saved untouched, so the zero-shot model built from the base
    # checkpoint is the same model: same scores, but labelled zero-shot
    bench = write_lines(tmp_path / "b.jsonl", (synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()[:4])
    zs, saved = tmp_path / "zs", tmp_path / "saved"
    stdout = []
    for model, out in ((tiny_qwen_dir, zs), (rm_dir, saved)):
        res = run_eval("--model", model, "--benchmark", bench, "--image-root", synth_dir, "--output", out,
                       "--batch-size", 4)
        assert res.returncode == 0, res.stderr[-3000:]
        stdout.append(res.stdout)
    assert "overall macro-F1 (zero-shot): fixed" in stdout[0] and "zero-shot" not in stdout[1]
    assert (zs / "predictions.jsonl").read_text() == (saved / "predictions.jsonl").read_text()
    m = json.loads((zs / "metrics.json").read_text())
    assert m["model"] == {"name": str(tiny_qwen_dir), "zero_shot": True, "backbone": None, "head": "yes_no"}
    assert m["results"] == json.loads((saved / "metrics.json").read_text())["results"]
    md = (zs / "metrics.md").read_text()
    assert "| fixed, zero-shot | 0.5000 |" in md and "zero-shot: a base checkpoint" in md
    res = run_eval("--model", tiny_qwen_dir, "--head", "nope", "--benchmark", bench, "--image-root", synth_dir,
                   "--output", tmp_path / "bad")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"eval.py: error: {tiny_qwen_dir}: cannot load the reward model: head='nope'" in res.stderr


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
    bench = write_lines(tmp_path / "test.jsonl", (synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()[:4])
    args = ["--checkpoints", str(run), "--benchmark", str(bench), "--image-root", str(synth_dir),
            "--output", str(tmp_path / "curve"), "--batch-size", "4"]
    assert main(args) == 0
    curve = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert [(p["name"], p["step"]) for p in curve["points"]] == [("step-000002", 2), ("final", 3)]
    assert curve["final"]["name"] == "final" and curve["best"]["fixed"]["name"] == "step-000002"  # equal: earliest
    assert curve["points"][0]["overall"] == curve["points"][1]["overall"]  # same weights in both
    assert (tmp_path / "curve" / "curve.png").stat().st_size > 0
    assert "best (fixed threshold): step-000002 (step 2)" in capsys.readouterr().out
    # rerun: nothing is scored again (a marked score survives), the curve is rewritten the same
    preds = tmp_path / "curve" / "step-000002" / "predictions.jsonl"
    rows = read_jsonl(preds)
    rows[0]["scores"][0] = 0.125
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(args) == 0
    assert read_jsonl(preds)[0]["scores"][0] == 0.125
    assert json.loads((tmp_path / "curve" / "curve.json").read_text())["final"] == curve["final"]
    # a curve folder of another benchmark is refused, naming the first foreign row
    other = write_lines(tmp_path / "other.jsonl", (synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()[4:8])
    assert main([*args[:2], "--benchmark", str(other), *args[4:]]) == 2
    assert "step-000002/predictions.jsonl:1: row id 'synth-bench-000000' is not an item of" in capsys.readouterr().err
    assert not (tmp_path / "curve" / "curve.json").exists()


def test_steps_cut_by_max_length_are_counted_or_an_error(rm_dir, synth_dir, tmp_path):
    from mprm.eval.loading import LazyModel, resolve_model
    from mprm.eval.pipeline import evaluate_benchmark
    from mprm.eval.settings import EvalSettings
    from mprm.models import load_reward_model

    lines = (synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()[:2]
    bench = write_lines(tmp_path / "two.jsonl", lines)
    item = json.loads(lines[0])
    example = {"id": item["id"], "images": item["image"], "question": item["question"],
               "steps": item["response"]["steps"]}
    n_tokens = len(load_reward_model(rm_dir).formatter.encode(example, synth_dir)["input_ids"])
    n = len(example["steps"])
    settings = EvalSettings(image_root=synth_dir, batch_size=2, max_length=n_tokens - 1)
    m = evaluate_benchmark(LazyModel(resolve_model(rm_dir), settings), bench, tmp_path / "o", settings)
    rows = read_jsonl(tmp_path / "o" / "predictions.jsonl")
    cut = [sum(x is None for x in r["scores"]) for r in rows]
    assert cut[0] >= 1 and rows[0]["scores"][-1] is None and rows[0]["scores"][0] is not None
    assert m["cut"]["count"] == sum(cut)
    assert m["cut"]["items"][0] == {"id": item["id"], "cut": cut[0], "steps": n}
    # the metrics are those of the scored steps only
    scored = [{**r, "labels": [y for y, x in zip(r["labels"], r["scores"]) if x is not None],
               "scores": [x for x in r["scores"] if x is not None]} for r in read_predictions(tmp_path / "o" / "predictions.jsonl")]
    assert m["results"]["fixed"] == summarise(step_data_from_rows(scored), fixed=0.5)["results"]["fixed"]
    assert f"Steps cut by the token limit, left out of the metrics: {sum(cut)}" in (tmp_path / "o" / "metrics.md").read_text()
    strict = EvalSettings(image_root=synth_dir, batch_size=2, max_length=n_tokens - 1, strict_length=True)
    with pytest.raises(UserError, match=rf"two.jsonl: item '{item['id']}': {cut[0]} of {n} steps cut by the token "
                                        rf"limit \({n_tokens - 1}\): raise it with --max-length"):
        evaluate_benchmark(LazyModel(resolve_model(rm_dir), strict), bench, tmp_path / "s", strict)
    assert not (tmp_path / "s" / "predictions.jsonl").exists() and not (tmp_path / "s" / "metrics.json").exists()


def test_prompt_style_authors_eval_flag(run_eval, rm_dir, synth_dir, tmp_path):
    """--prompt-style authors_eval scores the authors' evaluation input (D-MODELS-10): other scores, same rows."""
    bench = write_lines(tmp_path / "b.jsonl", (synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()[:3])
    outs = {}
    for style in ("train", "authors_eval"):
        out = tmp_path / style
        res = run_eval("--model", rm_dir, "--benchmark", bench, "--image-root", synth_dir, "--output", out,
                       "--prompt-style", style)
        assert res.returncode == 0, res.stderr[-3000:]
        outs[style] = read_jsonl(out / "predictions.jsonl")
    assert [r["id"] for r in outs["train"]] == [r["id"] for r in outs["authors_eval"]]
    assert [r["scores"] for r in outs["train"]] != [r["scores"] for r in outs["authors_eval"]]
    bad = run_eval("--model", rm_dir, "--benchmark", bench, "--image-root", synth_dir, "--output", tmp_path / "x",
                   "--prompt-style", "chat")
    assert bad.returncode == 2 and "invalid choice: 'chat'" in bad.stderr
