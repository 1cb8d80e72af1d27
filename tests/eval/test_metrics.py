"""VisualProcessBench metrics against hand-computed values (METHOD.md 7; docs/evaluation.md).

Rows here are in memory, so their labels are mprm's internal coding (1 correct, 0 incorrect, -1
neutral); files use the benchmark's coding and their readers convert (test_predictions_mode.py
reads the same cases from files).
"""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest

from mprm.eval.metrics import class_f1, metrics_at, roc_auc, step_data_from_rows
from mprm.eval.thresholds import candidate_thresholds, summarise, sweep


def row(id_, source, labels, scores):
    return {"id": id_, "data_source": source, "labels": labels, "scores": scores}


# Source A, threshold 0.5 (neutral step 0.99 excluded):
#   0.9 (1) TP, 0.8 (1) TP, 0.3 (1) FN, 0.6 (0) FP, 0.2 (0) TN
#   F1+ = 2*2/(2*2+1+1) = 2/3, F1- = 2*1/(2*1+1+1) = 1/2, macro = 7/12, n = 5
# Source B, threshold 0.5, the scores tie with the threshold (>= means predicted correct):
#   0.5 (1) TP, 0.5 (0) FP, 0.1 (0) TN
#   F1+ = 2/(2+1+0) = 2/3, F1- = 2/(2+0+1) = 2/3, macro = 2/3, n = 3
# overall = (5 * 7/12 + 3 * 2/3) / 8 = 59/96
# pooled: TP 3, FN 1, FP 2, TN 2: F1+ = 6/9 = 2/3, F1- = 4/7, macro = 13/21
# AUC: positives 0.9, 0.8, 0.3, 0.5 vs negatives 0.6, 0.2, 0.5, 0.1:
#   4 + 4 + 2 + (2 + 1/2) = 12.5 of 16 pairs = 0.78125
ROWS_AB = [
    row("a1", "A", [1, 1, 0, -1], [0.9, 0.3, 0.6, 0.99]),
    row("a2", "A", [1, 0], [0.8, 0.2]),
    row("b1", "B", [1, 0, 0], [0.5, 0.5, 0.1]),
]


def test_hand_computed_two_sources_with_tie_at_threshold():
    m = metrics_at(step_data_from_rows(ROWS_AB), 0.5)
    a, b = m["per_source"]["A"], m["per_source"]["B"]
    assert a["f1_positive"] == pytest.approx(2 / 3) and a["f1_negative"] == pytest.approx(1 / 2)
    assert a["macro_f1"] == pytest.approx(7 / 12) and a["n_steps"] == 5
    assert b["f1_positive"] == pytest.approx(2 / 3) and b["f1_negative"] == pytest.approx(2 / 3)
    assert b["macro_f1"] == pytest.approx(2 / 3) and b["n_steps"] == 3
    assert m["overall"] == pytest.approx(59 / 96)
    assert m["f1_positive"] == pytest.approx(2 / 3) and m["f1_negative"] == pytest.approx(4 / 7)
    assert m["macro_f1_pooled"] == pytest.approx(13 / 21)
    assert m["auc"] == pytest.approx(0.78125)
    assert m["n_steps"] == 8


def test_threshold_just_above_tie_flips_the_tied_steps():
    # threshold 0.51 on source B: 0.5 (1) FN, 0.5 (0) TN, 0.1 (0) TN
    #   F1+ = 0/(0+0+1) = 0, F1- = 4/(4+1+0) = 4/5, macro = 2/5
    m = metrics_at(step_data_from_rows(ROWS_AB[2:]), 0.51)
    assert m["per_source"]["B"]["macro_f1"] == pytest.approx(2 / 5)


def test_source_without_negatives():
    # C at 0.5: 0.7 (1) TP, 0.2 (1) FN; no negatives.
    #   F1+ = 2/(2+0+1) = 2/3; F1- = 0/(0+1+0) = 0 (a positive predicted incorrect is a false
    #   "incorrect"), macro = 1/3
    # C at 0.1: both TP: F1+ = 1; F1- = 0/0 -> 0 by convention (zero_division=0), macro = 1/2
    rows = [row("c1", "C", [1, 1, -1], [0.7, 0.2, 0.1])]
    data = step_data_from_rows(rows)
    m = metrics_at(data, 0.5)
    assert m["per_source"]["C"]["f1_positive"] == pytest.approx(2 / 3)
    assert m["per_source"]["C"]["f1_negative"] == 0.0
    assert m["overall"] == pytest.approx(1 / 3)
    assert m["auc"] is None  # one class only
    assert metrics_at(data, 0.1)["overall"] == pytest.approx(1 / 2)


def test_all_neutral_items_and_sources():
    # D is all neutral: reported with n_steps 0 and null F1s, weight 0 in overall.
    rows = ROWS_AB + [row("d1", "D", [-1, -1], [0.1, 0.9]), row("a3", "A", [-1], [0.0])]
    m = metrics_at(step_data_from_rows(rows), 0.5)
    assert m["per_source"]["D"] == {"macro_f1": None, "f1_positive": None, "f1_negative": None, "n_steps": 0}
    assert m["overall"] == pytest.approx(59 / 96)
    only_neutral = step_data_from_rows([row("d1", "D", [-1, -1], [0.1, 0.9])])
    m = metrics_at(only_neutral, 0.5)
    assert m["overall"] is None and m["auc"] is None and m["n_steps"] == 0
    with pytest.raises(ValueError, match="no non-neutral step"):
        sweep(only_neutral)


def test_weighted_overall_differs_from_unweighted_mean():
    # big source E (n=4) perfectly separated: macro 1. small source F (n=2) all wrong:
    # 0.9 (0) FP, 0.1 (1) FN -> F1+ = 0, F1- = 0, macro 0.
    # overall = (4*1 + 2*0)/6 = 2/3 (the unweighted mean would be 1/2)
    rows = [row("e", "E", [1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]), row("f", "F", [0, 1], [0.9, 0.1])]
    assert metrics_at(step_data_from_rows(rows), 0.5)["overall"] == pytest.approx(2 / 3)


def test_auc_with_ties():
    # positives 0.5, 0.5, 0.9 vs negatives 0.5, 0.1:
    #   0.5: 1 below + 1 tie/2 = 1.5 (twice), 0.9: 2 -> 5 of 6 pairs
    assert roc_auc(np.array([0.5, 0.5, 0.9, 0.5, 0.1]), np.array([1, 1, 1, 0, 0], bool)) == pytest.approx(5 / 6)
    # every score tied: 0.5
    assert roc_auc(np.full(4, 0.3), np.array([1, 0, 1, 0], bool)) == pytest.approx(0.5)


def test_class_f1_zero_division():
    assert class_f1(np.array([0]), np.array([0]), np.array([0]))[0] == 0.0
    assert class_f1(np.array([3]), np.array([1]), np.array([2]))[0] == pytest.approx(6 / 9)


def test_oracle_sweep_hand_computed():
    # labels [1, 0, 1], scores [0.8, 0.4, 0.3]; candidates 0.3, 0.4, 0.8, just above 0.8
    #   t=0.3: TP2 FP1        -> F1+ 4/5, F1- 0        -> 0.4
    #   t=0.4: TP1 FP1 FN1    -> F1+ 1/2, F1- 0        -> 0.25
    #   t=0.8: TP1 FN1 TN1    -> F1+ 2/3, F1- 2/3      -> 2/3
    #   t>0.8: FN2 TN1        -> F1+ 0,   F1- 2/4      -> 0.25
    data = step_data_from_rows([row("x", "S", [1, 0, 1], [0.8, 0.4, 0.3])])
    s = sweep(data)
    assert s.thresholds[:3].tolist() == [0.3, 0.4, 0.8] and s.thresholds[3] > 0.8
    assert s.overall == pytest.approx([0.4, 0.25, 2 / 3, 0.25])
    assert s.best() == (0.8, pytest.approx(2 / 3))


def _brute_overall(rows, t):
    per = {}
    for r in rows:
        for y, x in zip(r["labels"], r["scores"]):
            if y == -1:
                continue
            c = per.setdefault(r["data_source"], {"tp": 0, "fp": 0, "fn": 0, "tn": 0})
            pred = x >= t
            c["tp" if (pred and y == 1) else "fp" if pred else "fn" if y == 1 else "tn"] += 1

    def f1(tp, fp, fn):
        return 0.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)

    num = den = 0
    for c in per.values():
        n = sum(c.values())
        num += n * (f1(c["tp"], c["fp"], c["fn"]) + f1(c["tn"], c["fn"], c["fp"])) / 2
        den += n
    return num / den


def test_sweep_equals_brute_force_loop():
    rng = random.Random(3)
    rows = []
    for i in range(60):
        n = rng.randint(1, 6)
        rows.append(row(str(i), rng.choice(["A", "B", "C"]), [rng.choice([1, 1, 0, -1]) for _ in range(n)],
                        [round(rng.random(), 2) for _ in range(n)]))  # rounding makes ties
    data = step_data_from_rows(rows)
    s = sweep(data)
    assert len(s.thresholds) == len(candidate_thresholds(data.scores)) == len(np.unique(data.scores)) + 1
    brute = [_brute_overall(rows, t) for t in s.thresholds]
    assert s.overall == pytest.approx(brute, abs=1e-12)
    assert s.best()[1] == pytest.approx(max(brute))
    for t in (0.0, 0.37, 0.5, 1.0):
        assert metrics_at(data, t)["overall"] == pytest.approx(_brute_overall(rows, t), abs=1e-12)


def test_summarise_field_set_exactly():
    test, dev = step_data_from_rows(ROWS_AB), step_data_from_rows([row("x", "S", [1, 0, 1], [0.8, 0.4, 0.3])])
    out = summarise(test, fixed=0.5, dev=dev)
    assert set(out) == {"thresholds", "results"}
    assert set(out["thresholds"]) == set(out["results"]) == {"fixed", "dev", "oracle"}
    assert out["thresholds"]["dev"] == 0.8 and out["thresholds"]["fixed"] == 0.5
    for m in out["results"].values():
        assert set(m) == {"overall", "macro_f1_pooled", "f1_positive", "f1_negative", "auc", "n_steps", "per_source"}
        for ps in m["per_source"].values():
            assert set(ps) == {"macro_f1", "f1_positive", "f1_negative", "n_steps"}
    assert out["results"]["fixed"]["overall"] == pytest.approx(59 / 96)
    assert out["results"]["oracle"]["overall"] >= out["results"]["fixed"]["overall"]
    none = summarise(test, fixed=0.5)
    assert none["thresholds"]["dev"] is None and none["results"]["dev"] is None


def test_bad_rows_are_named():
    with pytest.raises(ValueError, match=r"row 1 \(id 'q'\): 2 labels but 1 scores"):
        step_data_from_rows([row("q", "A", [1, 0], [0.5])])
    with pytest.raises(ValueError, match=r"labels\[1\] = 2"):
        step_data_from_rows([row("q", "A", [1, 2], [0.5, 0.5])])
    with pytest.raises(ValueError, match=r"scores\[0\] = nan"):
        step_data_from_rows([row("q", "A", [1], [float("nan")])])
    with pytest.raises(ValueError, match=r"scores\[1\] = inf"):
        step_data_from_rows([row("q", "A", [1, 0], [0.5, float("inf")])])


def test_cut_steps_are_left_out_and_counted():
    # ROWS_AB plus a2's twin whose last step was cut (None) and an item cut entirely:
    #   the scored steps are exactly ROWS_AB's plus a4's first step 0.8 (1) -> A gains a TP at 0.5:
    #   A: TP 3, FN 1, FP 1, TN 1 -> F1+ 6/8 = 3/4, F1- 2/4 = 1/2, macro 5/8, n 6
    #   overall = (6 * 5/8 + 3 * 2/3) / 9 = (3.75 + 2) / 9 = 23/36
    rows = ROWS_AB + [row("a4", "A", [1, 0, -1], [0.8, None, None]), row("a5", "A", [0, 1], [None, None])]
    data = step_data_from_rows(rows)
    assert data.n_steps == 9 and data.n_cut == 4
    assert data.cut == (("a4", 2, 3), ("a5", 2, 2))
    m = metrics_at(data, 0.5)
    assert m["per_source"]["A"]["n_steps"] == 6
    assert m["per_source"]["A"]["macro_f1"] == pytest.approx(5 / 8)
    assert m["overall"] == pytest.approx(23 / 36)

def test_metric_modules_import_no_torch():
    code = ("import sys, mprm.eval, mprm.eval.metrics, mprm.eval.thresholds, mprm.eval.tables, "
            "mprm.eval.predictions, mprm.eval.pipeline, mprm.eval.bon, mprm.eval.curves, mprm.eval.cli, "
            "mprm.eval.settings, mprm.eval.loading, mprm.eval.items, mprm.files, mprm.eval.runner; bad = [m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_first_error_auc_counts_only_the_first_wrong_step_by_hand():
    from mprm.eval.metrics import first_error_auc

    rows = [{"labels": [1, 1, 0, 0], "scores": [0.9, 0.8, 0.3, 0.1]},  # first error 0.3; 0.1 is not counted
            {"labels": [1, 0, -1], "scores": [0.6, 0.7, 0.2]}]  # first error 0.7; neutral ignored
    # positives 0.9, 0.8, 0.6 against first errors 0.3, 0.7: 5 of 6 pairs ordered correctly
    assert first_error_auc(rows) == pytest.approx(5 / 6)
    assert first_error_auc([{"labels": [1, 1], "scores": [0.2, 0.4]}]) is None
    # a step without a score (cut) is left out: the first error 0.3 stays the only one counted in row 1
    cut = [{"labels": [1, 1, 0, 0], "scores": [0.9, 0.8, 0.3, None]}, rows[1]]
    assert first_error_auc(cut) == pytest.approx(5 / 6)
