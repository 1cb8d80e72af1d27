"""Evaluation settings, stable item ids, image checks and model sources (no model, no torch)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mprm.errors import UserError
from mprm.eval.items import benchmark_items, check_images, item_digest
from mprm.eval.loading import LazyModel, resolve_model, saved_model
from mprm.eval.settings import EvalSettings


def bench_line(question: str, steps: list[str], labels: list[int], *, id_=None, images=("img/a.png",)) -> str:
    obj = {"image": list(images), "question": question, "answer": "4", "data_source": "WeMath",
           "response": {"steps": steps, "process_correctness": labels}}
    if id_ is not None:
        obj["id"] = id_
    return json.dumps(obj)


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch size 0 is not a positive integer: pass --batch-size 1 or more"),
    ({"max_length": 0}, "max length 0 is not a positive integer: pass --max-length 1 or more"),
    ({"threshold": 1.5}, "threshold 1.5 is outside [0, 1]"),
    ({"threshold": float("nan")}, "threshold nan is outside [0, 1]"),
])
def test_settings_are_checked_once_with_the_fix(kwargs, message):
    with pytest.raises(UserError) as exc:
        EvalSettings(**kwargs)
    assert message in str(exc.value)


def test_settings_image_root(tmp_path):
    assert EvalSettings(image_root=str(tmp_path)).image_root == tmp_path
    with pytest.raises(UserError, match="--benchmark needs --image-root"):
        EvalSettings().require_image_root("--benchmark")
    with pytest.raises(UserError, match=r"nope: no such folder \(--image-root\)"):
        EvalSettings(image_root=tmp_path / "nope").require_image_root("--benchmark")


def test_settings_from_the_run_config(tmp_path):
    from mprm.config import PROMPT_STYLES, Config

    cfg = Config()
    cfg.data.image_root, cfg.eval.batch_size, cfg.eval.threshold = str(tmp_path), 3, 0.25
    s = EvalSettings.from_config(cfg)
    assert (s.image_root, s.batch_size, s.threshold, s.max_length, s.prompt_style) == (tmp_path, 3, 0.25, None, None)
    assert EvalSettings.from_config(cfg, image_root="/resolved").image_root == Path("/resolved")
    cfg.eval.image_root = str(tmp_path / "dev")
    assert EvalSettings.from_config(cfg, image_root="/resolved").image_root == tmp_path / "dev"
    assert EvalSettings.from_config(Config()).image_root is None
    for style in PROMPT_STYLES:
        assert EvalSettings(prompt_style=style).prompt_style == style


def test_item_digest_is_sha256_of_the_canonical_content():
    blob = '{"images":["a.png"],"question":"Q?","steps":["s1","s2"]}'
    assert item_digest(["a.png"], "Q?", ["s1", "s2"]) == "sha256:" + hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert item_digest(["a.png"], "Q?", ["s1", "s2 "]) != item_digest(["a.png"], "Q?", ["s1", "s2"])


def test_items_keep_their_own_id_else_a_content_digest(tmp_path):
    lines = [bench_line("Q1", ["a", "b"], [1, -1], id_="q-1"),
             bench_line("Q2", ["c"], [0]),
             bench_line("Q2", ["c"], [0]),  # the same content twice: numbered in file order
             bench_line("Q3", ["d"], [1], id_=4)]  # an own id equal to its line number stays the own id
    path = tmp_path / "b.jsonl"
    path.write_text("\n".join(lines) + "\n")
    items = benchmark_items(path)
    d = item_digest(["img/a.png"], "Q2", ["c"])
    assert [it["id"] for it in items] == ["q-1", d, f"{d}-2", "4"]
    assert items[0]["labels"] == [1, 0] and items[1]["labels"] == [-1]  # internal coding in memory
    # the ids do not depend on the position: another order gives the same ids to the same items
    path.write_text("\n".join([lines[3], lines[1], lines[0]]) + "\n")
    assert [it["id"] for it in benchmark_items(path)] == ["4", d, "q-1"]


def test_benchmark_file_errors_name_it(tmp_path):
    with pytest.raises(UserError, match=r"nope.jsonl: no such file \(--benchmark\)"):
        benchmark_items(tmp_path / "nope.jsonl")
    with pytest.raises(UserError, match=r": is a folder, expected a file \(--benchmark\)"):
        benchmark_items(tmp_path)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match=r"empty.jsonl: no items"):
        benchmark_items(tmp_path / "empty.jsonl")
    (tmp_path / "dup.jsonl").write_text(bench_line("Q", ["s"], [1], id_="x") + "\n" + bench_line("R", ["s"], [1], id_="x") + "\n")
    with pytest.raises(UserError, match=r"dup.jsonl: item id 'x' appears more than once"):
        benchmark_items(tmp_path / "dup.jsonl")


def test_check_images_missing_one_and_all(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"x")
    items = [{"id": "1", "images": ["img/a.png"]}, {"id": "2", "images": ["img/a.png", "img/b.png"]}]
    with pytest.raises(UserError, match=r"b.jsonl: item '2': image 'img/b.png' not found under .*--skip-missing-images"):
        check_images(items, tmp_path, origin="b.jsonl", skip=False)
    kept, skipped = check_images(items, tmp_path, origin="b.jsonl", skip=True)
    assert [it["id"] for it in kept] == ["1"] and skipped == [{"id": "2", "path": "img/b.png"}]
    with pytest.raises(UserError) as exc:
        check_images(items, tmp_path / "elsewhere", origin="b.jsonl", skip=True)
    assert str(exc.value) == (f"b.jsonl: no image found for any of 2 items under {tmp_path / 'elsewhere'} "
                              f"(first tried: {tmp_path / 'elsewhere' / 'img/a.png'}): check --image-root")


def test_model_sources(tmp_path, monkeypatch):
    saved, base, other = tmp_path / "saved", tmp_path / "base", tmp_path / "other"
    for d in (saved, base, other):
        d.mkdir()
    (saved / "mprm_config.json").write_text("{}")
    (base / "config.json").write_text("{}")
    assert resolve_model(saved).zero_shot is False
    src = resolve_model(base, head="linear")
    assert src.zero_shot and src.describe() == {"name": str(base), "zero_shot": True, "backbone": None, "head": "linear"}
    with pytest.raises(UserError, match="a saved reward model .* drop --backbone / --head"):
        resolve_model(saved, head="yes_no")
    with pytest.raises(UserError, match="other: neither a saved reward model .* nor a base checkpoint"):
        resolve_model(other)
    with pytest.raises(UserError, match=r"missing/final: no such model folder \(--model\)"):
        resolve_model(tmp_path / "missing" / "final")
    with pytest.raises(UserError, match="is a file, expected a model folder"):
        resolve_model(saved / "mprm_config.json")
    with pytest.raises(UserError, match="no mprm_config.json: not a saved reward model"):
        saved_model(base)
    # a hub id (not a local path) goes to build_reward_model unchanged, zero-shot
    monkeypatch.chdir(tmp_path)
    hub = resolve_model("OpenGVLab/InternVL2_5-8B", backbone="internvl")
    assert (hub.name, hub.zero_shot, hub.backbone) == ("OpenGVLab/InternVL2_5-8B", True, "internvl")
    with pytest.raises(UserError, match="saved/nope: no such model folder"):  # "saved" is a local folder: a typo
        resolve_model("saved/nope")
    lazy = LazyModel(hub, EvalSettings(max_length=64))
    assert not lazy.loaded and lazy.max_length == 64  # nothing is loaded before it is needed
