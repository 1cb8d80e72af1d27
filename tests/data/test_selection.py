"""BIS and the baselines (METHOD.md 3-4): numbers computed by hand, on the real path: rollouts
written as corpus files, read by pass 1 (``jsonl.scan_file``), put in one table as ``select_corpus``
does (``pipeline.score_table``) and selected by ``selection.select_table``."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from mprm.data.jsonl import scan_file
from mprm.data.pipeline import score_table
from mprm.data.selection import keep_count, select_table


class Corpus:
    """Each source's rollouts (lists of step MC scores) as ``SOURCE.jsonl`` under a folder, scanned."""

    def __init__(self, folder, tools, by_source):
        folder.mkdir(parents=True, exist_ok=True)
        self.scans = [scan_file(tools.write_jsonl(folder / f"{name}.jsonl", [tools.rollout(r) for r in rollouts]),
                                source=name) for name, rollouts in sorted(by_source.items())]
        self.table, self.group_ids, _ = score_table(self.scans)

    def select(self, **settings):
        """(per source: chosen indices, ascending; per source: every rollout's ranking score)."""
        result = select_table(self.table, self.group_ids, [s.source for s in self.scans], **settings)
        picked = set(result.chosen.tolist())
        chosen, scores, start = {}, {}, 0
        for scan in self.scans:
            chosen[scan.source] = [i - start for i in range(start, start + len(scan)) if i in picked]
            scores[scan.source] = result.scores[start : start + len(scan)].tolist()
            start += len(scan)
        return chosen, scores


def reference_bis(scores, alpha):
    """METHOD.md 3 written out: p = n_pos / n, R = exact mean of the positives (1 without any)."""
    positives = [s for s in scores if s > 0]
    p = len(positives) / len(scores)
    return (p * (1 - p) + alpha) * (math.fsum(positives) / len(positives) if positives else 1.0)


def test_bis_worked_example(tmp_path, tools):
    # METHOD.md 3: n = 10, positives 0.875, 0.875, 0.9375, 0.875 -> R = 0.890625, BIS = 0.29 * R.
    scores = [0.875, 0.0, 0.875, 0.0, 0.9375, 0.0, 0.875, 0.0, 0.0, 0.0]
    table = Corpus(tmp_path, tools, {"s": [scores]}).table
    assert table.bis(0.05)[0] == pytest.approx(0.25828125, abs=1e-15)
    assert table.reliability()[0] == 0.890625


def test_bis_low_mc_positives_and_edges(tmp_path, tools):
    table = Corpus(tmp_path, tools, {"s": [[1 / 16, 0.0, 0.0], [0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.0]]}).table
    # one positive of three, MC 1/16: (2/9 + 0.05) * 1/16 = 0.0170138...
    assert table.bis(0.05)[0] == pytest.approx((2 / 9 + 0.05) / 16)
    assert table.bis(0.05)[0] == pytest.approx(0.017, abs=5e-4)
    assert table.bis(0.05)[1] == pytest.approx(0.05)  # all negative: R = 1
    assert table.bis(0.2)[2] == pytest.approx(0.2)  # all positive: p(1-p) = 0
    assert table.bis(0.0)[3] == pytest.approx(0.25 * 0.5)


def test_vectorised_bis_is_bitwise_equal_to_reference(tmp_path, tools):
    rng = random.Random(0)
    rollouts = [[rng.choice([0.0, 0.0, rng.randint(1, 16) / 16, rng.random()]) for _ in range(rng.randint(1, 12))]
                for _ in range(2000)]
    table = Corpus(tmp_path, tools, {"s": rollouts}).table
    for alpha in (0.05, 0.2):
        fast = table.bis(alpha)
        assert [float(x) for x in fast] == [reference_bis(r, alpha) for r in rollouts]


@pytest.mark.parametrize("m,fraction,k", [(30, 0.1, 3), (100, 0.29, 29), (10, 0.7, 7), (3, 0.1, 1),
                                          (1, 0.05, 1), (0, 0.5, 0), (7, 1.0, 7), (40, 0.35, 14), (57, 0.15, 8)])
def test_keep_count_is_exact(m, fraction, k):
    assert keep_count(m, fraction) == k


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_keep_count_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError):
        keep_count(10, fraction)


def test_ties_keep_file_order_and_k_per_source(tmp_path, tools):
    a = [[1.0, 0.0]] * 5  # all tie at (0.25 + 0.05) * 1.0 = 0.3
    b = [[1.0, 1.0], [0.5, 0.0], [1.0, 0.0], [0.5, 0.0]]  # 0.05, 0.15, 0.3, 0.15
    chosen, scores = Corpus(tmp_path, tools, {"b": b, "a": a}).select(strategy="bis", fraction=0.5, alpha=0.05)
    assert chosen == {"a": [0, 1], "b": [1, 2]}  # k = 2 each; b's tie at 0.15 keeps index 1 (file order)
    assert scores["b"] == pytest.approx([0.05, 0.15, 0.3, 0.15])


def test_global_ranks_all_sources_together(tmp_path, tools):
    a = [[1.0, 1.0]] * 4  # 0.05
    b = [[1.0, 0.0]] * 4  # 0.3
    corpus = Corpus(tmp_path, tools, {"a": a, "b": b})
    chosen, _ = corpus.select(strategy="bis", fraction=0.25, per_source=False)
    assert chosen == {"a": [], "b": [0, 1]}  # k = floor(8 * 0.25) = 2, both from b
    chosen, _ = corpus.select(strategy="bis", fraction=0.25)
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


@pytest.fixture
def corpus(tmp_path, tools):
    return Corpus(tmp_path, tools, {"s": CORPUS})


def test_low_mc_keeps_lowest_mean_step_mc(corpus):
    chosen, scores = corpus.select(strategy="low_mc", fraction=0.375)  # k = 3
    assert chosen["s"] == [1, 3, 7]  # means 0, 0.0833, 0.125
    assert scores["s"][2] == pytest.approx(0.46875)


def test_reliable_keeps_top_r_with_file_order_ties(corpus):
    chosen, _ = corpus.select(strategy="reliable", fraction=0.375)  # R = 1 for 0, 1, 5
    assert chosen["s"] == [0, 1, 5]
    chosen, _ = corpus.select(strategy="reliable", fraction=0.5)  # then 0.9375 (2)
    assert chosen["s"] == [0, 1, 2, 5]


def test_bis_on_the_corpus(corpus):
    # BIS: 0 .05, 1 .05, 2 .3*.9375=.28125, 3 (2/9+.05)*.25, 4 .025, 5 (.1875+.05)*1=.2375, 6 .0375, 7 .00625
    chosen, _ = corpus.select(strategy="bis", fraction=0.375)
    assert chosen["s"] == [2, 3, 5]


def test_mixed_first_then_random_fill(corpus):
    chosen, _ = corpus.select(strategy="mixed", fraction=0.5, seed=3)  # k = 4, mixed = 2, 3, 5
    assert {2, 3, 5} <= set(chosen["s"]) and len(chosen["s"]) == 4
    again, _ = corpus.select(strategy="mixed", fraction=0.5, seed=3)
    assert again == chosen
    few, _ = corpus.select(strategy="mixed", fraction=0.25)  # k = 2 < 3 mixed: only mixed ones
    assert set(few["s"]) < {2, 3, 5} and len(few["s"]) == 2
    fills = {tuple(corpus.select(strategy="mixed", fraction=0.5, seed=s)[0]["s"]) for s in range(20)}
    assert len(fills) > 1  # the fill is random across seeds


def test_random_is_uniform_seeded_and_per_source(tmp_path, tools):
    big = {"a": [[1.0]] * 100, "b": [[0.5, 0.0]] * 50}
    both, only_a = Corpus(tmp_path / "both", tools, big), Corpus(tmp_path / "a", tools, {"a": big["a"]})
    one, _ = both.select(strategy="random", fraction=0.1, seed=7)
    assert len(one["a"]) == 10 and len(one["b"]) == 5 and one["a"] == sorted(one["a"])
    assert both.select(strategy="random", fraction=0.1, seed=7)[0] == one
    assert both.select(strategy="random", fraction=0.1, seed=8)[0] != one
    # a source's draw does not depend on the other sources
    assert only_a.select(strategy="random", fraction=0.1, seed=7)[0]["a"] == one["a"]
    counts = np.zeros(100)
    for seed in range(400):
        counts[only_a.select(strategy="random", fraction=0.1, seed=seed)[0]["a"]] += 1
    assert counts.min() > 15 and counts.max() < 70  # expected 40 each


def test_full_keeps_everything(corpus):
    chosen, _ = corpus.select(strategy="full")
    assert chosen["s"] == list(range(8))
