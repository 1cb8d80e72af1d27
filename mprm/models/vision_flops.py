"""What the FLOPs formula (:func:`mprm.train.shapes.vision_forward_flops`) needs to know about a
family's vision tower: a backbone's ``BackboneSpec.vision_flops`` entry, set by the zoo families
that have one (Qwen2.5-VL, InternVL). A family without it has no vision FLOPs formula (the plan
says so; its memory plan does not need one).

A tower of ``layers`` transformer blocks (4 h^2 attention weights and ``mlp_matrices`` h x I MLP
weights each) reads ``patch_in`` values per patch and hands ``merge`` patches per LM token to a
two-matmul projector ``proj_in -> projector_mid -> proj_out``. What differs by family is how an
image becomes patches, tower tokens and attention context (:attr:`VisionFlops.image`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VisionDims:
    """The tower's numbers. ``family``: the registered backbone whose ``vision_flops`` formula
    applies (qwen2_5_vl: patch merger, windowed attention; internvl: tiles, pixel shuffle)."""

    family: str
    hidden: int
    layers: int
    intermediate: int
    mlp_matrices: int  # 3 (SwiGLU) or 2 (GELU MLP)
    patch_in: int  # values per patch: channels x temporal x patch x patch
    merge: int  # patches per LM token
    proj_in: int
    proj_out: int
    window: int = 0  # Qwen: window side in LM tokens; 0 = none
    full_layers: tuple[int, ...] = ()
    tile_tokens: int = 0  # InternVL: tokens per tile (patches + class token)


@dataclass(frozen=True)
class ImageCost:
    """One image in the tower: its patches, the tokens every layer sees, and the sum over layers of
    the squared attention context (query-key pairs over all layers)."""

    patches: int
    tokens: int
    pairs: float


@dataclass(frozen=True)
class VisionFlops:
    """A family's vision-tower cost model.

    ``dims(hf_config)``: the :class:`VisionDims` of a transformers config; ``image(dims, shape)``:
    the :class:`ImageCost` of one image, ``shape`` as ``batch_images`` gives it; ``projector_mid(dims)``:
    the width between the projector's two matmuls; ``batch_images(batch)``: the image shapes of a
    collated batch (Qwen ``(t, h, w)`` patch grids, InternVL ``(tiles,)``).
    """

    dims: Callable[[Any], VisionDims]
    image: Callable[[VisionDims, tuple[int, ...]], ImageCost]
    projector_mid: Callable[[VisionDims], int]
    batch_images: Callable[[dict[str, Any]], list[tuple[int, ...]]]
