"""Tiny backbones: on-disk layout, determinism, sizes, the CLI, and registering a backbone."""

from __future__ import annotations

import dataclasses
import json

import pytest
from safetensors.torch import load_file

from mprm.cli import main
from mprm.models import build_reward_model, detect_backbone, get_backbone, register_backbone
from mprm.models.backbones import unregister_backbone
from mprm.models.tiny import build_tiny


def test_layout_and_sizes(tiny_qwen_dir, tiny_internvl_dir):
    for d in (tiny_qwen_dir, tiny_internvl_dir):
        for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                     "preprocessor_config.json"):
            assert (d / name).is_file(), d / name
    q = json.loads((tiny_qwen_dir / "config.json").read_text())
    assert q["model_type"] == "qwen2_5_vl" and q["text_config"]["hidden_size"] == 64
    assert q["text_config"]["num_hidden_layers"] == 2
    assert q["vision_config"]["depth"] == 2 and q["vision_config"]["hidden_size"] == 32
    i = json.loads((tiny_internvl_dir / "config.json").read_text())
    assert i["model_type"] == "internvl" and i["vision_config"]["hidden_size"] == 32
    assert i["vision_config"]["image_size"] == [56, 56] and i["text_config"]["model_type"] == "qwen2"
    assert detect_backbone(tiny_qwen_dir) == "qwen2_5_vl" and detect_backbone(tiny_internvl_dir) == "internvl"
    pre = json.loads((tiny_qwen_dir / "preprocessor_config.json").read_text())
    assert pre["mprm_image_settings"] == {"min_pixels": 784, "max_pixels": 3136}


def test_same_seed_same_weights_via_cli(tmp_path, tiny_internvl_dir):
    assert main(["tiny", "--backbone", "internvl", "--output", str(tmp_path / "a"), "--seed", "0"]) == 0
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tiny_internvl_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    build_tiny("internvl", tmp_path / "c", seed=1)
    c = load_file(str(tmp_path / "c" / "model.safetensors"))
    assert any((a[k] != c[k]).any() for k in a)


def test_tiny_settings_picked_up_and_overridable(tiny_qwen_dir, tiny_internvl_dir):
    assert build_reward_model(tiny_qwen_dir).formatter.images.settings == {"min_pixels": 784, "max_pixels": 3136}
    assert build_reward_model(tiny_internvl_dir).formatter.images.settings["max_tiles"] == 2
    assert build_reward_model(tiny_internvl_dir, max_tiles=4).formatter.images.settings["max_tiles"] == 4


def test_unknown_tiny_backbone(tmp_path):
    with pytest.raises(ValueError, match="no tiny model for backbone 'llava'"):
        build_tiny("llava", tmp_path)


def test_register_a_backbone(tiny_qwen_dir):
    spec = dataclasses.replace(get_backbone("qwen2_5_vl"), model_types=("not_a_real_type",),
                               system_prompt="Judge every step.")
    register_backbone("my_qwen", spec)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_backbone("my_qwen", spec)
        m = build_reward_model(tiny_qwen_dir, backbone="my_qwen")
        text = m.tokenizer.decode(m.formatter.encode_text({"question": "q", "steps": ["s"], "images": []}, image_sizes=[])["input_ids"])
        assert text.startswith("<|im_start|>system\nJudge every step.<|im_end|>")
    finally:
        unregister_backbone("my_qwen")
