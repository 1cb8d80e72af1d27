"""Save / load round trips: full model, linear head, LoRA adapters and merged LoRA."""

from __future__ import annotations

import json

import pytest
import torch

from mprm.models import LoraSettings, build_reward_model, load_reward_model, score_batch


def _assert_close(got: list[list[float]], want: list[list[float]], tol: float) -> None:
    assert [len(g) for g in got] == [len(w) for w in want]
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=tol)


def _train_step(model, examples, image_root):
    f = model.formatter
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(**f.collate([f.encode(ex, image_root) for ex in examples])).loss_sum.backward()
    opt.step()
    opt.zero_grad()


def test_round_trip_equal_scores(reward_model, examples, image_root, tmp_path):
    before = score_batch(reward_model, examples, image_root=image_root)
    _train_step(reward_model, examples, image_root)
    trained = score_batch(reward_model, examples, image_root=image_root)
    assert trained[0] != pytest.approx(before[0], abs=1e-4)
    out = reward_model.save_pretrained(tmp_path / "rm")
    cfg = json.loads((out / "mprm_config.json").read_text())
    assert cfg["backbone"] == reward_model.backbone_name and cfg["head"] == "yes_no"
    assert cfg["separator"] == "<prm>\n\n" and cfg["max_length"] == 8192 and cfg["lora"] is None
    assert (out / "model.safetensors").is_file() and (out / "preprocessor_config.json").is_file()
    loaded = load_reward_model(out, dtype=torch.float32)
    assert "<prm>" in loaded.tokenizer.get_vocab()
    assert loaded.formatter.images.settings == reward_model.formatter.images.settings
    _assert_close(score_batch(loaded, examples, image_root=image_root), trained, 1e-5)


def test_linear_head_round_trip(tiny_dir, examples, image_root, tmp_path):
    torch.manual_seed(1)
    m = build_reward_model(tiny_dir, head="linear")
    _train_step(m, examples, image_root)
    scores = score_batch(m, examples, image_root=image_root)
    m.save_pretrained(tmp_path / "lin")
    assert (tmp_path / "lin" / "score_head.safetensors").is_file()
    loaded = load_reward_model(tmp_path / "lin")
    assert loaded.head == "linear"
    _assert_close(score_batch(loaded, examples, image_root=image_root), scores, 1e-5)


def test_lora_round_trip_and_merge(tiny_dir, examples, image_root, tmp_path):
    torch.manual_seed(2)
    m = build_reward_model(tiny_dir, lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    names = m.trainable_parameter_names()
    assert any("lora_A" in n for n in names) and any("lm_head" in n for n in names)
    assert not any("lora" in n and m.spec.vision_modules[0] + "." in n and "merger" not in n for n in names)
    base = score_batch(m, examples, image_root=image_root)
    _train_step(m, examples, image_root)
    scores = score_batch(m, examples, image_root=image_root)
    assert scores[0] != pytest.approx(base[0], abs=1e-4)

    m.save_pretrained(tmp_path / "lora")
    assert (tmp_path / "lora" / "adapter" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "lora" / "model.safetensors").exists()
    loaded = load_reward_model(tmp_path / "lora")
    assert loaded.lora is not None
    _assert_close(score_batch(loaded, examples, image_root=image_root), scores, 1e-5)

    m.save_pretrained(tmp_path / "merged", merge=True)
    merged = load_reward_model(tmp_path / "merged")
    assert merged.lora is None
    _assert_close(score_batch(merged, examples, image_root=image_root), scores, 1e-4)
    assert m.lora is not None  # merging saved a copy; the live model is still LoRA


def test_load_rejects_non_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a saved mprm reward model"):
        load_reward_model(tmp_path)
