"""The checks every backbone passes on a tiny checkpoint (docs/models.md, "Bringing a new backbone").

``check_backbone(folder)`` runs them all on a checkpoint folder and raises ``AssertionError``
naming the first that fails; tests/models/test_zoo.py runs each one per zoo family, and a user who
registers a backbone calls ``check_backbone`` on a tiny checkpoint of it from one test
(tests/models/test_zoo_new_backbone.py is that test for a LLaVA-1.5 entry). The checks:

* :func:`check_layout`: the authors' layout (one ``<prm>`` per step, the sequence ends at the
  last, labels aligned, as many image tokens as the image handler counted, at most one BOS) and,
  when given, the expected prompt prefix;
* :func:`check_scoring`: single-pass scores equal per-prefix scores, a padded batch equals
  one-by-one scoring (and the same with one placeholder per image when the family takes several);
* :func:`check_training`: two optimiser steps move only trainable parameters, language model and
  projector among them, never the vision tower; a saved and reloaded model scores the same;
* :func:`check_lora`: adapters only on the language model, round trips unmerged and merged.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mprm.data.labels import IGNORE_LABEL

#: The examples of every check: a single image, a wide striped one with a neutral step, two
#: images (one canvas, or one placeholder each), and no image at all.
EXAMPLES: list[dict[str, Any]] = [
    {"id": "one", "images": ["red.png"], "question": "<image 1> What is 2+2?",
     "steps": ["First, add the numbers.", "2 + 2 = 5.", "Answer: 5"], "labels": [1.0, 0.0, 0.0]},
    {"id": "two", "images": ["stripes.png"], "question": "<image>\nCount the stripes.",
     "steps": ["There are many stripes.", "Answer: 18"], "labels": [0.75, -1]},
    {"id": "three", "images": ["red.png", "green.png"], "question": "Which image is red?",
     "steps": ["The first one is red."], "labels": [1.0]},
    {"id": "text", "images": [], "question": "No picture: 3 * 3?", "steps": ["9", "Answer: 9"], "labels": [1.0, 1.0]},
]


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def close(got: list[list[float]], want: list[list[float]], tol: float, what: str) -> None:
    expect([len(g) for g in got] == [len(w) for w in want], f"{what}: step counts {got} vs {want}")
    for g, w in zip(got, want):
        expect(all(abs(a - b) <= tol for a, b in zip(g, w)), f"{what}: {g} vs {w} (tolerance {tol})")


def write_pictures(folder: str | Path) -> Path:
    """The pictures :data:`EXAMPLES` name, written into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (60, 40), (200, 10, 10)).save(folder / "red.png")
    Image.new("RGB", (30, 90), (10, 200, 10)).save(folder / "green.png")
    stripes = Image.new("RGB", (120, 50), (10, 10, 200))
    for x in range(0, 120, 7):
        for y in range(50):
            stripes.putpixel((x, y), (250, 250, 0))
    stripes.save(folder / "stripes.png")
    return folder


def check_layout(model: Any, image_root: Path, *, prefix: str | None = None) -> None:
    from mprm.models.images import placeholder_for

    f, tok = model.formatter, model.tokenizer
    enc = f.encode_text(EXAMPLES[0], image_root=image_root)
    ids, pos = enc["input_ids"], enc["prm_positions"]
    expect([ids[p] for p in pos] == [f.prm_token_id] * 3 and ids.count(f.prm_token_id) == 3,
           f"<prm> at {pos}, {ids.count(f.prm_token_id)} in all, for 3 steps")
    expect(pos[-1] == len(ids) - 1, "the sequence must end at the last <prm>")
    expect(enc["labels"] == [1.0, 0.0, 0.0], f"labels {enc['labels']}")
    expect(f.encode_text(EXAMPLES[1], image_root=image_root)["labels"] == [0.75, IGNORE_LABEL], "neutral step not ignored")
    n_image = ids.count(f.images.image_token_id)
    expect(n_image == sum(enc["image_token_counts"]) > 0,
           f"{n_image} image tokens in the sequence, the image handler counted {enc['image_token_counts']}")
    expect(tok.bos_token_id is None or ids.count(tok.bos_token_id) <= 1, "two BOS tokens (template and tokenizer)")
    expect(tok.convert_ids_to_tokens([model.yes_id, model.no_id]) == [model.spec.yes_token, model.spec.no_token],
           "the head does not read the spec's yes_token / no_token")
    if prefix is not None:
        (w, h), = enc["image_sizes"]
        want = (prefix + tok.decode(placeholder_for(f.images, w, h)) + "\nQuestion: image 1 What is 2+2?\nProcess: "
                "First, add the numbers.<prm>\n\n2 + 2 = 5.<prm>\n\nAnswer: 5<prm>")
        got = tok.decode(ids)
        expect(got == want, f"layout:\n{got!r}\nexpected:\n{want!r}")
        text = tok.decode(f.encode_text(EXAMPLES[3], image_sizes=[])["input_ids"])
        expect(text.startswith(prefix + "Question: No picture"), f"text-only layout: {text!r}")


def check_scoring(model: Any, image_root: Path, *, folder: Path | None = None) -> None:
    from mprm.models import build_reward_model, score_batch

    ex = EXAMPLES[0]
    full = score_batch(model, [ex], image_root=image_root)[0]
    alone = [score_batch(model, [{**ex, "steps": ex["steps"][:k], "labels": None}], image_root=image_root)[0][-1]
             for k in (1, 2, 3)]
    close([full], [alone], 1e-4, "single pass vs each prefix")
    expect(max(full) - min(full) > 1e-4, f"the steps all score {full}: is the head reading the <prm> rows?")
    batched = score_batch(model, EXAMPLES, image_root=image_root, batch_size=4)
    close(batched, [score_batch(model, [ex], image_root=image_root)[0] for ex in EXAMPLES], 1e-4, "batch vs one by one")
    if folder is not None and model.spec.multi_image:
        separate = build_reward_model(folder, backbone=model.backbone_name, multi_image="separate", dtype=torch.float32)
        expect(len(separate.formatter.encode(EXAMPLES[2], image_root)["image_token_counts"]) == 2,
               "multi_image='separate' must give each image its own placeholder")
        batched = score_batch(separate, EXAMPLES, image_root=image_root, batch_size=4)
        close(batched, [score_batch(separate, [ex], image_root=image_root)[0] for ex in EXAMPLES], 1e-4,
              "separate images: batch vs one by one")


def train_steps(model: Any, image_root: Path, *, steps: int = 2, lr: float = 1e-2) -> None:
    f = model.formatter
    batch = f.collate([f.encode(ex, image_root) for ex in EXAMPLES])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        out = model(**batch)
        (out.loss_sum / out.n_labelled).backward()
        opt.step()
        opt.zero_grad()


def check_training(model: Any, image_root: Path, out: Path) -> None:
    from mprm.models import load_reward_model, score_batch

    spec = model.spec
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = set(model.trainable_parameter_names())
    frozen_vision = [n for n in trainable if spec.part_of(n.removeprefix("backbone.")) == "vision"]
    expect(not frozen_vision, f"vision parameters are trainable: {frozen_vision[:3]}")
    train_steps(model, image_root)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    expect(moved <= trainable, f"frozen parameters moved: {sorted(moved - trainable)[:3]}")
    parts = {spec.part_of(n.removeprefix("backbone.")) for n in moved}
    expect({"language", "projector"} <= parts, f"two steps moved parameters of {sorted(parts)} only")
    scores = score_batch(model, EXAMPLES, image_root=image_root)
    loaded = load_reward_model(model.save_pretrained(out), dtype=torch.float32)
    expect(loaded.backbone_name == model.backbone_name and loaded.formatter.prefix_ids == model.formatter.prefix_ids,
           "the saved model does not restore its backbone and prompt")
    close(score_batch(loaded, EXAMPLES, image_root=image_root), scores, 1e-5, "saved and loaded")


def check_lora(folder: Path, image_root: Path, out: Path, *, backbone: str | None = None) -> None:
    from mprm.models import LoraSettings, build_reward_model, load_reward_model, score_batch

    torch.manual_seed(2)
    m = build_reward_model(folder, backbone=backbone, lora=LoraSettings(r=4, alpha=8, dropout=0.0), dtype=torch.float32)
    names = m.trainable_parameter_names()
    adapters = [n for n in names if "lora_A" in n]
    outside = [n for n in adapters if m.spec.part_of(n.removeprefix("backbone.base_model.model.")) != "language"]
    expect(bool(adapters) and not outside, f"LoRA adapters: {len(adapters)}, outside the language model: {outside[:3]}")
    expect(any(m.spec.lm_head in n for n in names), "the LM head must stay trainable under LoRA")
    base = score_batch(m, EXAMPLES, image_root=image_root)
    train_steps(m, image_root, steps=1, lr=5e-2)
    scores = score_batch(m, EXAMPLES, image_root=image_root)
    expect(scores[0] != base[0], "a LoRA step changed no score")
    m.save_pretrained(out / "lora")
    close(score_batch(load_reward_model(out / "lora", dtype=torch.float32), EXAMPLES, image_root=image_root), scores,
          1e-5, "LoRA adapters saved and loaded")
    m.save_pretrained(out / "merged", merge=True)
    close(score_batch(load_reward_model(out / "merged", dtype=torch.float32), EXAMPLES, image_root=image_root), scores,
          1e-4, "LoRA merged, saved and loaded")


def check_backbone(folder: str | Path, *, backbone: str | None = None, prefix: str | None = None) -> None:
    """Every check on the tiny checkpoint in ``folder`` (``backbone``: its registry name, else
    detected from ``config.json``; ``prefix``: the prompt text expected before the image)."""
    from mprm.models import build_reward_model

    folder = Path(folder)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_pictures(Path(tmp) / "pictures")
        torch.manual_seed(0)
        model = build_reward_model(folder, backbone=backbone, dtype=torch.float32)
        check_layout(model, root, prefix=prefix)
        check_scoring(model, root, folder=folder)
        check_training(model, root, Path(tmp) / "saved")
        check_lora(folder, root, Path(tmp), backbone=backbone)
