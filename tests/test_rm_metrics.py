"""Reward-modelling metrics on hand-made groups with known answers."""

from __future__ import annotations

import pytest

from srlm_core.reporting.rm_metrics import compute, parse_rate


def group(gid, *replies):
    return [{"group_id": gid, "reply_id": f"{gid}{i}", "human_rank": rank, "samples": samples}
            for i, (rank, samples) in enumerate(replies)]


def test_perfect_judge():
    rows = group("a", (0, [5, 5]), (1, [3, 4]), (2, [1, 1])) + group("b", (0, [4.6]), (1, [2]))
    m = compute(rows)
    assert m["pairwise_accuracy"] == 1 and m["exact_match"] == 1
    assert m["spearman"] == pytest.approx(1) and m["kendall"] == pytest.approx(1)
    assert m["top_scored_5"] == 1 and m["parse_failure_rate"] == 0
    assert m["score_histogram"] == {"0": 0, "1": 2, "2": 1, "3": 1, "4": 1, "5": 3}


def test_reversed_ties_and_failures():
    rows = (group("a", (0, [1]), (1, [3]), (2, [5]))        # fully reversed: 0 of 3 pairs
            + group("b", (0, [3]), (1, [3]))                 # tie: 0 of 1, tie counted
            + group("c", (0, [None, 4]), (1, [None, None]))) # unscored reply: 0 of 1
    m = compute(rows)
    assert m["pairs"] == 5 and m["pairwise_accuracy"] == 0 and m["exact_match"] == 0
    assert m["tie_rate"] == pytest.approx(1 / 5)
    assert m["spearman"] == pytest.approx(-1 / 3) and m["kendall"] == pytest.approx(-1 / 3)  # b, c undefined -> 0
    assert m["parse_failure_rate"] == pytest.approx(3 / 9)
    assert m["top_scored_5"] == 0


def test_equal_human_ranks_are_not_pairs():
    m = compute(group("a", (0, [5]), (0, [1]), (1, [0])))
    assert m["pairs"] == 2 and m["pairwise_accuracy"] == 1


def test_pairwise_accuracy_interval_resamples_groups():
    # Two groups: one fully agreeing (3 pairs), one fully disagreeing (1 pair).
    rows = [{"group_id": "g1", "reply_id": f"g1-{i}", "human_rank": i, "samples": [3.0 - i]} for i in range(3)]
    rows += [{"group_id": "g2", "reply_id": f"g2-{i}", "human_rank": i, "samples": [float(i)]} for i in range(2)]
    m = compute(rows, resamples=500, seed=1)
    assert m["pairwise_accuracy"] == 0.75
    assert m["pairwise_accuracy_ci95_low"] == 0.0 and m["pairwise_accuracy_ci95_high"] == 1.0
    assert m == compute(rows, resamples=500, seed=1)
    # every pair agrees: each resample is the point 1, so the interval is the exact one over the 3 pairs
    one = compute(rows[:3], resamples=50, seed=0)
    assert (one["pairwise_accuracy_ci95_low"], one["pairwise_accuracy_ci95_high"]) == (0.292402, 1.0)


def test_text_parse_rate_counts_samples_and_resamples_groups():
    rows = group("a", (0, [5, None]), (1, [None, None])) + group("b", (0, [3, 4]))
    m = parse_rate(rows, resamples=500, seed=0)
    assert m["text_samples"] == 6 and m["text_parse_rate"] == pytest.approx(3 / 6)
    assert m["text_parse_rate_ci95_low"] == pytest.approx(1 / 4) and m["text_parse_rate_ci95_high"] == 1.0
    assert parse_rate([], resamples=10, seed=0)["text_parse_rate"] is None


def test_a_parse_rate_of_zero_has_an_interval_that_is_not_a_point():
    """0 of 33 parsed (SFT and M1 in the default run): every resample is 0, which would read [0, 0], a
    difference of any size detectable. The exact interval over the samples says how large a rate 33 can miss."""
    rows = [{"group_id": f"g{i % 10}", "samples": [None]} for i in range(33)]
    m = parse_rate(rows, resamples=500, seed=0)
    assert m["text_parse_rate"] == 0 and (m["text_parse_rate_ci95_low"], m["text_parse_rate_ci95_high"]) == (0, 0.105763)
