"""Backbones and heads are registered components: the config's choices come from the registries,
and a user's module (``model.plugins``) that registers a backbone and a head is enough to train
with them from train.py (the docs' "Bringing a new backbone" example)."""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from _train_runs import REPO, command, env
from mprm.config import ConfigError, field_help, load_config

PLUGIN = textwrap.dedent('''
    import dataclasses

    import torch

    from mprm.models import get_backbone, register_backbone, register_head
    from mprm.models.heads import LinearHead

    # the docs' example: an existing family's spec under a new name and class
    register_backbone("my_qwen", dataclasses.replace(
        get_backbone("qwen2_5_vl"),
        model_class="Qwen2_5_VLForConditionalGeneration",
        model_types=("qwen2_5_vl",),
    ), replace=True)


    class ScaledLinearHead(LinearHead):
        """A head behind the interface: twice the linear logit."""

        def logits(self, inputs, lm_head):
            return 2.0 * super().logits(inputs, lm_head)


    register_head("scaled_linear", ScaledLinearHead, replace=True)
''')


def test_choices_come_from_the_registries():
    helps = field_help()
    assert "yes_no" in helps["model.head"] and "linear" in helps["model.head"]
    assert "qwen2_5_vl" in helps["model.backbone"] and "internvl" in helps["model.backbone"]
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model.head=mlp", "model.backbone=llava", "model.plugins=[no_such_plugin_module]"])
    text = str(err.value)
    assert "model.head = 'mlp': choose one of linear, yes_no (register another with register_head" in text
    assert "model.backbone = 'llava': choose one of" in text and "register_backbone" in text
    assert "model.plugins contains 'no_such_plugin_module': cannot import it" in text


@pytest.mark.slow
def test_a_plugin_backbone_and_head_train_from_train_py(tmp_path, tiny_qwen_dir, synth_dir):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "my_mprm_plugin.py").write_text(PLUGIN)
    out = tmp_path / "run"
    cmd = command("configs/tiny/qwen2_5_vl.yaml", out, tiny_qwen_dir, synth_dir, "model.backbone=my_qwen",
                  "model.head=scaled_linear", "model.plugins=[my_mprm_plugin]", "train.max_steps=2")
    e = env()
    e["PYTHONPATH"] = f"{tmp_path / 'plugins'}:{e.get('PYTHONPATH', '')}"
    proc = subprocess.run(cmd, cwd=REPO, env=e, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    saved = json.loads((out / "final" / "mprm_config.json").read_text())
    assert (saved["backbone"], saved["head"]) == ("my_qwen", "scaled_linear")
    assert (out / "final" / "score_head.safetensors").is_file()


def test_the_config_default_head_is_the_registry_default():
    """config.py keeps the literal (it must not import torch); it may not drift from DEFAULT_HEAD."""
    from mprm.config import Config
    from mprm.models.heads import DEFAULT_HEAD, get_head

    assert Config().model.head == DEFAULT_HEAD == "yes_no"
    assert get_head(DEFAULT_HEAD).uses_lm_head
