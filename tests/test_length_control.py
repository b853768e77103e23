"""Length-controlled readings: the score difference and the win rate at equal answer length."""

from __future__ import annotations

import numpy as np
import pytest

from srlm_core.reporting import length_control as lc


def test_a_score_gap_made_of_length_alone_vanishes():
    rng = np.random.default_rng(0)
    d = lc.length_differences(list(rng.integers(500, 900, 40)), list(rng.integers(300, 700, 40)))   # a: longer
    diffs = 0.5 * d   # half a point per 100 characters, nothing else
    out = lc.score_difference(list(diffs), d, resamples=500, seed=1)
    assert abs(diffs.mean()) > 0.2   # the raw difference is far from zero ...
    assert out["score_diff_lc"] == pytest.approx(0.0, abs=1e-9)   # ... the one at equal length is zero
    assert out["score_length_slope"] == pytest.approx(0.5)
    assert out["score_diff_lc_ci95_low"] <= 0 <= out["score_diff_lc_ci95_high"]


def test_a_real_gap_survives_length_control():
    rng = np.random.default_rng(2)
    d = lc.length_differences(list(rng.integers(300, 900, 60)), list(rng.integers(300, 900, 60)))
    diffs = 0.4 + 0.3 * d + rng.normal(0, 0.05, 60)
    out = lc.score_difference(list(diffs), d, resamples=500, seed=1)
    assert out["score_diff_lc"] == pytest.approx(0.4, abs=0.03)
    assert out["score_diff_lc_ci95_low"] > 0.3


def test_equal_lengths_give_the_raw_readings():
    d = np.zeros(6)
    assert lc.score_difference([0.1, 0.2, 0.3, 0.1, 0.2, 0.3], d, resamples=200, seed=0)["score_diff_lc"] == \
        pytest.approx(0.2)
    out = lc.win_rate([1, 1, 0.5, 0, 1, 0.5], d, resamples=200, seed=0)
    assert out["win_rate_lc"] == pytest.approx(4 / 6) and out["win_length_term"] == 0


def test_wins_that_go_to_the_longer_answer_are_discounted():
    rng = np.random.default_rng(3)
    d = lc.length_differences(list(rng.integers(200, 1000, 80)), list(rng.integers(200, 1000, 80)))
    mostly_longer = d + 1.5   # a's answers are mostly the longer ones, and the longer answer always wins
    points = [1.0 if x > 0 else 0.0 for x in mostly_longer]
    raw = float(np.mean(points))
    out = lc.win_rate(points, mostly_longer, resamples=300, seed=0)
    assert raw > 0.6
    assert out["win_rate_lc"] < raw - 0.1 and out["win_length_term"] > 0
    assert out["win_rate_lc_ci95_low"] <= out["win_rate_lc"] <= out["win_rate_lc_ci95_high"]


def test_a_clean_sweep_stays_finite():
    out = lc.win_rate([1.0] * 10, lc.length_differences([500] * 10, list(range(400, 600, 20))), resamples=100,
                      seed=0)
    assert 0.5 < out["win_rate_lc"] < 1 and np.isfinite(out["win_length_term"])
