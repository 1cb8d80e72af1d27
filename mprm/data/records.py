"""The benchmark record (METHOD.md 7).

:class:`BenchItem`: one VisualProcessBench item with human labels in mprm's internal coding,
1 correct / 0 incorrect / -1 neutral (``mprm.data.labels``). A training example is a plain dict,
one ``selected.jsonl`` row (``mprm.data.validation.training_dict``, docs/data_formats.md). Both
expose ``images``, ``question`` and ``steps`` under the same names, so the one formatting function
of ``mprm.models.prompting`` serves training and scoring alike (METHOD.md 10.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BenchItem:
    """One VisualProcessBench item (METHOD.md 7). ``labels``: 1 correct, 0 incorrect, -1 neutral.
    ``id``: the record's own id, None when it has none."""

    id: str | None
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
