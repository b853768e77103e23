"""Pointwise scores and paired differences (reporting/pointwise.py), and the position-bias gate
(reporting/position_bias.py), on hand-made numbers."""

from __future__ import annotations

import pytest

from srlm_core.errors import SrlmError
from srlm_core.reporting.pointwise import model_score, paired
from srlm_core.reporting.position_bias import check


def test_paired_difference_is_per_prompt():
    a = {"p1": 4.0, "p2": 3.0, "p3": 2.0, "p4": 5.0, "p5": 1.0, "only_a": 0.0}
    b = {"p1": 3.0, "p2": 3.0, "p3": 1.0, "p4": 4.0, "p5": 2.0, "only_b": 5.0}
    d = paired(a, b, resamples=2000, seed=0)
    assert d["score_prompts"] == 5 and d["score_a"] == 3.0 and d["score_b"] == 2.6
    assert d["score_diff"] == pytest.approx(0.4)                       # diffs 1, 0, 1, 1, -1
    assert (d["score_a_higher"], d["score_b_higher"]) == (0.6, 0.2)    # the tie p2 counts for neither
    assert -1 <= d["score_diff_ci95_low"] < 0.4 < d["score_diff_ci95_high"] <= 1
    assert d == paired(a, b, resamples=2000, seed=0)


def test_pairing_removes_the_prompts_own_difficulty():
    # a is 0.5 better on every prompt, the prompts differ by far more: the paired interval is a point.
    b = {f"p{i}": float(i) for i in range(5)}
    a = {p: s + 0.5 for p, s in b.items()}
    d = paired(a, b, resamples=500, seed=1)
    assert d["score_diff"] == d["score_diff_ci95_low"] == d["score_diff_ci95_high"] == 0.5
    assert d["score_a_higher"] == 1.0
    alone = model_score(list(a.values()), resamples=500, seed=1)
    assert alone["score_mean_ci95_high"] - alone["score_mean_ci95_low"] > 1


def test_model_score_is_the_mean_with_a_seeded_interval():
    s = model_score([1.0, 2.0, 3.0, 4.0], resamples=1000, seed=3)
    assert s["answers"] == 4 and s["score_mean"] == 2.5
    assert 1 <= s["score_mean_ci95_low"] < 2.5 < s["score_mean_ci95_high"] <= 4
    assert s == model_score([1.0, 2.0, 3.0, 4.0], resamples=1000, seed=3)


def test_nothing_to_compare_is_an_error():
    with pytest.raises(SrlmError, match="no scored prompt in common"):
        paired({"p1": 1.0}, {"p2": 1.0}, resamples=10, seed=0)
    with pytest.raises(SrlmError, match="no scored answers"):
        model_score([], resamples=10, seed=0)


GATE = dict(max_rate=0.75, resamples=1000, seed=0)


def test_an_evaluator_that_always_names_response_a_is_uninformative():
    c = check([("A", "A")] * 16, **GATE)
    assert c["first_position_rate"] == 1.0 and c["first_position_rate_ci95_low"] == 0.891119   # exact, 32 of 32
    assert c["informative"] is False
    assert c["uninformative_reason"].startswith("evaluator picks the first position in 100% of verdicts")


def test_a_bias_to_the_second_position_fails_the_gate_too():
    c = check([("B", "B")] * 15 + [("A", "B")], **GATE)
    assert c["first_position_rate"] == 0.03125 and c["informative"] is False
    assert "second position in 97%" in c["uninformative_reason"]
    assert check([("B", "B")] * 7 + [("A", "B")], **GATE)["informative"] is True   # 1 of 16: exact CI reaches 0.30


def test_a_consistent_evaluator_passes_and_keeps_its_games():
    c = check([("A", "B"), ("B", "A")] * 8, **GATE)
    assert c["first_position_rate"] == 0.5 and c["informative"] is True and c["uninformative_reason"] is None


def test_a_handful_of_identical_verdicts_is_not_enough():
    """Eight verdicts naming A: an evaluator at the 0.75 threshold writes eight A's one time in ten. The exact
    interval ([0.631, 1]; the bootstrap's percentile interval would be the point [1, 1]) keeps it; 7 games
    (14 verdicts) fail it."""
    few = check([("A", "A")] * 4, **GATE)
    assert few["first_position_rate_ci95_low"] == 0.630583 and few["informative"] is True
    assert check([("A", "A")] * 6, **GATE)["informative"] is True   # 12 verdicts: exact low 0.735
    seven = check([("A", "A")] * 7, **GATE)
    assert seven["informative"] is False and "exact [0.768, 1.000]" in seven["uninformative_reason"]


def test_the_gate_needs_the_whole_interval_past_the_threshold():
    # 7 of 8 verdicts name A: a rate of 0.875, but 4 games cannot show that it is surely above 0.75.
    few = check([("A", "A"), ("A", "A"), ("A", "A"), ("A", "B")], **GATE)
    assert few["first_position_rate"] == 0.875 and few["first_position_rate_ci95_low"] <= 0.75
    assert few["informative"] is True
    many = check([("A", "A")] * 24 + [("A", "B")] * 8, **GATE)   # the same 7/8 over 32 games
    assert many["first_position_rate"] == 0.875 and many["informative"] is False
    assert check([("A", "A")] * 16, **{**GATE, "max_rate": 1.0})["informative"] is True   # 1 turns it off


def test_unreadable_verdicts_are_uninformative():
    c = check([(None, None)] * 3, **GATE)
    assert c["first_position_rate"] is None and c["informative"] is False
    assert c["uninformative_reason"] == "no verdict could be read"
    assert check([(None, "A"), ("B", None)] * 4, **GATE)["first_position_rate"] == 0.5
