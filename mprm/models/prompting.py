"""The one formatting path for training and scoring (METHOD.md 6, 10.4, 10.5).

A rollout becomes the authors' layout (their PRM preprocess function; decisions.md D-MODELS-10):
the system turn, an EMPTY user turn, then the assistant turn holding the image(s) and the
Question/Process text, opened by one BOS token where the tokenizer adds one (InternLM2). Each
family's turns are rendered by its own chat template (mprm.models.chat, D-MODELS-14); in ChatML:

    [<s>]<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n
    {image placeholder}\nQuestion: {question}\nProcess: {step_1}<prm>\n\n{step_2}<prm>\n\n...{step_n}<prm>

The sequence ends at the last ``<prm>``: a causal model's scores at the ``<prm>`` positions do not
depend on anything after it. The separator is configurable (METHOD.md 10.4); it holds ``<prm>``
exactly once, every step is followed by it and whatever follows ``<prm>`` in it is dropped after
the last step, so the sequence of the first k steps is a prefix of the whole sequence: scoring all
steps in one pass equals scoring each prefix.

``prompt_style="authors_eval"`` reproduces the input of the authors' VisualProcessBench script
instead (``eval/prm/evaluate_visualprocessbench_prm.py``): steps joined by ``<prm>`` alone, tags
``<imageN>`` removed from the question, and the empty user turn without its ``<|im_end|>``.

Two stages so the trainer can cache tokenisation: :meth:`Formatter.encode_text` (no pixels,
JSON-serialisable) and :meth:`Formatter.attach_images`; :meth:`Formatter.collate` pads a batch.
Free text (question, steps) is tokenised with special tokens split, so a literal ``<prm>`` or an
image token inside a step can never create a scoring position or break the image-token count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mprm.config import PROMPT_STYLES
from mprm.data.labels import IGNORE_LABEL
from mprm.models.backbones import BackboneSpec
from mprm.models.chat import layout_prefix, prefix_bos
from mprm.models.images import ImageHandler, canvas_size, make_canvas, placeholder_for

PRM_TOKEN = "<prm>"
DEFAULT_SEPARATOR = "<prm>\n\n"
MULTI_IMAGE_MODES = ("canvas", "separate")
#: Per-batch inputs built from ``input_ids`` (1 at image tokens) for backbones whose ``forward_keys`` name them.
TOKEN_TYPE_KEYS = ("mm_token_type_ids", "token_type_ids")
_AUTHORS_IMAGE_TAG = re.compile(r"<image\d+>")
_BARE_IMAGE_TAG = re.compile(r"[ \t]*<image>[ \t]*\n?")
_NUMBERED_IMAGE_TAG = re.compile(r"<image[ _]?(\d+)>")


def clean_question(question: str) -> str:
    """Remove image tags from a question (decisions.md D-MODELS-2).

    A bare ``<image>`` (VisualPRM400K's instruction format) is dropped: the image itself comes
    through the placeholder. Numbered tags ``<image 1>`` / ``<image_1>`` / ``<image1>``
    (VisualProcessBench) become plain text ``image 1`` so references between the question and its
    images survive.
    """
    text = _BARE_IMAGE_TAG.sub(" ", question)
    text = _NUMBERED_IMAGE_TAG.sub(r"image \1", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    return "\n".join(line.strip() for line in text.strip().splitlines())


def authors_clean_question(question: str) -> str:
    """The authors' VisualProcessBench cleaning: ``<imageN>`` tags removed, the text stripped.

    A bare ``<image>`` is still dropped (the image comes through the placeholder, as in
    :func:`clean_question`); ``<image 1>`` with a space is left as text, as their regex leaves it.
    """
    return _BARE_IMAGE_TAG.sub(" ", _AUTHORS_IMAGE_TAG.sub("", question)).strip()


def bos_ids(tokenizer: Any) -> list[int]:
    """``[bos]`` when the tokenizer opens every encoded text with its BOS (InternLM2's
    ``add_bos_token``, or a post-processor that adds it), else ``[]``."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    return [int(bos)] if len(with_special) > len(plain) and with_special[0] == bos else []


def _item_id(example: dict[str, Any]) -> str:
    return str(example.get("id", "<no id>"))


def _step_labels(example: dict[str, Any], n_steps: int) -> list[float]:
    """Per-step targets; benchmark neutral (-1) or missing labels are ignored (IGNORE_LABEL)."""
    labels = example.get("labels")
    if labels is None:
        return [IGNORE_LABEL] * n_steps
    if len(labels) != n_steps:
        raise ValueError(f"item {_item_id(example)}: {len(labels)} labels for {n_steps} steps")
    out = []
    for j, y in enumerate(labels):
        if y is None or y == -1:
            out.append(IGNORE_LABEL)
        elif 0.0 <= float(y) <= 1.0:
            out.append(float(y))
        else:
            raise ValueError(f"item {_item_id(example)}: labels[{j}] = {y!r}; expected a value in [0, 1] or -1 (ignored)")
    return out


class Formatter:
    """Turns examples (``images``, ``question``, ``steps``, optional ``labels``, ``id``) into model inputs."""

    def __init__(self, *, tokenizer: Any, spec: BackboneSpec, images: ImageHandler,
                 separator: str = DEFAULT_SEPARATOR, max_length: int = 8192, multi_image: str = "canvas",
                 max_columns: int = 3, prompt_style: str = "train") -> None:
        if prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style={prompt_style!r}; choose from {PROMPT_STYLES}")
        if prompt_style == "authors_eval":
            separator = PRM_TOKEN  # their script joins steps by <prm> alone
        if separator.count(PRM_TOKEN) != 1:
            raise ValueError(f"separator {separator!r} must contain {PRM_TOKEN!r} exactly once")
        if multi_image not in MULTI_IMAGE_MODES:
            raise ValueError(f"multi_image={multi_image!r}; choose from {MULTI_IMAGE_MODES}")
        if multi_image == "separate" and not spec.multi_image:
            raise ValueError("this backbone takes one image per item; use multi_image='canvas'")
        if max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        self.tokenizer = tokenizer
        self.spec = spec
        self.images = images
        self.separator = separator
        self.max_length = max_length
        self.multi_image = multi_image
        self.max_columns = max_columns
        self.prompt_style = prompt_style
        self.prm_token_id = int(tokenizer.convert_tokens_to_ids(PRM_TOKEN))
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else tokenizer.eos_token_id)
        pre, post = separator.split(PRM_TOKEN)
        self._sep_pre, self._sep_post = self._ids(pre), self._ids(post)
        self.chat_prefix = layout_prefix(tokenizer, spec, prompt_style=prompt_style)
        bos = bos_ids(tokenizer) if prefix_bos(tokenizer, self.chat_prefix) else []
        self.prefix_ids = bos + self._ids(self.chat_prefix, split=False)
        self._clean = authors_clean_question if prompt_style == "authors_eval" else clean_question

    def _ids(self, text: str, *, split: bool = True) -> list[int]:
        if not text:
            return []
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=split)["input_ids"])

    # ---- images -------------------------------------------------------------------------------
    def _sources(self, example: dict[str, Any], image_root: str | Path | None) -> list[Path | Image.Image]:
        """Each entry of ``example["images"]`` as a checked file path (under ``image_root``) or an
        in-memory PIL image (an RL trainer hands those over, docs/rl.md)."""
        root = Path(image_root) if image_root is not None else Path(".")
        out: list[Path | Image.Image] = []
        for entry in example.get("images") or []:
            if isinstance(entry, Image.Image):
                out.append(entry)
                continue
            if not isinstance(entry, (str, Path)):
                raise TypeError(f"item {_item_id(example)}: an image must be a PIL image or a path, "
                                f"got {type(entry).__name__}")
            p = root / entry
            if not p.is_file():
                raise FileNotFoundError(f"item {_item_id(example)}: image {p.resolve()} not found (image root "
                                        f"{root.resolve()}: set the image root to the folder the record's paths are "
                                        "relative to)")
            out.append(p)
        return out

    def image_sizes(self, example: dict[str, Any], image_root: str | Path | None = None) -> list[tuple[int, int]]:
        """PIL ``(width, height)`` of every image of ``example["images"]`` (files: headers only)."""
        sizes = []
        for src in self._sources(example, image_root):
            if isinstance(src, Image.Image):
                sizes.append(src.size)
                continue
            with Image.open(src) as im:
                sizes.append(im.size)
        return sizes

    def load_images(self, example: dict[str, Any], image_root: str | Path | None = None) -> list[Image.Image]:
        """The image(s) the model sees, as RGB: one canvas (at most ``max_columns`` per row) or each
        image. A path and the same picture in memory give the same pixels."""
        loaded = []
        for src in self._sources(example, image_root):
            if isinstance(src, Image.Image):
                loaded.append(src.convert("RGB"))
                continue
            with Image.open(src) as im:
                loaded.append(im.convert("RGB"))
        if self.multi_image == "canvas" and len(loaded) > 1:
            return [make_canvas(loaded, self.max_columns)]
        return loaded

    def _model_image_sizes(self, file_sizes: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
        sizes = [(int(w), int(h)) for w, h in file_sizes]
        if self.multi_image == "canvas" and len(sizes) > 1:
            return [canvas_size(sizes, self.max_columns)]
        return sizes

    # ---- stage 1: text ------------------------------------------------------------------------
    def encode_text(self, example: dict[str, Any], *, image_sizes: Sequence[Sequence[int]] | None = None,
                    image_root: str | Path | None = None, max_length: int | None = None) -> dict[str, Any]:
        """Token ids, ``<prm>`` positions and labels of one example (JSON-serialisable).

        ``image_sizes``: PIL ``(width, height)`` of each file of ``example["images"]``, in order
        (:meth:`image_sizes` reads them from the headers); when omitted they are read from
        ``image_root``. Image tokens are expanded here already, so positions are final.
        Truncation to ``max_length`` drops whole trailing steps (``n_steps_cut`` counts them);
        an item whose first step does not fit raises ``ValueError`` naming the item.
        """
        item = _item_id(example)
        steps = example.get("steps")
        if not steps:
            raise ValueError(f"item {item}: no steps")
        limit = self.max_length if max_length is None else max_length
        n_files = len(example.get("images") or [])
        if image_sizes is None:
            image_sizes = self.image_sizes(example, image_root) if n_files else []
        if len(image_sizes) != n_files:
            raise ValueError(f"item {item}: {len(image_sizes)} image sizes for {n_files} images")
        sizes = self._model_image_sizes(image_sizes)
        counts = [self.images.num_tokens(w, h) for w, h in sizes]

        ids = list(self.prefix_ids)
        for w, h in sizes:
            ids += placeholder_for(self.images, w, h) + self._ids("\n")
        ids += self._ids(f"Question: {self._clean(str(example.get('question', '')))}\nProcess: ")
        texts = [str(s).strip() for s in steps]
        step_ids = self.tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        labels = _step_labels(example, len(steps))

        positions: list[int] = []
        kept = 0
        for j, sid in enumerate(step_ids):
            piece = (self._sep_post if j else []) + list(sid) + self._sep_pre
            if len(ids) + len(piece) + 1 > limit:
                break
            ids += piece
            positions.append(len(ids))
            ids.append(self.prm_token_id)
            kept += 1
        if kept == 0:
            need = len(ids) + len(step_ids[0]) + len(self._sep_pre) + 1
            raise ValueError(f"item {item}: the prompt and its first step take {need} tokens, more than max_length {limit}")
        return {
            "id": item,
            "input_ids": ids,
            "prm_positions": positions,
            "labels": labels[:kept],
            "n_steps": kept,
            "n_steps_cut": len(steps) - kept,
            "image_sizes": [list(s) for s in sizes],
            "image_token_counts": counts,
        }

    # ---- stage 2: pixels ----------------------------------------------------------------------
    def attach_images(self, encoded: dict[str, Any], images: Sequence[Image.Image]) -> dict[str, Any]:
        """Add pixel inputs for ``images`` (as :meth:`load_images` returns them) to an encoded item.

        Checks that every image takes exactly the number of tokens ``encode_text`` reserved for it.
        """
        expected = list(encoded.get("image_token_counts", []))
        if len(images) != len(expected):
            raise ValueError(f"item {encoded.get('id')}: {len(images)} images for {len(expected)} image placeholders "
                             f"(multi_image={self.multi_image!r})")
        out = dict(encoded)
        if not images:
            return out
        pixels, counts = self.images.process(images)
        if counts != expected:
            raise ValueError(f"item {encoded.get('id')}: images take {counts} tokens but the text reserved {expected}; "
                             f"image sizes given to encode_text {encoded.get('image_sizes')} differ from "
                             f"{[list(im.size) for im in images]}")
        out.update(pixels)
        return out

    def encode(self, example: dict[str, Any], image_root: str | Path | None = None) -> dict[str, Any]:
        """Both stages at once (the scoring path)."""
        if not example.get("images"):
            return self.attach_images(self.encode_text(example, image_sizes=[]), [])
        sizes = self.image_sizes(example, image_root)
        return self.attach_images(self.encode_text(example, image_sizes=sizes), self.load_images(example, image_root))

    # ---- batching -----------------------------------------------------------------------------
    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Right-padded batch; one entry of ``prm_*`` per ``<prm>`` position in batch order."""
        if not items:
            raise ValueError("collate needs at least one item")
        width = max(len(it["input_ids"]) for it in items)
        input_ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(items), width), dtype=torch.long)
        rows, cols, labels, counts = [], [], [], []
        for b, it in enumerate(items):
            n = len(it["input_ids"])
            input_ids[b, :n] = torch.tensor(it["input_ids"], dtype=torch.long)
            attention[b, :n] = 1
            rows += [b] * len(it["prm_positions"])
            cols += list(it["prm_positions"])
            labels += [float(y) for y in it["labels"]]
            counts.append(len(it["prm_positions"]))
            if it.get("image_token_counts") and "pixel_values" not in it:
                raise ValueError(f"item {it.get('id')}: has image placeholders but no pixels; call attach_images first")
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "prm_batch_index": torch.tensor(rows, dtype=torch.long),
            "prm_positions": torch.tensor(cols, dtype=torch.long),
            "prm_labels": torch.tensor(labels, dtype=torch.float32),
            "prm_counts": torch.tensor(counts, dtype=torch.long),
        }
        with_pixels = [it for it in items if "pixel_values" in it]
        if with_pixels:
            batch.update(self.images.concat(with_pixels))
        for key in TOKEN_TYPE_KEYS:  # image tokens 1, text 0 (Qwen's mrope, Gemma 3's image attention)
            if key in self.spec.forward_keys:
                batch[key] = (input_ids == self.images.image_token_id).to(torch.int32) * attention.int()
        return batch
