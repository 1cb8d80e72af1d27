"""BIS and the baselines (METHOD.md 3-4): numbers computed by hand."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mprm.data.selection import ScoreTable, bis_score, keep_count, select


def test_bis_worked_example():
    # METHOD.md 3: n = 10, positives 0.875, 0.875, 0.9375, 0.875 -> R = 0.890625, BIS = 0.29 * R.
    scores = [0.875, 0.0, 0.875, 0.0, 0.9375, 0.0, 0.875, 0.0, 0.0, 0.0]
    assert bis_score(scores, 0.05) == pytest.approx(0.25828125, abs=1e-15)
    assert ScoreTable.from_scores([scores]).reliability()[0] == 0.890625


def test_bis_low_mc_positives_and_edges():
    # one positive of three, MC 1/16: (2/9 + 0.05) * 1/16 = 0.0170138...
    assert bis_score([1 / 16, 0.0, 0.0], 0.05) == pytest.approx((2 / 9 + 0.05) / 16)
    assert bis_score([1 / 16, 0.0, 0.0], 0.05) == pytest.approx(0.017, abs=5e-4)
    assert bis_score([0.0, 0.0], 0.05) == pytest.approx(0.05)  # all negative: R = 1
    assert bis_score([1.0, 1.0, 1.0], 0.2) == pytest.approx(0.2)  # all positive: p(1-p) = 0
    assert bis_score([0.5, 0.0], 0.0) == pytest.approx(0.25 * 0.5)


def test_vectorised_bis_is_bitwise_equal_to_reference():
    rng = random.Random(0)
    rollouts = [[rng.choice([0.0, 0.0, rng.randint(1, 16) / 16, rng.random()]) for _ in range(rng.randint(1, 12))]
                for _ in range(2000)]
    table = ScoreTable.from_scores(rollouts)
    for alpha in (0.05, 0.2):
        fast = table.bis(alpha)
        assert [float(x) for x in fast] == [bis_score(r, alpha) for r in rollouts]


@pytest.mark.parametrize("m,fraction,k", [(30, 0.1, 3), (100, 0.29, 29), (10, 0.7, 7), (3, 0.1, 1),
                                          (1, 0.05, 1), (0, 0.5, 0), (7, 1.0, 7), (40, 0.35, 14), (57, 0.15, 8)])
def test_keep_count_is_exact(m, fraction, k):
    assert keep_count(m, fraction) == k


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_keep_count_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError):
        keep_count(10, fraction)


def test_ties_keep_file_order_and_k_per_source():
    a = [[1.0, 0.0]] * 5  # all tie at (0.25 + 0.05) * 1.0 = 0.3
    b = [[1.0, 1.0], [0.5, 0.0], [1.0, 0.0], [0.5, 0.0]]  # 0.05, 0.15, 0.3, 0.15
    chosen, scores = select({"b": b, "a": a}, strategy="bis", fraction=0.5, alpha=0.05)
    assert chosen == {"a": [0, 1], "b": [1, 2]}  # k = 2 each; b's tie at 0.15 keeps index 1 (file order)
    assert scores["b"] == pytest.approx([0.05, 0.15, 0.3, 0.15])


def test_global_ranks_all_sources_together():
    a = [[1.0, 1.0]] * 4  # 0.05
    b = [[1.0, 0.0]] * 4  # 0.3
    chosen, _ = select({"a": a, "b": b}, strategy="bis", fraction=0.25, per_source=False)
    assert chosen == {"a": [], "b": [0, 1]}  # k = floor(8 * 0.25) = 2, both from b
    chosen, _ = select({"a": a, "b": b}, strategy="bis", fraction=0.25)
    assert chosen == {"a": [0], "b": [0]}


CORPUS = [
    [1.0, 1.0, 1.0],      # 0 mean .1   R 1      not mixed
    [0.0, 0.0],           # 1 mean 0    R 1      not mixed (all negative)
    [0.9375, 0.0],        # 2 mean .47  R .9375  mixed
    [0.25, 0.0, 0.0],     # 3 mean .083 R .25    mixed
    [0.5, 0.5],           # 4 mean .5   R .5     not mixed
    [1.0, 0.0, 0.0, 0.0], # 5 mean .25  R 1      mixed
    [0.75, 0.75],         # 6 mean .75  R .75    not mixed
    [0.125, 0.125],       # 7 mean .125 R .125   not mixed
]


def test_low_mc_keeps_lowest_mean_step_mc():
    chosen, scores = select({"s": CORPUS}, strategy="low_mc", fraction=0.375)  # k = 3
    assert chosen["s"] == [1, 3, 7]  # means 0, 0.0833, 0.125
    assert scores["s"][2] == pytest.approx(0.46875)


def test_reliable_keeps_top_r_with_file_order_ties():
    chosen, _ = select({"s": CORPUS}, strategy="reliable", fraction=0.375)  # R = 1 for 0, 1, 5
    assert chosen["s"] == [0, 1, 5]
    chosen, _ = select({"s": CORPUS}, strategy="reliable", fraction=0.5)  # then 0.9375 (2)
    assert chosen["s"] == [0, 1, 2, 5]


def test_bis_on_the_corpus():
    # BIS: 0 .05, 1 .05, 2 .3*.9375=.28125, 3 (2/9+.05)*.25, 4 .025, 5 (.1875+.05)*1=.2375, 6 .0375, 7 .00625
    chosen, _ = select({"s": CORPUS}, strategy="bis", fraction=0.375)
    assert chosen["s"] == [2, 3, 5]


def test_mixed_first_then_random_fill():
    chosen, _ = select({"s": CORPUS}, strategy="mixed", fraction=0.5, seed=3)  # k = 4, mixed = 2, 3, 5
    assert {2, 3, 5} <= set(chosen["s"]) and len(chosen["s"]) == 4
    again, _ = select({"s": CORPUS}, strategy="mixed", fraction=0.5, seed=3)
    assert again == chosen
    few, _ = select({"s": CORPUS}, strategy="mixed", fraction=0.25)  # k = 2 < 3 mixed: only mixed ones
    assert set(few["s"]) < {2, 3, 5} and len(few["s"]) == 2
    fills = {tuple(select({"s": CORPUS}, strategy="mixed", fraction=0.5, seed=s)[0]["s"]) for s in range(20)}
    assert len(fills) > 1  # the fill is random across seeds


def test_random_is_uniform_seeded_and_per_source():
    big = {"a": [[1.0]] * 100, "b": [[0.5, 0.0]] * 50}
    one, _ = select(big, strategy="random", fraction=0.1, seed=7)
    assert len(one["a"]) == 10 and len(one["b"]) == 5 and one["a"] == sorted(one["a"])
    assert select(big, strategy="random", fraction=0.1, seed=7)[0] == one
    assert select(big, strategy="random", fraction=0.1, seed=8)[0] != one
    # a source's draw does not depend on the other sources
    assert select({"a": big["a"]}, strategy="random", fraction=0.1, seed=7)[0]["a"] == one["a"]
    counts = np.zeros(100)
    for seed in range(400):
        counts[select({"a": big["a"]}, strategy="random", fraction=0.1, seed=seed)[0]["a"]] += 1
    assert counts.min() > 15 and counts.max() < 70  # expected 40 each


def test_full_keeps_everything():
    chosen, _ = select({"s": CORPUS}, strategy="full")
    assert chosen["s"] == list(range(8))
