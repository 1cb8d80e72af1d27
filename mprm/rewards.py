"""A trained step reward model as a process reward for RL and test-time scaling (docs/rl.md).

:class:`StepReward` is a plain callable object with the signature TRL's ``GRPOTrainer`` uses for
custom reward functions, ``reward(prompts=..., completions=..., completion_ids=..., **columns)``,
returning one float (or ``None``) per completion. It is deliberately not an ``nn.Module``: TRL
treats a module in ``reward_funcs`` as a sequence classifier, which a step reward model is not.

Per call it reads each sample's question and picture(s) from the dataset columns (or from the
conversational prompt), splits each completion into steps, scores all steps of ``batch_size``
completions in one forward pass (:func:`mprm.models.score_batch`) and aggregates each
completion's step scores with the same code as ``eval.py --bon`` (:mod:`mprm.eval.aggregate`).

Also here, for the policy side of an RL run on a vision-language policy:
:func:`image_only_processor`, a Qwen2.5-VL processor that skips the video processor,
whose import needs torchvision (which cannot be installed on CPU machines, ENVIRONMENT.md).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from mprm.eval.aggregate import AGGREGATES, aggregate_steps, check_aggregate

#: ChatML with Qwen-VL image markers; used for a policy whose checkpoint carries no chat template
#: (the tiny test policies). Real Qwen2-VL / Qwen2.5-VL checkpoints ship their own.
CHATML_VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
#: Keyword arguments TRL adds to every reward call; they are not dataset columns.
TRL_EXTRAS = ("trainer_state", "log_extra", "log_metric", "environments")


@dataclass
class ScoredCompletion:
    """One completion as the reward saw it: ``reward`` is ``None`` when it had no step (or none
    fitted the reward model's token limit); ``n_cut`` steps were dropped by that limit (their
    ``step_scores`` are ``nan``)."""

    question: str
    images: list[Any]
    steps: list[str]
    step_scores: list[float]
    reward: float | None
    n_cut: int = 0


def split_steps(text: str, split: str | Callable[[str], list[str]] = "\n\n") -> list[str]:
    """The non-empty, stripped steps of ``text``: split on the separator ``split`` (a blank line by
    default, the step separator of VisualPRM400K) or by calling ``split(text)``."""
    parts = split(text) if callable(split) else text.split(split)
    return [s.strip() for s in parts if isinstance(s, str) and s.strip()]


def _text_of(content: Any) -> str:
    """The text of a chat message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def completion_text(completion: Any) -> str:
    """A completion as text: a string as is; a conversational one (a list of messages) as the
    text of its assistant messages, joined by blank lines."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "\n\n".join(_text_of(m.get("content")) for m in completion
                           if isinstance(m, dict) and m.get("role", "assistant") == "assistant")
    raise TypeError(f"a completion must be a string or a list of chat messages, got {type(completion).__name__}")


def prompt_question(prompt: Any) -> str:
    """The question in a prompt: the text of its last user message (conversational) or the string."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return _text_of(users[-1].get("content")) if users else ""
    raise TypeError(f"a prompt must be a string or a list of chat messages, got {type(prompt).__name__}")


def prompt_images(prompt: Any) -> list[Any]:
    """Images inside a conversational prompt (``{"type": "image", "image": ...}`` parts, as TRL
    writes them for vision-language policies), in order."""
    if not isinstance(prompt, list):
        return []
    found = []
    for m in prompt:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            found += [p["image"] for p in content
                      if isinstance(p, dict) and p.get("type") == "image" and p.get("image") is not None]
    return found


def _as_images(value: Any, column: str, index: int) -> list[Any]:
    """A dataset cell as a list of PIL images or paths (``None`` -> no image)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    out: list[Any] = []
    for v in values:
        if v is None:
            continue
        if isinstance(v, dict) and (v.get("bytes") or v.get("path")):  # datasets Image(decode=False)
            v = Image.open(io.BytesIO(v["bytes"])) if v.get("bytes") else v["path"]
        if not isinstance(v, (Image.Image, str, Path)):
            raise TypeError(f"column {column!r}, sample {index}: expected PIL images or paths, got {type(v).__name__}")
        out.append(v)
    return out


def _load_whole(directory: str | Path, dtype: Any) -> Any:
    """Load a saved reward model unpartitioned, even where a ZeRO-3 config is active.

    Once a training script has built its ZeRO-3 arguments, ``from_pretrained`` partitions every
    model it loads; the reward model is no DeepSpeed engine's and must stay whole in each process,
    so the config is set aside while it loads.
    """
    from mprm.models import load_reward_model
    from mprm.train.strategy import whole_model_loading

    with whole_model_loading():
        return load_reward_model(directory, dtype=dtype)


def _default_device() -> Any:
    """This process's accelerator: ``cuda:LOCAL_RANK`` under ``accelerate launch`` / torchrun, so
    each process keeps its reward model beside its own policy replica; else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    return torch.device("cpu")


class StepReward:
    """A step reward model as a TRL reward function: one aggregated process reward per completion.

    ``model_or_dir``: a loaded :class:`~mprm.models.StepRewardModel` or the folder
    ``save_pretrained`` wrote (loaded with ``dtype`` and put on ``device``; ``device=None`` means
    ``cuda:LOCAL_RANK`` when CUDA is there, else the CPU; a model passed in stays where it is
    unless ``device`` or ``dtype`` is given). ``aggregate``: ``min`` (default), ``mean``, ``last``
    or ``prod`` (:mod:`mprm.eval.aggregate` says what each rewards). ``split``: the step
    separator, or a function from a completion's text to its steps. ``batch_size``: completions
    per forward pass. ``image_column``: the dataset column with each sample's picture(s) (PIL
    images or paths under ``image_root``); ``None`` takes ``images``, else ``image``, else the
    image parts of the conversational prompt. ``question_column``: the column with the question;
    when the dataset lacks it the text of the prompt's last user message is used.
    """

    def __init__(self, model_or_dir: Any, *, aggregate: str = "min", split: str | Callable[[str], list[str]] = "\n\n",
                 batch_size: int = 8, device: Any = None, dtype: Any = None, image_column: str | None = None,
                 question_column: str | None = "question", image_root: str | Path | None = None) -> None:
        check_aggregate(aggregate)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if isinstance(split, str) and not split:
            raise ValueError("split must be a non-empty separator or a function returning the steps")
        if isinstance(model_or_dir, (str, Path)):
            model = _load_whole(model_or_dir, dtype).to(device or _default_device())
        elif hasattr(model_or_dir, "formatter") and hasattr(model_or_dir, "parameters"):
            model = model_or_dir
            if device is not None:
                model = model.to(device)
            if dtype is not None:
                import torch

                model = model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        else:
            raise TypeError(f"model_or_dir must be a StepRewardModel or the folder of a saved one, "
                            f"got {type(model_or_dir).__name__}")
        self.model = model.eval()
        self.aggregate = aggregate
        self.split = split
        self.batch_size = batch_size
        self.image_column = image_column
        self.question_column = question_column
        self.image_root = image_root
        #: TRL names the reward's metrics after this (``rewards/step_reward_min/mean``).
        self.__name__ = f"step_reward_{aggregate}"
        #: What the last call saw and returned, one entry per completion.
        self.last: list[ScoredCompletion] = []

    def __repr__(self) -> str:
        return (f"StepReward(aggregate={self.aggregate!r}, backbone={self.model.backbone_name!r}, "
                f"device={self.device}, batch_size={self.batch_size})")

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    # ---- inputs -----------------------------------------------------------------------------
    def _image_column(self, columns: dict[str, Any]) -> str | None:
        if self.image_column is not None:
            if self.image_column not in columns:
                raise ValueError(f"StepReward(image_column={self.image_column!r}): the dataset has no such column; "
                                 f"columns passed: {sorted(columns)}. Pass image_column=None to take 'images', "
                                 f"'image' or the prompt's image parts")
            return self.image_column
        return next((c for c in ("images", "image") if c in columns), None)

    def _column(self, columns: dict[str, Any], name: str, n: int) -> list[Any]:
        values = columns[name]
        if len(values) != n:
            raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
        return list(values)

    def examples(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[dict[str, Any]]:
        """The scoring examples (``id``, ``images``, ``question``, ``steps``) of a reward call."""
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"{len(prompts)} prompts for {n} completions; pass one prompt per completion")
        columns = {k: v for k, v in columns.items() if k not in TRL_EXTRAS}
        image_col = self._image_column(columns)
        images = self._column(columns, image_col, n) if image_col else None
        questions = (self._column(columns, self.question_column, n)
                     if self.question_column and self.question_column in columns else None)
        out = []
        for i in range(n):
            pics = _as_images(images[i], image_col, i) if images is not None else prompt_images(prompts[i])
            question = questions[i] if questions is not None and questions[i] is not None else prompt_question(prompts[i])
            out.append({"id": f"completion {i}", "images": pics, "question": str(question),
                        "steps": split_steps(completion_text(completions[i]), self.split)})
        return out

    # ---- scoring ----------------------------------------------------------------------------
    def score_completions(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[ScoredCompletion]:
        """Every completion's steps, step scores and aggregated reward (what ``__call__`` returns,
        with the detail). Completions without a step are not scored."""
        from mprm.models.scoring import score_batch

        examples = self.examples(prompts, completions, **columns)
        todo = [ex for ex in examples if ex["steps"]]
        scores = iter(score_batch(self.model, todo, image_root=self.image_root, batch_size=self.batch_size,
                                  too_long="nan") if todo else [])
        result = []
        for ex in examples:
            step_scores = next(scores) if ex["steps"] else []
            agg = aggregate_steps(step_scores, self.aggregate)
            result.append(ScoredCompletion(question=ex["question"], images=ex["images"], steps=ex["steps"],
                                           step_scores=step_scores, reward=agg.value, n_cut=agg.n_cut))
        return result

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Any = None,
                 **columns: Any) -> list[float | None]:
        """One reward per completion (``None``: no scorable step; TRL then gives it advantage 0).

        Under TRL the per-step scores go to the completions table (``log_extra`` column
        ``step_scores``) and the counts to the logged metrics (``log_metric``: ``mprm/steps``, mean
        steps per completion; ``mprm/steps_cut``, steps dropped by the token limit in the call;
        ``mprm/no_reward``, fraction of completions without a reward); ``self.last`` keeps them.
        """
        log_extra, log_metric = columns.get("log_extra"), columns.get("log_metric")
        self.last = self.score_completions(prompts, completions, **columns)
        if callable(log_extra):
            log_extra("step_scores", [" ".join(f"{x:.3f}" for x in s.step_scores) for s in self.last])
        if callable(log_metric) and self.last:
            n = len(self.last)
            log_metric("mprm/steps", sum(len(s.steps) for s in self.last) / n)
            log_metric("mprm/steps_cut", float(sum(s.n_cut for s in self.last)))
            log_metric("mprm/no_reward", sum(s.reward is None for s in self.last) / n)
        return [s.reward for s in self.last]

    def last_step_scores(self) -> list[list[float]]:
        """The per-step scores of every completion of the last call (``nan``: cut by the token limit)."""
        return [list(s.step_scores) for s in self.last]


def image_only_processor(policy_dir: str | Path, *, chat_template: str | None = None) -> Any:
    """A Qwen2.5-VL processor for an RL policy, without the video processor.

    ``AutoProcessor`` insists on the video processor, whose import needs torchvision; this
    processor has only the tokenizer and the torch-free (PIL) image processor, which is all an
    image-question policy needs (``GRPOTrainer(processing_class=...)``). ``chat_template``:
    the checkpoint's own when it has one, else :data:`CHATML_VL_TEMPLATE`.
    """
    from transformers import AutoTokenizer, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    class ImageOnlyQwenVLProcessor(Qwen2_5_VLProcessor):
        """Sub-processors: image processor and tokenizer only (``get_attributes`` reads ``__init__``)."""

        def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None,
                     **kwargs: Any) -> None:
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                             chat_template=chat_template, **kwargs)

    path = Path(policy_dir)
    if not (path / "preprocessor_config.json").is_file():
        raise FileNotFoundError(f"{path / 'preprocessor_config.json'}: not found; {path} is not a Qwen-VL checkpoint "
                                f"folder (image_only_processor needs its image processor settings)")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    template = chat_template or tokenizer.chat_template or _saved_chat_template(path) or CHATML_VL_TEMPLATE
    return ImageOnlyQwenVLProcessor(image_processor=Qwen2VLImageProcessorPil.from_pretrained(str(path)),
                                    tokenizer=tokenizer, chat_template=template)


def _saved_chat_template(path: Path) -> str | None:
    """The chat template a processor saved beside the checkpoint (``chat_template.jinja``/``.json``)."""
    import json

    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text(encoding="utf-8")
    if (path / "chat_template.json").is_file():
        return json.loads((path / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
    return None


__all__ = ["AGGREGATES", "CHATML_VL_TEMPLATE", "ScoredCompletion", "StepReward", "completion_text",
           "image_only_processor", "prompt_images", "prompt_question", "split_steps"]
