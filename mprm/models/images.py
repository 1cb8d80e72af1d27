"""Image-side processing: canvases, token counts and pixel inputs (METHOD.md 6, "Images").

The transformers processors of most families insist on a video processor that imports
torchvision, which cannot be installed on CPU machines (docs/ENVIRONMENT notes). So mprm drives
the torch-free (PIL) image processors directly and builds the image placeholder tokens itself,
one :class:`ImageHandler` per family kind. The shared ones live here:

* :class:`QwenPatchImages` (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): ``smart_resize`` between
  ``min_pixels`` and ``max_pixels`` (paper: 784 and 200704), patches merged 2x2 into one LM token.
* :class:`InternVLTileImages` (InternVL): 448-px tiles, dynamic resolution up to ``max_tiles``
  (paper: 6) plus a thumbnail, ``image_seq_length`` LM tokens per tile.
* :class:`FixedImages` (Gemma 3, LLaVA-1.5): one size for every picture, a fixed token count.

Families with their own geometry keep their handler beside their registry entry
(mprm.models.zoo: LLaVA-OneVision's anyres grid, Idefics3/SmolVLM's squares, Pixtral's rows).
Every handler can count the LM tokens an image will take from its size alone (so the text stage
can truncate before any pixel is decoded) and checks that count again when the pixels are made;
tests/models/test_zoo_processors.py holds each one against its family's transformers processor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image

PREPROCESSOR_FILE = "preprocessor_config.json"
#: Key in ``preprocessor_config.json`` that carries mprm's image settings (tiny models store their
#: small settings here so that ``build_reward_model`` picks them up; real checkpoints lack it and
#: get the paper defaults).
SETTINGS_KEY = "mprm_image_settings"
WHITE = (255, 255, 255)


def canvas_layout(sizes: Sequence[tuple[int, int]], max_columns: int = 3) -> tuple[int, int, int, int]:
    """(columns, rows, cell_width, cell_height) of the canvas for images of PIL ``(width, height)`` sizes."""
    if not sizes:
        raise ValueError("canvas_layout needs at least one image size")
    if max_columns < 1:
        raise ValueError(f"max_columns must be >= 1, got {max_columns}")
    cols = min(max_columns, len(sizes))
    rows = (len(sizes) + cols - 1) // cols
    return cols, rows, max(w for w, _ in sizes), max(h for _, h in sizes)


def canvas_size(sizes: Sequence[tuple[int, int]], max_columns: int = 3) -> tuple[int, int]:
    """PIL ``(width, height)`` of :func:`make_canvas` for the given image sizes, without pixels."""
    if len(sizes) == 1:
        return tuple(sizes[0])  # type: ignore[return-value]
    cols, rows, cw, ch = canvas_layout(sizes, max_columns)
    return cols * cw, rows * ch


def make_canvas(images: Sequence[Image.Image], max_columns: int = 3) -> Image.Image:
    """Tile several images into one canvas, row by row, at most ``max_columns`` per row.

    Each image is centred in a cell as large as the largest image, on white; this is how the
    paper's evaluation feeds multi-image items (METHOD.md 6). One image is returned unchanged.
    """
    if len(images) == 1:
        return images[0].convert("RGB")
    cols, rows, cw, ch = canvas_layout([im.size for im in images], max_columns)
    canvas = Image.new("RGB", (cols * cw, rows * ch), WHITE)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        canvas.paste(im.convert("RGB"), (c * cw + (cw - im.width) // 2, r * ch + (ch - im.height) // 2))
    return canvas


class ImageHandler(Protocol):
    """What the formatter needs from a backbone's image processing."""

    image_token_id: int
    settings: dict[str, Any]

    def num_tokens(self, width: int, height: int) -> int:
        """LM image-context tokens one image of this PIL size takes."""

    def placeholder_ids(self, n_tokens: int) -> list[int]:
        """The token ids that stand for one image with ``n_tokens`` context tokens."""

    def placeholder_for(self, width: int, height: int) -> list[int]:
        """The token ids that stand for one image of this PIL size (what the family's processor
        puts in place of its image marker). Families whose placeholder depends on more than the
        token count (rows of tiles or patches) need it; :func:`placeholder_for` falls back to
        ``placeholder_ids(num_tokens(width, height))``."""

    def process(self, images: Sequence[Image.Image]) -> tuple[dict[str, torch.Tensor], list[int]]:
        """Pixel inputs for ``images`` and the number of context tokens each one takes."""

    def concat(self, parts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Join the pixel inputs of several items into one batch (in item order)."""

    def save(self, directory: Path) -> None:
        """Write ``preprocessor_config.json`` with these settings."""


def placeholder_for(handler: ImageHandler, width: int, height: int) -> list[int]:
    """The placeholder ids of one image of PIL size ``(width, height)`` for any handler."""
    layout = getattr(handler, "placeholder_for", None)
    if layout is not None:
        return list(layout(width, height))
    return list(handler.placeholder_ids(handler.num_tokens(width, height)))


def resolve_settings(explicit: dict[str, Any], saved: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Image settings: an explicit value wins, else the checkpoint's saved ``mprm_image_settings``,
    else the family's default (decisions.md D-MODELS-5). An explicit key the family does not use is
    an error naming the keys it does use."""
    unused = sorted(k for k, v in explicit.items() if v is not None and k not in defaults)
    if unused:
        raise ValueError(f"image setting(s) {unused} do not apply to this backbone; its settings are "
                         f"{sorted(defaults) or 'fixed by its processor'} (docs/models.md, the zoo table)")
    return {k: type(d)(explicit[k] if explicit.get(k) is not None else saved.get(k, d)) for k, d in defaults.items()}


def read_preprocessor_config(directory: Path) -> dict[str, Any]:
    path = Path(directory) / PREPROCESSOR_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no image processor config; is {directory} a model checkpoint?")
    return json.loads(path.read_text())


def _cat_pixels(parts: Sequence[dict[str, torch.Tensor]], keys: Sequence[str]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        tensors = [p[key] for p in parts if key in p]
        if tensors:
            out[key] = torch.cat(tensors, dim=0)
    return out


class QwenPatchImages:
    """Qwen2-VL / Qwen2.5-VL dynamic-resolution patches (``Qwen2VLImageProcessorPil``)."""

    DEFAULTS = {"min_pixels": 784, "max_pixels": 200704}

    def __init__(self, directory: Path, *, image_token_id: int, vision_start_id: int, vision_end_id: int,
                 min_pixels: int | None = None, max_pixels: int | None = None,
                 defaults: dict[str, int] | None = None) -> None:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        cfg = read_preprocessor_config(directory)
        self.settings = resolve_settings({"min_pixels": min_pixels, "max_pixels": max_pixels},
                                         cfg.get(SETTINGS_KEY, {}), defaults or self.DEFAULTS)
        if self.settings["min_pixels"] > self.settings["max_pixels"]:
            raise ValueError(f"min_pixels {self.settings['min_pixels']} > max_pixels {self.settings['max_pixels']}")
        kwargs = {k: cfg[k] for k in ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std") if k in cfg}
        self.processor = Qwen2VLImageProcessorPil(
            min_pixels=self.settings["min_pixels"], max_pixels=self.settings["max_pixels"], **kwargs
        )
        # Plain attributes too: the trainer keys its tokenisation cache on simple attributes.
        self.min_pixels, self.max_pixels = self.settings["min_pixels"], self.settings["max_pixels"]
        self.image_token_id = image_token_id
        self.vision_start_id = vision_start_id
        self.vision_end_id = vision_end_id

    def num_tokens(self, width: int, height: int) -> int:
        return self.processor.get_number_of_image_patches(height, width) // self.processor.merge_size**2

    def placeholder_ids(self, n_tokens: int) -> list[int]:
        return [self.vision_start_id] + [self.image_token_id] * n_tokens + [self.vision_end_id]

    def process(self, images: Sequence[Image.Image]) -> tuple[dict[str, torch.Tensor], list[int]]:
        out = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        grid = out["image_grid_thw"].long()
        counts = (grid.prod(-1) // self.processor.merge_size**2).tolist()
        return {"pixel_values": out["pixel_values"].float(), "image_grid_thw": grid}, counts

    def concat(self, parts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return _cat_pixels(parts, ("pixel_values", "image_grid_thw"))

    def save(self, directory: Path) -> None:
        p = self.processor
        cfg = {
            "image_processor_type": "Qwen2VLImageProcessor",
            "min_pixels": self.settings["min_pixels"], "max_pixels": self.settings["max_pixels"],
            "patch_size": p.patch_size, "temporal_patch_size": p.temporal_patch_size, "merge_size": p.merge_size,
            "image_mean": list(p.image_mean), "image_std": list(p.image_std),
            SETTINGS_KEY: dict(self.settings),
        }
        (Path(directory) / PREPROCESSOR_FILE).write_text(json.dumps(cfg, indent=2) + "\n")


class InternVLTileImages:
    """InternVL dynamic tiling (``GotOcr2ImageProcessorPil`` with ``crop_to_patches``) plus thumbnail."""

    DEFAULTS = {"max_tiles": 6}

    def __init__(self, directory: Path, *, image_token_id: int, start_id: int, end_id: int,
                 tokens_per_tile: int, max_tiles: int | None = None, defaults: dict[str, int] | None = None) -> None:
        from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

        cfg = read_preprocessor_config(directory)
        size = cfg.get("size", {"height": 448, "width": 448})
        self.settings = {**resolve_settings({"max_tiles": max_tiles}, cfg.get(SETTINGS_KEY, {}),
                                            defaults or self.DEFAULTS),
                         "tile_size": int(size["height"])}
        if self.settings["max_tiles"] < 1:
            raise ValueError(f"max_tiles must be >= 1, got {self.settings['max_tiles']}")
        kwargs = {k: cfg[k] for k in ("image_mean", "image_std") if k in cfg}
        self.processor = GotOcr2ImageProcessorPil(
            size={"height": int(size["height"]), "width": int(size["width"])}, crop_to_patches=True,
            min_patches=1, max_patches=self.settings["max_tiles"], **kwargs,
        )
        self.max_tiles, self.tile_size = self.settings["max_tiles"], self.settings["tile_size"]
        self.image_token_id = image_token_id
        self.start_id = start_id
        self.end_id = end_id
        self.tokens_per_tile = tokens_per_tile

    def num_tiles(self, width: int, height: int) -> int:
        return self.processor.get_number_of_image_patches(height, width)

    def num_tokens(self, width: int, height: int) -> int:
        return self.num_tiles(width, height) * self.tokens_per_tile

    def placeholder_ids(self, n_tokens: int) -> list[int]:
        return [self.start_id] + [self.image_token_id] * n_tokens + [self.end_id]

    def process(self, images: Sequence[Image.Image]) -> tuple[dict[str, torch.Tensor], list[int]]:
        out = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        tiles = [int(n) for n in out["num_patches"]]
        pixels = out["pixel_values"]
        pixels = pixels if isinstance(pixels, torch.Tensor) else torch.stack([torch.as_tensor(p) for p in pixels])
        return {"pixel_values": pixels.float()}, [n * self.tokens_per_tile for n in tiles]

    def concat(self, parts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return _cat_pixels(parts, ("pixel_values",))

    def save(self, directory: Path) -> None:
        p = self.processor
        cfg = {
            "image_processor_type": "GotOcr2ImageProcessor",
            "size": {"height": self.settings["tile_size"], "width": self.settings["tile_size"]},
            "crop_to_patches": True, "min_patches": 1, "max_patches": self.settings["max_tiles"],
            "image_mean": list(p.image_mean), "image_std": list(p.image_std),
            SETTINGS_KEY: dict(self.settings),
        }
        (Path(directory) / PREPROCESSOR_FILE).write_text(json.dumps(cfg, indent=2) + "\n")


def config_digest(config: dict[str, Any]) -> str:
    """A short digest of a preprocessor config: handlers keep it as a plain attribute, so the
    trainer's tokenisation cache key (built from plain attributes) changes with any setting."""
    import hashlib

    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pil_processor(cls: type, config: dict[str, Any], **overrides: Any) -> Any:
    """A transformers PIL image processor built from a checkpoint's ``preprocessor_config.json``:
    the keys the class takes (its ``valid_kwargs``), then ``overrides``."""
    keys = set(getattr(cls.valid_kwargs, "__annotations__", {})) - {"return_tensors", "device", "data_format",
                                                                   "input_data_format"}
    return cls(**{**{k: v for k, v in config.items() if k in keys}, **overrides})


class FixedImages:
    """Families that resize every picture to one size and give it a fixed number of image tokens
    (Gemma 3, LLaVA-1.5): the family's PIL image processor (``processor_cls``, built from the
    checkpoint's preprocessor config), ``tokens`` image tokens, and the text the family's processor
    writes around them (``before``/``after``, special tokens included, tokenised with the run)."""

    def __init__(self, directory: Path, *, tokenizer: Any, processor_cls: type, image_token_id: int, tokens: int,
                 before: str = "", after: str = "", **processor_overrides: Any) -> None:
        self.config = read_preprocessor_config(directory)
        self.config_digest = config_digest(self.config)
        self.settings: dict[str, Any] = {}
        self.processor = pil_processor(processor_cls, self.config, **processor_overrides)
        self.image_token_id = image_token_id
        self.tokens = tokens

        def ids(text: str) -> list[int]:
            return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

        self._placeholder = ids(before) + [image_token_id] * tokens + ids(after)

    def num_tokens(self, width: int, height: int) -> int:
        return self.tokens

    def placeholder_ids(self, n_tokens: int) -> list[int]:
        if n_tokens != self.tokens:
            raise ValueError(f"this family's images take {self.tokens} tokens, not {n_tokens}")
        return list(self._placeholder)

    def process(self, images: Sequence[Image.Image]) -> tuple[dict[str, torch.Tensor], list[int]]:
        out = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        return {"pixel_values": out["pixel_values"].float()}, [self.tokens] * len(images)

    def concat(self, parts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return _cat_pixels(parts, ("pixel_values",))

    def save(self, directory: Path) -> None:
        (Path(directory) / PREPROCESSOR_FILE).write_text(
            json.dumps({**self.config, SETTINGS_KEY: dict(self.settings)}, indent=2) + "\n")
