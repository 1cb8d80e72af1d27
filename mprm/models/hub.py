"""Checkpoint locations: a local folder or a Hugging Face hub id (``Qwen/Qwen2.5-VL-7B-Instruct``).

mprm reads several files of a checkpoint itself (``config.json`` to detect the backbone,
``preprocessor_config.json`` for the image settings, ``mprm_config.json`` and the head of a saved
reward model). A hub id is resolved ONCE, here, to the local snapshot folder that
``huggingface_hub`` keeps (downloading what is missing when online; from the cache alone with
``HF_HUB_OFFLINE=1``), and every reader (and ``from_pretrained``) then reads that folder. So the
files mprm reads and the weights transformers loads come from the same revision.
"""

from __future__ import annotations

import os
from pathlib import Path

from mprm.errors import UserError
from mprm.files import looks_like_hub_id

#: What a reward model or base checkpoint needs; nothing else is downloaded.
CHECKPOINT_PATTERNS = ("*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "*.tiktoken", "adapter/*")


class CheckpointNotFound(UserError):
    """Neither a local folder nor a hub id that can be resolved (names both and the fix)."""


def resolve_checkpoint(path: str | Path, *, revision: str | None = None) -> Path:
    """The local folder of a checkpoint: ``path`` itself, or the hub snapshot of the id ``path``."""
    local = Path(path).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise CheckpointNotFound(f"{local}: is a file; a checkpoint is a folder (config.json, weights, tokenizer) "
                                 "or a hub id such as Qwen/Qwen2.5-VL-7B-Instruct")
    if not looks_like_hub_id(path):
        raise CheckpointNotFound(f"{local}: no such checkpoint folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        return Path(snapshot_download(str(path), revision=revision, allow_patterns=list(CHECKPOINT_PATTERNS),
                                      local_files_only=offline))
    except LocalEntryNotFoundError:
        raise CheckpointNotFound(
            f"{path}: not a local folder, and hub id {path!r} (revision {revision or 'main'}) is not in the "
            "Hugging Face cache" + (" (HF_HUB_OFFLINE=1)" if offline else " and could not be downloaded")
            + ": download it first (huggingface-cli download " + str(path) + ") or pass a folder") from None
    except (RepositoryNotFoundError, HfHubHTTPError) as exc:
        raise CheckpointNotFound(f"{path}: not a local folder, and the hub has no model {path!r} "
                                 f"(revision {revision or 'main'}): {type(exc).__name__}") from None
