"""The authors' layout, held against their code (JinYuanLi0012/Balanced-Info-MPRM): the PRM
preprocess function of src/internvl/train/dataset.py for training, and
eval/prm/evaluate_visualprocessbench_prm.py with the model's batch_prm for scoring. The expected
texts below are written out from those functions by hand, not produced by mprm."""

from __future__ import annotations

import json

import pytest

from mprm.models import build_reward_model
from mprm.models.backbones import INTERNVL_SYSTEM, QWEN_SYSTEM
from mprm.models.reward import yes_no_ids

EXAMPLE = {"id": "q1", "images": ["red.png"], "question": "In <image1> what is 2+2?",
           "steps": ["First, add.", "2 + 2 = 5.", "Answer: 5"], "labels": [1.0, 0.0, 0.0]}


def _image_text(f, enc) -> str:
    """The placeholder of the item's image as text (start, n context tokens, end)."""
    ids = f.images.placeholder_ids(enc["image_token_counts"][0])
    return f.tokenizer.decode(ids)


def test_training_layout_is_the_authors(backbone_name, tiny_dir, image_root):
    f = build_reward_model(tiny_dir).formatter
    enc = f.encode_text(EXAMPLE, image_root=image_root)
    system, bos = (QWEN_SYSTEM, "") if backbone_name == "qwen2_5_vl" else (INTERNVL_SYSTEM, "<s>")
    # preprocess: [<s>] system turn, EMPTY user turn, assistant turn with '<image>\n' + the human
    # value "Question: {q}\nProcess: {step}<prm>\n\n{step}<prm>..." (ending here at the last <prm>)
    expected = (f"{bos}<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<|im_end|>\n"
                f"<|im_start|>assistant\n{_image_text(f, enc)}\n"
                "Question: In image 1 what is 2+2?\nProcess: First, add.<prm>\n\n2 + 2 = 5.<prm>\n\nAnswer: 5<prm>")
    assert f.tokenizer.decode(enc["input_ids"]) == expected
    if bos:  # one <s> opens the sequence, as add_bos_token does for InternLM2
        assert enc["input_ids"][0] == f.tokenizer.bos_token_id
        assert enc["input_ids"].count(f.tokenizer.bos_token_id) == 1


def test_authors_eval_layout(backbone_name, tiny_dir, image_root):
    f = build_reward_model(tiny_dir, prompt_style="authors_eval").formatter
    enc = f.encode_text(EXAMPLE, image_root=image_root)
    system, bos = (QWEN_SYSTEM, "") if backbone_name == "qwen2_5_vl" else (INTERNVL_SYSTEM, "<s>")
    # their script: <imageN> removed, steps joined by <prm> alone; the conversation template renders
    # the empty user message as the role tag only (no <|im_end|>)
    expected = (f"{bos}<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n"
                f"<|im_start|>assistant\n{_image_text(f, enc)}\n"
                "Question: In  what is 2+2?\nProcess: First, add.<prm>2 + 2 = 5.<prm>Answer: 5<prm>")
    assert f.tokenizer.decode(enc["input_ids"]) == expected
    assert f.separator == "<prm>"


def test_prompt_style_is_saved_and_scores_differ(tiny_qwen_dir, image_root, tmp_path):
    from mprm.models import load_reward_model, score_batch

    m = build_reward_model(tiny_qwen_dir, prompt_style="authors_eval")
    m.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "mprm_config.json").read_text())["prompt_style"] == "authors_eval"
    assert load_reward_model(tmp_path / "m").formatter.prompt_style == "authors_eval"
    train_style = load_reward_model(tmp_path / "m", prompt_style="train")
    a = score_batch(m, [EXAMPLE], image_root=image_root)[0]
    b = score_batch(train_style, [EXAMPLE], image_root=image_root)[0]
    assert len(a) == len(b) == 3 and a != b
    with pytest.raises(ValueError, match="prompt_style='chat'"):
        build_reward_model(tiny_qwen_dir, prompt_style="chat")


def _sentencepiece_like(tmp_path):
    """A Metaspace tokenizer (as SentencePiece ones are): the text "Yes" encodes as "▁Yes", while
    the vocabulary also holds a bare "Yes" entry, which is what convert_tokens_to_ids returns."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "▁Yes": 1, "Yes": 2, "▁No": 3, "No": 4, "▁": 5, "Y": 6, "e": 7, "s": 8, "N": 9, "o": 10}
    merges = [("▁", "Y"), ("▁Y", "e"), ("▁Ye", "s"), ("Y", "e"), ("Ye", "s"), ("▁", "N"), ("▁N", "o"), ("N", "o")]
    vocab.update({"▁Y": 11, "▁Ye": 12, "Ye": 13, "▁N": 14})
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")


def test_yes_no_ids_are_vocabulary_entries_as_the_authors_take_them(tmp_path):
    tok = _sentencepiece_like(tmp_path)
    assert tok("Yes", add_special_tokens=False)["input_ids"] == [1]  # the text is "▁Yes"
    assert yes_no_ids(tok) == (2, 4)  # convert_tokens_to_ids(["Yes", "No"])
    with pytest.raises(ValueError, match=r"'Maybe' as one vocabulary entry, but this tokenizer has none"):
        yes_no_ids(tok, "Maybe", "No")
    with pytest.raises(ValueError, match=r"similar entries: \['Yes', '▁Yes', '▁yes'\]"):
        tok2 = _sentencepiece_like(tmp_path)
        tok2.add_tokens(["▁yes"])
        yes_no_ids(tok2, "yes", "No")
