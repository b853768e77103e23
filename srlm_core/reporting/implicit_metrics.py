"""Judge-free agreement with human preference: the implicit reward of a model against a reference.

Definitions (also in docs/metrics.md). Input: per held-out reply its tree, its group (the
siblings answering one user message), its human rank (0 = best), its token count and the
summed log-probability log p(y|x) under the model, its reference and the SFT baseline.
  implicit reward      r(x, y) = log p_model(y|x) - log p_ref(y|x): how much the model moved
                       toward y since the reference (DPO's reward, without beta).
  implicit_accuracy_*  over all sibling pairs with different human ranks: the share where the
                       human-preferred reply gains more, r(better) > r(worse); an exact tie
                       counts 1/2, so a model that did not move at all (r = 0 everywhere) scores
                       0.5, as does one that moved without regard to human preference.
  *_ci95_low, _high    95% percentile interval over trees resampled with replacement (a tree's
                       pairs share its conversation, so trees are the unit).
  implicit_tie_rate_*  share of pairs with r(better) == r(worse).
  implicit_margin_*    mean of r(better) - r(worse) over the pairs, in nats.
  implicit_margin_lc_*  the margin r(better) - r(worse) at equal length: least squares
                       margin = alpha + beta d over the pairs (d: the better reply's tokens minus
                       the worse one's, per 100), alpha, in nats, with an interval over trees. A
                       model whose gain grows linearly with length (r = c x tokens) has alpha = 0
                       however often people preferred the longer reply; alpha > 0: it moved toward
                       what people prefer beyond length. implicit_length_slope_*: beta.
  likelihood_accuracy  the same pairs ranked by log p_model(y|x) alone (mostly a length effect:
                       a longer reply has more tokens to pay for); likelihood_accuracy_per_token
                       ranks by log p / tokens.
`_ref` compares with the model's reference, `_sft` with the SFT baseline (null for SFT itself).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Callable

import numpy as np

from .length_control import score_difference
from .rm_metrics import group_bootstrap

Value = Callable[[dict], float]


def sibling_pairs(rows: list[dict]) -> list[tuple[dict, dict]]:
    """(better, worse) for every pair of siblings with different human ranks."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["group_id"]].append(row)
    pairs = []
    for replies in groups.values():
        for a, b in itertools.combinations(replies, 2):
            if a["rank"] != b["rank"]:
                pairs.append((a, b) if a["rank"] < b["rank"] else (b, a))
    return pairs


def agreement(pairs: list[tuple[dict, dict]], value: Value, *, resamples: int, seed: int) -> dict:
    """How often `value` orders the pairs as people did (ties 1/2), with a tree bootstrap interval."""
    per_tree: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    ties, margins = 0, []
    for better, worse in pairs:
        margin = value(better) - value(worse)
        margins.append(margin)
        ties += margin == 0
        tree = per_tree[better["tree_id"]]
        tree[0] += 1
        tree[1] += 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0
    n = len(pairs)
    low, high = group_bootstrap([tuple(t) for t in per_tree.values()], resamples=resamples, seed=seed)
    return {"accuracy": round(sum(t[1] for t in per_tree.values()) / n, 6) if n else None,
            "ci95_low": low, "ci95_high": high,
            "tie_rate": round(ties / n, 6) if n else None,
            "margin": round(sum(margins) / n, 6) if n else None}


def length_controlled(pairs: list[tuple[dict, dict]], value: Value, suffix: str, *, resamples: int,
                      seed: int) -> dict:
    """The implicit margin at equal length (see the definitions above), keys ending in `suffix`."""
    keys = [f"implicit_margin_lc{suffix}", f"implicit_margin_lc{suffix}_ci95_low",
            f"implicit_margin_lc{suffix}_ci95_high", f"implicit_length_slope{suffix}"]
    if not pairs:
        return dict.fromkeys(keys)
    margins = [value(better) - value(worse) for better, worse in pairs]
    d = np.array([(better["tokens"] - worse["tokens"]) / 100 for better, worse in pairs], dtype=float)
    fitted = score_difference(margins, d, resamples=resamples, seed=seed,
                              groups=[better["tree_id"] for better, _ in pairs])
    return dict(zip(keys, (fitted["score_diff_lc"], fitted["score_diff_lc_ci95_low"],
                           fitted["score_diff_lc_ci95_high"], fitted["score_length_slope"])))


def _flat(prefix: str, suffix: str, result: dict) -> dict:
    return {f"{prefix}_accuracy{suffix}": result["accuracy"], f"{prefix}_accuracy{suffix}_ci95_low": result["ci95_low"],
            f"{prefix}_accuracy{suffix}_ci95_high": result["ci95_high"],
            f"{prefix}_tie_rate{suffix}": result["tie_rate"], f"{prefix}_margin{suffix}": result["margin"]}


def compute(rows: list[dict], *, with_sft: bool, resamples: int = 2000, seed: int = 0) -> dict:
    """rows: {tree_id, group_id, depth, rank, tokens, logprob, ref_logprob, sft_logprob} of the scored replies
    (all three log-probs present) -> metrics. with_sft=False (the model is SFT) leaves the _sft ones null."""
    pairs = sibling_pairs(rows)
    options = dict(resamples=resamples, seed=seed)
    ref = agreement(pairs, lambda r: r["logprob"] - r["ref_logprob"], **options)
    sft = agreement(pairs, lambda r: r["logprob"] - r["sft_logprob"], **options) if with_sft else \
        dict.fromkeys(ref)
    ref_lc = length_controlled(pairs, lambda r: r["logprob"] - r["ref_logprob"], "_ref", **options)
    sft_lc = length_controlled(pairs if with_sft else [], lambda r: r["logprob"] - r["sft_logprob"], "_sft", **options)
    likelihood = agreement(pairs, lambda r: r["logprob"], **options)
    per_token = agreement(pairs, lambda r: r["logprob"] / r["tokens"], **options)
    by_depth = {}
    for depth in sorted({r["depth"] for r in rows}):
        at = [p for p in pairs if p[0]["depth"] == depth]
        by_depth[str(depth)] = {
            "pairs": len(at),
            "implicit_accuracy_ref": agreement(at, lambda r: r["logprob"] - r["ref_logprob"], **options)["accuracy"],
            "implicit_accuracy_sft": agreement(at, lambda r: r["logprob"] - r["sft_logprob"], **options)["accuracy"]
            if with_sft else None}
    return {
        "trees": len({r["tree_id"] for r in rows}), "groups": len({r["group_id"] for r in rows}),
        "replies": len(rows), "pairs": len(pairs),
        **_flat("implicit", "_ref", ref), **_flat("implicit", "_sft", sft),
        **ref_lc, **sft_lc,
        "likelihood_accuracy": likelihood["accuracy"], "likelihood_accuracy_ci95_low": likelihood["ci95_low"],
        "likelihood_accuracy_ci95_high": likelihood["ci95_high"],
        "likelihood_accuracy_per_token": per_token["accuracy"],
        "by_depth": by_depth,
    }
