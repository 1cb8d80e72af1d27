"""The one aggregation path: rules on hand-computed numbers, cut steps, and Best-of-N using it."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from mprm.eval import bon
from mprm.eval.aggregate import AGGREGATES, aggregate, aggregate_steps


STEPS = [0.9, 0.2, 0.8, 0.5]


@pytest.mark.parametrize("how, expected", [("min", 0.2), ("mean", 0.6), ("last", 0.5), ("prod", 0.9 * 0.2 * 0.8 * 0.5)])
def test_rules_hand_computed(how, expected):
    assert aggregate(STEPS, how) == pytest.approx(expected)


def test_cut_steps_are_left_out_and_counted():
    agg = aggregate_steps([0.5, 0.25, math.nan, math.nan], "mean")
    assert (agg.value, agg.n_scored, agg.n_cut) == (pytest.approx(0.375), 2, 2)
    assert aggregate_steps([0.5, 0.25, math.nan], "last").value == 0.25
    assert aggregate_steps([math.nan, math.nan], "min") == aggregate_steps([], "min").__class__(None, 0, 2)
    assert aggregate([], "prod") is None


def test_unknown_rule_names_the_choices():
    with pytest.raises(ValueError, match="aggregate must be one of min, mean, last, prod, got 'max'"):
        aggregate([0.5], "max")


def test_best_of_n_uses_the_shared_rules():
    assert bon.AGGREGATES is AGGREGATES
    scores = [[0.9, 0.5], [0.6, 0.7], [0.95, 0.2]]
    for how in AGGREGATES:
        chosen, agg = bon.pick(scores, how)
        assert agg == [aggregate(s, how) for s in scores]
        assert chosen == max(range(3), key=lambda i: (agg[i], -i))
    assert bon.pick(scores, "prod")[0] == 0  # 0.45, 0.42, 0.19
    assert bon.pick(scores, "min")[0] == 1  # 0.5, 0.6, 0.2
    assert bon.pick([[math.nan], [0.1]], "mean") == (1, [None, 0.1])  # a candidate with no score never wins


def test_no_torch_import():
    code = "import sys, mprm.eval.aggregate, mprm.eval.bon, mprm.rewards; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
