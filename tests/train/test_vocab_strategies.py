"""The vocabulary survives every strategy (decisions.md D-MODELS-11): a checkpoint with a free
embedding row keeps its size after ``<prm>`` under 1 process, DDP and ZeRO-3 (ZeRO-3 reports a
partitioned embedding as 0 rows); LoRA adapters trained under ZeRO-3 load on 1 process and score
as they scored there. (A checkpoint without a free row grows to the same size under every strategy:
tests/train/test_distributed.py compares the final weights of each strategy with 1 process.)"""

from __future__ import annotations

import json

import pytest

from _train_runs import command, metrics, run, weights

pytestmark = [pytest.mark.slow, pytest.mark.distributed]
EXTRA_ROWS = 10


@pytest.fixture(scope="module")
def padded_qwen_dir(tmp_path_factory, tiny_qwen_dir):
    """The tiny Qwen2.5-VL with EXTRA_ROWS unused embedding rows past its tokenizer."""
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    out = tmp_path_factory.mktemp("padded_qwen")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_qwen_dir)
    tok = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    model.resize_token_embeddings(len(tok) + EXTRA_ROWS, mean_resizing=False)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "preprocessor_config.json").write_bytes((tiny_qwen_dir / "preprocessor_config.json").read_bytes())
    return out


def _rows(folder) -> tuple[int, int]:
    w = weights(folder)
    embed = next(v for k, v in w.items() if k.endswith("embed_tokens.weight"))
    return embed.shape[0], w["lm_head.weight"].shape[0]


@pytest.mark.parametrize("launch", [None, "cpu_ddp.yaml", "cpu_zero3.yaml"])
def test_a_free_row_is_used_under_every_strategy(launch, padded_qwen_dir, tmp_path, synth_dir):
    from transformers import AutoTokenizer

    n_tok = len(AutoTokenizer.from_pretrained(padded_qwen_dir))
    out = tmp_path / (launch or "single")
    run(command("configs/tiny/qwen2_5_vl.yaml", out, padded_qwen_dir, synth_dir, "train.max_steps=2",
                "train.global_batch_size=4", "train.micro_batch_size=2", launch=launch), timeout=400)
    assert _rows(out / "final") == (n_tok + EXTRA_ROWS, n_tok + EXTRA_ROWS)


def test_lora_adapters_trained_under_zero3_load_on_one_process(padded_qwen_dir, tmp_path, synth_dir):
    from mprm.config import load_config
    from mprm.models import load_reward_model
    from mprm.eval.settings import EvalSettings
    from mprm.train.evaluate import evaluate_dev

    out = tmp_path / "lora_zero3"
    dev = synth_dir / "benchmark" / "test.jsonl"
    run(command("configs/tiny/qwen2_5_vl.yaml", out, padded_qwen_dir, synth_dir, "train.max_steps=2",
                "train.global_batch_size=4", "train.micro_batch_size=2", "model.lora_rank=4",
                f"eval.dev={dev}", f"eval.image_root={synth_dir}", "train.eval_every=2", launch="cpu_zero3.yaml"),
        timeout=400)
    logged = [r for r in metrics(out) if "dev/auc" in r][-1]
    assert json.loads((out / "final" / "mprm_config.json").read_text())["lora"]["r"] == 4
    model = load_reward_model(out / "final")  # adapters over the base: sizes must match (no resize mismatch)
    cfg = load_config(out / "config.yaml")
    got = evaluate_dev(model, cfg, EvalSettings.from_config(cfg))
    assert got["n_steps"] == logged["dev/n_steps"]
    assert got["auc"] == pytest.approx(logged["dev/auc"], abs=1e-5)
    assert got["overall"] == pytest.approx(logged["dev/overall"], abs=1e-5)
