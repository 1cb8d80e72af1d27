"""Step labels: the one labelling rule and every label coding, in one place (no torch).

* Training targets come from MC scores by :func:`mc_targets` (METHOD.md 2): hard ``y = 1[s > tau]``
  (tau = 0, 1/N, 2/N) or soft ``y = s``. Every caller (selection outputs, records, the trainer's
  table, the dev split) goes through it.
* :data:`IGNORE_LABEL` marks a step that carries no target (benchmark neutral, unannotated).
* Benchmark files (VisualProcessBench's ``process_correctness``, and every file mprm writes with
  benchmark step labels, e.g. ``predictions.jsonl``) use the benchmark's coding:
  1 correct, -1 incorrect, 0 neutral (METHOD.md 7). Inside mprm, step labels for metrics are
  1 correct, 0 incorrect, -1 neutral (the same 1/0 as training targets; decisions.md D-DATA-6).
  :func:`from_file_coding` / :func:`to_file_coding` convert at the file boundary only.
"""

from __future__ import annotations

from typing import Iterable, Sequence

#: Target of a step that is not trained on / not scored (the loss masks it out).
IGNORE_LABEL = -100.0

#: Internal step-label coding (metrics, the formatter's integer labels).
CORRECT, INCORRECT, NEUTRAL = 1, 0, -1
VALID_LABELS = (CORRECT, INCORRECT, NEUTRAL)

#: The benchmark's file coding (``process_correctness``): 1 correct, -1 incorrect, 0 neutral.
FILE_CORRECT, FILE_INCORRECT, FILE_NEUTRAL = 1, -1, 0
FILE_LABELS = (FILE_CORRECT, FILE_INCORRECT, FILE_NEUTRAL)
_FROM_FILE = {FILE_CORRECT: CORRECT, FILE_INCORRECT: INCORRECT, FILE_NEUTRAL: NEUTRAL}
_TO_FILE = {v: k for k, v in _FROM_FILE.items()}


def mc_target(score: float, *, threshold: float = 0.0, soft: bool = False) -> float:
    """The training target of one step with MC score ``score`` (METHOD.md 2)."""
    if soft:
        return float(score)
    return 1.0 if float(score) > threshold else 0.0


def mc_targets(scores: Iterable[float], *, threshold: float = 0.0, soft: bool = False) -> list[float]:
    """Targets of a rollout's steps: hard ``1[s > threshold]`` or, with ``soft``, ``s`` itself."""
    if soft:
        return [float(s) for s in scores]
    return [1.0 if float(s) > threshold else 0.0 for s in scores]


def from_file_coding(labels: Sequence[int]) -> list[int]:
    """Benchmark file labels (1 / -1 / 0) -> internal (1 / 0 / -1). ``KeyError`` on other values."""
    return [_FROM_FILE[int(y)] for y in labels]


def to_file_coding(labels: Sequence[int]) -> list[int]:
    """Internal labels (1 / 0 / -1) -> the benchmark's file coding (1 / -1 / 0)."""
    return [_TO_FILE[int(y)] for y in labels]
