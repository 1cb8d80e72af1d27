"""The demo pipeline end to end at a small size, and the pieces it adds (domain vocabulary, pretraining)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mprm.experiments.pretrain import RECIPE_VERSION, PretrainSettings, domain_words, is_cached, pretrain_tiny
from mprm.models.tiny import build_tiny, word_merges


def test_word_merges_chain_left_to_right():
    # " red" is the bytes Ġ r e d: three merges, each result a vocabulary entry
    assert word_merges([" red", " re"]) == [("Ġ", "r"), ("Ġr", "e"), ("Ġre", "d")]
    assert word_merges(["No"]) == [("N", "o")]


def test_word_merges_build_on_merges_ranked_before_them():
    # "Ye" (for "Yes") and "To" (for "Top") are merged first, so " Yellow" and " Total" must join
    # those pieces, not restart from single bytes (which BPE would never reach)
    merges = word_merges(["Top", " Total", " Yellow"], base=[("Y", "e"), ("Ye", "s")])
    assert merges[:2] == [("T", "o"), ("To", "p")]
    assert ("Ġ", "To") in merges and ("Ġ", "Ye") in merges and ("ĠT", "o") not in merges


def test_domain_words_keeps_leading_space_and_frequency_order():
    # " a" is seen once (the first "a" starts its text, no space), " blue" and " square" once;
    # single-byte pieces need no merge
    words = domain_words(["a red circle. a red square.", "a blue circle.", "a red circle"], min_count=2)
    assert words == [" red", " circle"]


def test_tiny_tokenizer_with_words_tokenises_words_whole_and_round_trips(tmp_path):
    from transformers import AutoTokenizer

    build_tiny("qwen2_5_vl", tmp_path, words=[" red", " circle", "Top", " left", " Total", " Yellow"],
               text_overrides={"hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1})
    tok = AutoTokenizer.from_pretrained(tmp_path)
    text = "Top left: a red circle. Ünïcode redder. Yellow Total Yes"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids)[:6] == ["Top", "Ġleft", ":", "Ġ", "a", "Ġred"]
    assert tok.convert_ids_to_tokens(ids)[-4:] == ["ĠYellow", "ĠTotal", "Ġ", "Yes"]
    assert tok.decode(ids) == text
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["text_config"]["hidden_size"] == 32 and cfg["vision_config"]["out_hidden_size"] == 32
    assert sum(cfg["text_config"]["rope_parameters"]["mrope_section"]) == 32 // 2 // 2


@pytest.mark.slow
def test_pretraining_grounds_the_backbone_and_is_cached(tmp_path):
    settings = PretrainSettings(steps=60, batch_size=8, pairs=200, hidden_size=64, num_hidden_layers=2,
                                intermediate_size=128, lr=3e-3)
    out = pretrain_tiny(tmp_path / "pre", settings, progress=False)
    meta = json.loads((out / "pretrain.json").read_text())
    assert meta["final_loss"] < 0.5 * meta["first_loss"]
    nll = meta["heldout_caption_nll"]
    assert nll["right_image"] < nll["wrong_image"]  # the captions depend on the picture already
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert pretrain_tiny(tmp_path / "pre", settings, progress=False) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not retrained


@pytest.mark.slow
def test_demo_runs_end_to_end_at_a_small_size(tmp_path, repo_root):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "mprm.cli", "demo", "--output", str(out), "--rollouts", "40",
           "--benchmark-items", "30", "--pretrain-steps", "20", "--batch-size", "8",
           "--cache", str(tmp_path / "cache")]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=repo_root, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    last = res.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"demo: overall F1 (\d\.\d{4}) \(untrained (\d\.\d{4})\)", last)
    assert m, last
    after = json.loads((out / "eval" / "metrics.json").read_text())
    before = json.loads((out / "eval_untrained" / "metrics.json").read_text())
    assert float(m.group(1)) == pytest.approx(after["results"]["dev"]["overall"], abs=5e-5)
    assert float(m.group(2)) == pytest.approx(before["results"]["dev"]["overall"], abs=5e-5)
    assert (out / "demo.png").stat().st_size > 0 and "plot: " in res.stdout
    assert (out / "train" / "selection" / "manifest.jsonl").is_file()
    kept = sum(json.loads(ln)["selected"] for ln in (out / "train" / "selection" / "manifest.jsonl").open())
    assert kept == 3 * 10  # BIS-25% of 40 rollouts in each of 3 sources
    assert "| untrained (dev t=" in res.stdout and "| bis-0.25 trained (dev t=" in res.stdout
    losses = [json.loads(ln)["loss"] for ln in (out / "train" / "metrics.jsonl").open() if '"loss"' in ln]
    assert f"training loss: {losses[0]:.4f} at step 1 -> {losses[-1]:.4f}" in res.stdout
    assert re.search(r"^trained: AUC correct vs first wrong step (\d\.\d{3}|n/a); vs every wrong step", res.stdout, re.M)
    cfg = json.loads((out / "train" / "final" / "mprm_config.json").read_text())
    assert cfg["head"] == "yes_no"  # the paper's head, language model trained (the demo's default)


def test_prepare_synth_holds_out_every_third_benchmark_item(tmp_path):
    from mprm.experiments.synthetic import prepare_synth

    split = prepare_synth(tmp_path / "synth", sources=1, rollouts=4, benchmark_items=7, seed=0)
    ids = [json.loads(ln)["id"] for ln in (split.data / "benchmark" / "test.jsonl").open()]
    dev = [json.loads(ln)["id"] for ln in split.dev.open()]
    test = [json.loads(ln)["id"] for ln in split.test.open()]
    assert dev == [ids[0], ids[3], ids[6]] and test == [ids[1], ids[2], ids[4], ids[5]]
    assert (split.n_dev, split.n_test) == (3, 4)


def test_pretrained_cache_is_reused_only_for_the_same_settings_and_recipe(tmp_path):
    settings = PretrainSettings(steps=5)
    meta = {"settings": {**vars(settings), "steps": 5}, "recipe_version": RECIPE_VERSION}
    (tmp_path / "pretrain.json").write_text(json.dumps(meta))
    assert is_cached(tmp_path, settings)
    assert not is_cached(tmp_path, PretrainSettings(steps=6))
    (tmp_path / "pretrain.json").write_text(json.dumps({**meta, "recipe_version": RECIPE_VERSION - 1}))
    assert not is_cached(tmp_path, settings)  # built by an older recipe: rebuilt, not reused
