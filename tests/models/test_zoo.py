"""The backbone zoo, every family on its tiny checkpoint (``mprm tiny --backbone NAME``), through
the checks of mprm.models.zoo.check: the authors' layout in the family's own markup, ``<prm>`` and
labels, image tokens, single pass == per prefix, batch == one by one, two optimiser steps that move
only the trainable parameters, save/load and LoRA round trips with equal scores.

The expected prompt prefixes are written out by hand from each family's published chat format
(ChatML; Gemma's ``<start_of_turn>``; Idefics3/SmolVLM's ``User:``/``Assistant:``; Mistral's
``[INST]``), not produced by mprm."""

from __future__ import annotations

import pytest
import torch

from mprm.models import build_reward_model, detect_backbone, get_backbone
from mprm.models.backbones import INTERNVL_SYSTEM, QWEN_SYSTEM
from mprm.models.tiny import TINY_BACKBONES
from mprm.models.zoo import TINY
from mprm.models.zoo.check import check_layout, check_lora, check_scoring, check_training, write_pictures

CHATML = "<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n"
PREFIX = {
    "qwen2_vl": CHATML.format(QWEN_SYSTEM),
    "qwen2_5_vl": CHATML.format(QWEN_SYSTEM),
    "qwen3_vl": "<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n",
    "internvl": "<s>" + CHATML.format(INTERNVL_SYSTEM),
    "internvl_hf": CHATML.format(INTERNVL_SYSTEM),
    "internvl_internlm2": "<s>" + CHATML.format(INTERNVL_SYSTEM),
    "llava_onevision": CHATML.format(QWEN_SYSTEM),
    "gemma3": "<bos><start_of_turn>user\n<end_of_turn>\n<start_of_turn>model\n",
    "idefics3": "<|begin_of_text|>User: <end_of_utterance>\nAssistant: ",
    "smolvlm": "<|im_start|>User: <end_of_utterance>\nAssistant: ",
    "mistral3": f"<s>[SYSTEM_PROMPT]{QWEN_SYSTEM}[/SYSTEM_PROMPT][INST][/INST]",
}
#: What a family's vocabulary calls the word after a space: the head must read the bare entries.
SPACED_YES = {"gemma3": "▁Yes"} | {f: "ĠYes" for f in ("qwen2_vl", "qwen3_vl", "internvl_hf", "llava_onevision",
                                                      "idefics3", "smolvlm", "mistral3")}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    return write_pictures(tmp_path_factory.mktemp("zoo_pictures"))


@pytest.fixture(params=TINY_BACKBONES)
def family(request) -> str:
    return request.param


@pytest.fixture()
def model(family, zoo_dir):
    torch.manual_seed(0)
    return build_reward_model(zoo_dir(family), dtype=torch.float32)


def test_every_tiny_family_is_a_registered_backbone(family, zoo_dir):
    assert set(TINY_BACKBONES) == set(TINY) and set(PREFIX) == set(TINY)
    get_backbone(TINY[family].backbone)
    assert detect_backbone(zoo_dir(family)) == TINY[family].backbone


def test_the_authors_layout_in_the_familys_markup(model, family, pictures):
    check_layout(model, pictures, prefix=PREFIX[family])


def test_yes_and_no_are_the_bare_vocabulary_entries(model, family):
    tok = model.tokenizer
    assert tok.convert_ids_to_tokens([model.yes_id, model.no_id]) == ["Yes", "No"]
    if family in SPACED_YES:  # " Yes" is another entry, which the head must not read
        assert SPACED_YES[family] in tok.get_vocab()
        assert tok(" Yes", add_special_tokens=False)["input_ids"][-1] != model.yes_id


def test_single_pass_and_batch_scores(model, family, pictures, zoo_dir):
    check_scoring(model, pictures, folder=zoo_dir(family))


def test_two_steps_move_only_trainable_parameters_and_save_load(model, pictures, tmp_path):
    check_training(model, pictures, tmp_path / "rm")


def test_lora_round_trip(family, zoo_dir, pictures, tmp_path):
    check_lora(zoo_dir(family), pictures, tmp_path)


def test_image_settings_defaults_and_overrides(family, zoo_dir, tmp_path):
    """The family's defaults apply to a checkpoint without mprm's saved settings; its own knobs
    override them; a knob of another family is an error naming the family's settings."""
    import json
    import shutil

    spec = get_backbone(TINY[family].backbone)
    folder = zoo_dir(family)
    if not spec.image_defaults:
        with pytest.raises(ValueError, match=r"image setting\(s\) \['max_tiles'\] do not apply"):
            build_reward_model(folder, max_tiles=3)
        return
    plain = tmp_path / "plain"
    shutil.copytree(folder, plain)
    pre = json.loads((plain / "preprocessor_config.json").read_text())
    del pre["mprm_image_settings"]
    (plain / "preprocessor_config.json").write_text(json.dumps(pre))
    settings = build_reward_model(plain).formatter.images.settings
    assert {k: settings[k] for k in spec.image_defaults} == spec.image_defaults
    knob = sorted(spec.image_defaults)[0]
    assert build_reward_model(folder, **{knob: 4 * spec.image_defaults[knob]}).formatter.images.settings[knob] == \
        4 * spec.image_defaults[knob]
    foreign = "max_tiles" if knob != "max_tiles" else "max_pixels"
    with pytest.raises(ValueError, match=f"image setting\\(s\\) \\['{foreign}'\\] do not apply"):
        build_reward_model(folder, **{foreign: 3})
