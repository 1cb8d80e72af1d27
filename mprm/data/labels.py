"""Step labels: the one labelling rule and every label coding, in one place (no torch).

* Training targets come from MC scores by :func:`mc_targets` (METHOD.md 2): hard ``y = 1[s > tau]``
  (tau = 0, 1/N, 2/N) or soft ``y = s``; :func:`mc_target` is it for one step. Every caller
  (selection outputs and pass-1 counts, records, the trainer's table, the dev split) goes through it.
* A stored target reads back as a step label by :func:`target_label` (``y >= TARGET_CUT``, 0.5).
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


#: Where a stored target (hard 0/1 or soft MC score in [0, 1]) reads as a step label: a target
#: ``y >= TARGET_CUT`` is correct, below it incorrect (:func:`target_label`). Training accuracy
#: and the dev split of a training-format file without MC scores use it.
TARGET_CUT = 0.5


def mc_targets(scores: Iterable[float], *, threshold: float = 0.0, soft: bool = False) -> list[float]:
    """The labelling rule (METHOD.md 2), the one place it is written: the training targets of a
    rollout's steps from their MC scores, hard ``1[s > threshold]`` or, with ``soft``, ``s`` itself.
    (A list at a time: pass 2 of selection labels every written step through it.)"""
    if soft:
        return [float(s) for s in scores]
    return [1.0 if float(s) > threshold else 0.0 for s in scores]


def mc_target(score: float, *, threshold: float = 0.0, soft: bool = False) -> float:
    """The training target of one step with MC score ``score``: :func:`mc_targets` of that step."""
    return mc_targets((score,), threshold=threshold, soft=soft)[0]


def target_label(y: float) -> int:
    """The internal step label of a stored target: :data:`CORRECT` when ``y >= TARGET_CUT``, else
    :data:`INCORRECT`."""
    return CORRECT if float(y) >= TARGET_CUT else INCORRECT


def from_file_coding(labels: Sequence[int]) -> list[int]:
    """Benchmark file labels (1 / -1 / 0) -> internal (1 / 0 / -1). ``KeyError`` on other values."""
    return [_FROM_FILE[int(y)] for y in labels]


def to_file_coding(labels: Sequence[int]) -> list[int]:
    """Internal labels (1 / 0 / -1) -> the benchmark's file coding (1 / -1 / 0)."""
    return [_TO_FILE[int(y)] for y in labels]
