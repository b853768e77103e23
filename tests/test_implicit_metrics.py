"""Implicit-reward and likelihood agreement with human ranks, on hand-made log-probs with known answers."""

from __future__ import annotations

import pytest

from srlm_core.reporting.implicit_metrics import compute, sibling_pairs


def reply(tree, group, rank, logprob, ref, sft=None, tokens=10, depth=1):
    return {"tree_id": tree, "group_id": group, "depth": depth, "rank": rank, "tokens": tokens, "logprob": logprob,
            "ref_logprob": ref, "sft_logprob": ref if sft is None else sft}


def test_pairs_are_siblings_with_different_ranks_best_first():
    rows = [reply("t", "g", 1, 0, 0), reply("t", "g", 0, 0, 0), reply("t", "g", 0, 0, 0), reply("t", "h", 0, 0, 0)]
    pairs = sibling_pairs(rows)
    assert len(pairs) == 2 and all(better["rank"] == 0 and worse["rank"] == 1 for better, worse in pairs)


def test_a_model_that_moved_toward_the_preferred_reply():
    # Under the reference the worse reply is likelier; the model raised the better one by 3 nats, the worse by 1.
    rows = [reply("t1", "g1", 0, -10, -13), reply("t1", "g1", 1, -8, -9),
            reply("t2", "g2", 0, -20, -22), reply("t2", "g2", 1, -5, -6)]
    m = compute(rows, with_sft=True, resamples=200)
    assert m["implicit_accuracy_ref"] == 1 and m["implicit_margin_ref"] == pytest.approx(1.5)
    # both pairs agree: every resample is 1, so the interval is the exact one over the 2 pairs
    assert (m["implicit_accuracy_ref_ci95_low"], m["implicit_accuracy_ref_ci95_high"]) == (0.158114, 1)
    # log p alone prefers the worse (shorter) replies: the likelihood ranking disagrees with people
    assert m["likelihood_accuracy"] == 0
    assert (m["trees"], m["groups"], m["replies"], m["pairs"]) == (2, 2, 4, 2)


def test_a_model_that_prefers_longer_replies_is_not_credited_for_length_alone():
    # Longer replies (more tokens) gain more under the model whatever people thought: half the longer ones
    # are preferred, so the implicit accuracy is 0.5; the per-token likelihood ranks them by tokens too.
    rows = []
    for i in range(4):
        long_rank = i % 2
        rows += [reply(f"t{i}", f"g{i}", long_rank, -100 + 5, -100, tokens=50),
                 reply(f"t{i}", f"g{i}", 1 - long_rank, -20 + 1, -20, tokens=10)]
    m = compute(rows, with_sft=True, resamples=200)
    assert m["implicit_accuracy_ref"] == 0.5 and m["implicit_tie_rate_ref"] == 0
    assert m["implicit_accuracy_ref_ci95_low"] < 0.5 < m["implicit_accuracy_ref_ci95_high"]


def test_the_margin_at_equal_length_separates_preference_from_length():
    # The model gains 0.1 nats per token on every reply, and the preferred reply is the longer one in 6 of 8
    # trees: the implicit reward agrees with people 6 times in 8 through length alone; at equal length the
    # margin is 0.
    def rows_for(preferred_long, gain_on_preferred=0.0):
        rows = []
        for i, long_first in enumerate(preferred_long):
            long, short = (0, 1) if long_first else (1, 0)
            tokens = 30 + 10 * i   # lengths vary from tree to tree
            rows += [reply(f"t{i}", f"g{i}", long, -100 + 0.1 * tokens + gain_on_preferred * (long == 0), -100,
                           tokens=tokens),
                     reply(f"t{i}", f"g{i}", short, -20 + 1.0 + gain_on_preferred * (short == 0), -20, tokens=10)]
        return rows

    length_only = compute(rows_for([True] * 6 + [False] * 2), with_sft=True, resamples=200)
    assert length_only["implicit_accuracy_sft"] == 0.75
    assert length_only["implicit_margin_lc_sft"] == pytest.approx(0, abs=1e-9)
    assert length_only["implicit_length_slope_sft"] == pytest.approx(10)   # 0.1 nats a token, per 100 tokens
    assert length_only["implicit_margin_lc_sft_ci95_low"] <= 1e-9 and length_only["implicit_margin_lc_sft_ci95_high"] >= -1e-9
    # a model that also gains 2 nats more on each preferred reply, long or short, is credited at equal length
    preferred = compute(rows_for([True] * 6 + [False] * 2, gain_on_preferred=2), with_sft=True, resamples=200)
    assert preferred["implicit_margin_lc_sft"] == pytest.approx(2)
    assert preferred["implicit_margin_lc_sft_ci95_low"] > 0
    assert preferred["implicit_margin_lc_ref"] == preferred["implicit_margin_lc_sft"]
    sft = compute(rows_for([True, False]), with_sft=False, resamples=10)
    assert sft["implicit_margin_lc_sft"] is None and sft["implicit_margin_lc_ref"] is not None


def test_ties_count_half_and_an_unmoved_model_scores_one_half():
    rows = [reply("t", "g", 0, -5, -5), reply("t", "g", 1, -7, -7), reply("t", "g", 2, -9, -9)]
    m = compute(rows, with_sft=True, resamples=100)
    assert m["pairs"] == 3 and m["implicit_accuracy_ref"] == 0.5 and m["implicit_tie_rate_ref"] == 1
    assert m["implicit_margin_ref"] == 0 and m["implicit_accuracy_ref_ci95_low"] == 0.5
    # one tie alone: a half, not "none agree", so the bootstrap's point stands (no exact interval of 0 of 1)
    one = compute(rows[:2], with_sft=True, resamples=100)
    assert one["implicit_accuracy_ref_ci95_low"] == one["implicit_accuracy_ref_ci95_high"] == 0.5
    assert m["likelihood_accuracy"] == 1   # the better replies are likelier: that is not movement


def test_sft_reference_and_by_depth():
    rows = [reply("t", "g", 0, -5, -6, sft=-4), reply("t", "g", 1, -5, -5, sft=-5),
            reply("t", "h", 0, -5, -5, sft=-5, depth=3), reply("t", "h", 1, -6, -5, sft=-6, depth=3)]
    m = compute(rows, with_sft=True, resamples=100)
    assert m["implicit_accuracy_ref"] == 1 and m["implicit_accuracy_sft"] == 0.25   # one loss, one tie
    assert m["by_depth"] == {"1": {"pairs": 1, "implicit_accuracy_ref": 1.0, "implicit_accuracy_sft": 0.0},
                             "3": {"pairs": 1, "implicit_accuracy_ref": 1.0, "implicit_accuracy_sft": 0.5}}
    sft = compute(rows, with_sft=False, resamples=100)
    assert sft["implicit_accuracy_sft"] is None and sft["by_depth"]["1"]["implicit_accuracy_sft"] is None


def test_no_pairs():
    m = compute([reply("t", "g", 0, -1, -1)], with_sft=True, resamples=10)
    assert m["pairs"] == 0 and m["implicit_accuracy_ref"] is None and m["implicit_accuracy_ref_ci95_low"] is None
