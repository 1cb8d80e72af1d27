"""Typed records shared by every part of mprm (METHOD.md 9 and 7).

Two record kinds flow through the project:

* :class:`Rollout`: one MC-annotated rollout of the training corpus (VisualPRM400K-v1.1-Raw).
  Its training form (``to_training_dict``) is what ``selected.jsonl`` holds and what the trainer
  reads: per-step ``labels`` are float targets in [0, 1] (hard 0/1, or soft = the MC score).
* :class:`BenchItem`: one VisualProcessBench item with human labels 1 / 0 / -1 (neutral).

Both expose ``images``, ``question`` and ``steps`` under the same names, so the one formatting
function of ``mprm.models.prompting`` serves training and scoring alike (METHOD.md 10.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    """One solution step and its Monte Carlo annotation.

    ``score`` is s_j = K_j / N. ``num_mc_total == 0`` marks a step the generator never rolled out
    (it stopped after a zero-score step): its 0.0 is unannotated, not a measured negative.
    """

    text: str
    score: float
    num_mc_correct: int | None = None
    num_mc_total: int | None = None

    @property
    def unannotated(self) -> bool:
        return self.num_mc_total == 0


@dataclass
class Rollout:
    """One rollout of the MC-annotated corpus.

    ``id`` is the record's own ``id`` when it has one, else ``"{source}:{line}"``.
    ``question`` prefers ``question_orig`` (the raw question) over the instruction-formatted one.
    ``extra`` keeps every other field of the input line (pass-through: ``response``,
    ``question_zh``, ``analysis``, ...), so nothing the user had is lost.
    """

    id: str
    source: str
    images: list[str]
    question: str
    answer: str
    steps: list[Step]
    extra: dict[str, Any] = field(default_factory=dict)
    file: str = ""
    line: int = 0

    @property
    def mc_scores(self) -> list[float]:
        return [s.score for s in self.steps]

    @property
    def step_texts(self) -> list[str]:
        return [s.text for s in self.steps]

    def labels(self, *, threshold: float = 0.0, soft: bool = False) -> list[float]:
        """Per-step targets (METHOD.md 2): hard y_j = 1[s_j > tau] or soft y_j = s_j."""
        if soft:
            return [float(s.score) for s in self.steps]
        return [1.0 if s.score > threshold else 0.0 for s in self.steps]

    def to_training_dict(self, *, threshold: float = 0.0, soft: bool = False) -> dict[str, Any]:
        """The project's training format (one line of ``selected.jsonl``; docs/data_formats.md)."""
        return {
            "id": self.id,
            "source": self.source,
            "images": list(self.images),
            "question": self.question,
            "answer": self.answer,
            "steps": self.step_texts,
            "mc_scores": self.mc_scores,
            "num_mc_correct": [s.num_mc_correct for s in self.steps],
            "num_mc_total": [s.num_mc_total for s in self.steps],
            "labels": self.labels(threshold=threshold, soft=soft),
            "extra": self.extra,
        }


@dataclass
class BenchItem:
    """One VisualProcessBench item (METHOD.md 7). ``labels``: 1 correct, 0 incorrect, -1 neutral."""

    id: str
    data_source: str
    images: list[str]
    question: str
    answer: str
    steps: list[str]
    labels: list[int]
    policy_model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "data_source": self.data_source,
            "images": list(self.images),
            "question": self.question,
            "answer": self.answer,
            "steps": list(self.steps),
            "labels": list(self.labels),
            "policy_model": self.policy_model,
            "extra": self.extra,
        }
