"""Domain pretraining of a tiny backbone on synthetic image-caption pairs (``mprm tiny --pretrain``).

A real MPRM starts from a vision-language model that already reads images and has seen good
solutions of the domain's problems; a randomly initialised tiny model has neither, and learning
both from step labels alone is slow (issue 6). This module gives the tiny backbone that starting
point honestly: next-token training on captions of synthetic pictures
(``mprm.data.synth.pretraining_pairs``) and on correct step-by-step solutions to questions about
other pictures (``solution_pairs``), like a policy model's supervised training. It never sees a
wrong step, a step label or an MC score. Both go through the same formatter as training and
scoring (``Question: ...\nProcess: sentence<prm>...``), so the backbone also learns the layout.
The tokenizer gets the domain's words as whole tokens (as a real
tokenizer has), which shortens sequences about fourfold.

The result is cached: a folder holding ``pretrain.json`` with the same settings is reused.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mprm.errors import UserError
from mprm.models.images import PREPROCESSOR_FILE
from mprm.models.tiny import build_tiny

PRETRAIN_FILE = "pretrain.json"
# Bumped when the recipe changes what the same settings build; a cache of another version is rebuilt.
# 2: domain words merged on top of earlier merges (" Yellow", " Total" are whole tokens), and the
#    chat template's words (system prompt, role names) are domain words too.
# 3: the authors' layout (empty user turn, text in the assistant turn; decisions.md D-MODELS-10).
RECIPE_VERSION = 3
PROMPT = "Describe the picture."
#: Families whose tiny model this pretraining knows (its vocabulary recipe and layout words are the
#: paper's two backbones'); ``mprm tiny`` without ``--pretrain`` builds every family.
PRETRAIN_BACKBONES = ("qwen2_5_vl", "internvl")


class PretrainSettingsError(UserError):
    """A pretraining setting out of range (also a ``ValueError``, through ``UserError``)."""


@dataclass(frozen=True)
class PretrainSettings:
    """What defines a pretrained tiny backbone (and its cache key)."""

    backbone: str = "qwen2_5_vl"
    steps: int = 800
    batch_size: int = 16
    lr: float = 2e-3
    pairs: int = 4000
    hidden_size: int = 128
    num_hidden_layers: int = 3
    intermediate_size: int = 256
    seed: int = 0
    solution_share: float = 0.5

    def validate(self) -> None:
        if self.backbone not in PRETRAIN_BACKBONES:
            raise PretrainSettingsError(f"pretraining supports backbone {' or '.join(PRETRAIN_BACKBONES)}, not {self.backbone!r}; "
                             "without --pretrain every family is available")
        bad = [f"{k}={v!r}" for k, v in asdict(self).items()
               if k not in ("backbone", "lr", "seed", "solution_share") and (not isinstance(v, int) or v < 1)]
        if self.lr <= 0:
            bad.append(f"lr={self.lr!r}")
        if not 0.0 <= self.solution_share <= 1.0:
            bad.append(f"solution_share={self.solution_share!r} (a share in [0, 1])")
        if bad:
            raise PretrainSettingsError(f"invalid pretraining settings: {', '.join(bad)}")


def domain_words(texts: Iterable[str], *, min_count: int = 2, max_words: int = 600) -> list[str]:
    """The most frequent pre-tokenised words of ``texts`` (leading space kept, e.g. " red")."""
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
    import regex

    pattern = regex.compile(PRETOKENIZE_REGEX)
    counts = Counter(piece for text in texts for piece in pattern.findall(text) if len(piece.encode()) > 1)
    return [w for w, c in counts.most_common(max_words) if c >= min_count]


def _domain_texts(work: Path, seed: int, backbone: str) -> list[str]:
    """Questions, steps and captions of a small synthetic sample, and the words of the backbone's
    chat template (its system prompt and role names, in every sequence): the vocabulary's source."""
    from mprm.data.synth import generate, pretraining_pairs, solution_pairs
    from mprm.models.backbones import get_backbone

    generate(work / "vocab", sources=2, rollouts=200, benchmark_items=50, bon_items=0, seed=seed + 1,
             images=False)
    system = get_backbone(backbone).system_prompt or ""  # None: the family has no system turn
    texts = [PROMPT, "Question: ", "Process: ", system, "system", "user", "assistant"] * 2
    for path in sorted((work / "vocab").rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            texts.append(row.get("question_orig") or row.get("question", ""))
            texts += [s["step"] for s in row.get("steps_with_score", [])]
            texts += list(row.get("response", {}).get("steps", [])) if isinstance(row.get("response"), dict) else []
    texts += [p["text"] for p in pretraining_pairs(200, seed=seed + 1, image_dir=work / "vocab_images")]
    for p in solution_pairs(200, seed=seed + 1, image_dir=work / "vocab_images"):
        texts += [p["question"], *p["steps"]]
    return texts


def _caption_example(pair: dict[str, str], image_name: str) -> dict[str, Any]:
    sentences = [s.strip() + "." for s in pair["text"].split(".") if s.strip()]
    return {"id": image_name, "images": [image_name], "question": PROMPT, "steps": sentences}


def _solution_example(pair: dict[str, Any]) -> dict[str, Any]:
    name = Path(pair["image"]).name
    return {"id": name, "images": [name], "question": pair["question"], "steps": pair["steps"]}


def caption_nll(model: Any, items: list[dict[str, Any]]) -> float:
    """Mean next-token NLL per caption (summed over its text tokens) of encoded items."""
    batch = model.formatter.collate(items)
    return float(_lm_loss(model, batch, reduction="sum")) / len(items)


def _lm_loss(model: Any, batch: dict[str, torch.Tensor], *, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over every real text token (image placeholders and padding excluded)."""
    hf = model.hf_model
    vision = {k: batch[k] for k in model.spec.forward_keys if k in batch}
    out = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False, **vision)
    target = batch["input_ids"][:, 1:]
    mask = (batch["attention_mask"][:, 1:] == 1) & (target != model.formatter.images.image_token_id)
    return torch.nn.functional.cross_entropy(out.logits[:, :-1][mask].float(), target[mask], reduction=reduction)


def is_cached(output_dir: Path, settings: PretrainSettings) -> bool:
    meta = output_dir / PRETRAIN_FILE
    if not meta.is_file():
        return False
    recorded = json.loads(meta.read_text())
    return recorded.get("settings") == asdict(settings) and recorded.get("recipe_version") == RECIPE_VERSION


def pretrain_tiny(output_dir: str | Path, settings: PretrainSettings = PretrainSettings(), *,
                  progress: bool = True) -> Path:
    """Build a tiny backbone with a domain vocabulary and pretrain it on captions (cached).

    Writes a base checkpoint (the ``mprm tiny`` layout, loadable by ``build_reward_model``) and
    ``pretrain.json`` with the settings, the loss curve's ends, the wall-clock and a grounding
    check: the caption NLL with the right picture against a wrong one on held-out pairs.
    """
    from tqdm import tqdm

    from mprm.data.synth import pretraining_pairs, solution_pairs
    from mprm.models.reward import build_reward_model

    settings.validate()
    out = Path(output_dir)
    if is_cached(out, settings):
        print(f"pretrained tiny backbone: reusing {out}", file=sys.stderr)
        return out
    t0 = time.time()
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    with tempfile.TemporaryDirectory(prefix="mprm-pretrain-") as tmp:
        work = Path(tmp)
        words = domain_words(_domain_texts(work, settings.seed, settings.backbone))
        text = {"hidden_size": settings.hidden_size, "num_hidden_layers": settings.num_hidden_layers,
                "intermediate_size": settings.intermediate_size}
        base = build_tiny(settings.backbone, work / "base", seed=settings.seed, words=words, text_overrides=text)
        model = build_reward_model(base, freeze_vision=False)
        fmt = model.formatter
        images = work / "images"
        pairs = list(pretraining_pairs(settings.pairs + 64, seed=settings.seed, image_dir=images))
        encoded = [fmt.encode(_caption_example(p, Path(p["image"]).name), image_root=images) for p in pairs]
        train, held = encoded[:settings.pairs], encoded[settings.pairs:]
        n_solutions = round(settings.pairs * settings.solution_share)
        solutions = [fmt.encode(_solution_example(p), image_root=images)
                     for p in solution_pairs(n_solutions, seed=settings.seed, image_dir=images)]
        train = train[:settings.pairs - n_solutions] + solutions
        wrong = [fmt.encode(_caption_example(p, Path(pairs[settings.pairs + (i + 1) % 64]["image"]).name),
                            image_root=images) for i, p in enumerate(pairs[settings.pairs:])]

        params = [p for p in model.hf_model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
        warmup = max(1, settings.steps // 20)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1.0 - s / settings.steps))
        model.train()
        losses = []
        bar = tqdm(range(settings.steps), desc="pretraining tiny backbone", disable=not progress, file=sys.stderr)
        for _ in bar:
            loss = _lm_loss(model, fmt.collate(rng.sample(train, settings.batch_size)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        model.eval()
        with torch.no_grad():
            nll_right, nll_wrong = caption_nll(model, held), caption_nll(model, wrong)

        staging = out.with_name(out.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        model.hf_model.save_pretrained(staging, safe_serialization=True)
        model.tokenizer.save_pretrained(staging)
        shutil.copy(base / PREPROCESSOR_FILE, staging / PREPROCESSOR_FILE)
        meta = {"settings": asdict(settings), "recipe_version": RECIPE_VERSION,
                "vocabulary_words": len(words), "first_loss": losses[0],
                "final_loss": sum(losses[-20:]) / len(losses[-20:]), "wall_s": round(time.time() - t0, 1),
                "heldout_caption_nll": {"right_image": nll_right, "wrong_image": nll_wrong}}
        (staging / PRETRAIN_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    print(f"pretrained tiny backbone in {meta['wall_s']} s: caption NLL {nll_right:.2f} with the right picture, "
          f"{nll_wrong:.2f} with a wrong one -> {out}", file=sys.stderr)
    return out
