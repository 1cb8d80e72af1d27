"""Learning-rate schedule values computed by hand (METHOD.md 6: 5% linear warm-up, cosine to 0)."""

from __future__ import annotations

import math

import pytest

from mprm.train.schedule import lr_at, warmup_steps


def test_warmup_then_cosine_by_hand():
    kw = dict(peak_lr=1.0, total_steps=10, warmup_ratio=0.2)  # W = 2
    assert warmup_steps(10, 0.2) == 2
    assert lr_at(0, **kw) == pytest.approx(0.5)
    assert lr_at(1, **kw) == pytest.approx(1.0)
    assert lr_at(2, **kw) == pytest.approx(1.0)  # cosine starts at the peak
    assert lr_at(6, **kw) == pytest.approx(0.5)  # half-way through the 8 decay steps
    assert lr_at(9, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))  # 0.0380602
    assert lr_at(9, **kw) == pytest.approx(0.0380602, abs=1e-7)


def test_paper_scale_run():
    kw = dict(peak_lr=1e-5, total_steps=1100, warmup_ratio=0.05)
    assert warmup_steps(1100, 0.05) == 55
    assert lr_at(0, **kw) == pytest.approx(1e-5 / 55)
    assert lr_at(54, **kw) == pytest.approx(1e-5)
    assert lr_at(1099, **kw) == pytest.approx(1e-5 * 0.5 * (1 + math.cos(math.pi * 1044 / 1045)))
    assert lr_at(1099, **kw) < 1e-10
