"""Reward-modelling metrics: how well a judge's scores agree with human rankings.

Definitions (also in docs/metrics.md). Input: per reply of a held-out group its human rank
(0 = best) and the judge's samples (None = parse failure). A reply's score is the mean of
its valid samples; a reply with none is unscored.
  pairwise_accuracy  over all reply pairs of a group with different human ranks: the share
                     the judge scores strictly in the human order. A judge tie or an
                     unscored reply counts as not agreeing (tie_rate reports the ties).
  exact_match        share of groups in which every such pair agrees.
  spearman, kendall  per group, between judge score and human preference (-rank), over its
                     scored replies; a group where that is undefined (fewer than 2 scored
                     replies, or all scores equal) counts as 0; then the mean over groups.
                     Kendall is tau-b.
  top_scored_5       share of human top-ranked replies whose score rounds to 5 (>= 4.5).
  parse_failure_rate share of judge samples without a valid score.
  score_histogram    samples by score rounded to a whole point, 0..5.
  text_parse_rate    (parse_rate) share of samples judged with the paper's text method that end
                     in a valid `Score: N`; the probability method always scores, so this is
                     the measure of whether the model writes the judge's format itself.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
from scipy import stats


def reply_scores(samples: list[float | None]) -> float | None:
    valid = [s for s in samples if s is not None]
    return sum(valid) / len(valid) if valid else None


def _correlation(fn, xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return 0.0
    value = fn(xs, ys).statistic
    return 0.0 if math.isnan(value) else float(value)


def group_bootstrap(per_group: list[tuple[int, int]], *, resamples: int, seed: int) -> tuple[float | None, float | None]:
    """95% percentile interval of pooled accuracy (sum agree / sum pairs) over groups resampled with
    replacement: pairs within a group share a judge's view of the group, so groups are the unit.
    Instruction following uses it too, a prompt being the group and its instructions the pairs.
    When every pair agrees, or none does, every resample is that same point, which says nothing of
    the spread (0 of 33 would read [0, 0]); the exact (Clopper-Pearson) interval over the pairs is
    given instead, the narrowest honest statement such a run supports."""
    counts = np.array([(p, a) for p, a in per_group if p > 0], dtype=float).reshape(-1, 2)
    if not len(counts):
        return None, None
    total, agreeing = counts.sum(axis=0)   # agreeing may hold halves (the implicit reward's ties)
    if agreeing == 0 or agreeing == total:
        exact = stats.binomtest(int(agreeing), int(total)).proportion_ci(0.95)
        return round(float(exact.low), 6), round(float(exact.high), 6)
    picks = np.random.default_rng(seed).integers(0, len(counts), size=(resamples, len(counts)))
    pooled = counts[picks].sum(axis=1)
    low, high = np.percentile(pooled[:, 1] / pooled[:, 0], [2.5, 97.5])
    return round(float(low), 6), round(float(high), 6)


def parse_rate(rows: list[dict], *, resamples: int, seed: int) -> dict:
    """rows: {group_id, samples: [score | None, ...]} judged with the text method -> the share of
    samples with a valid `Score: N`, with its 95% interval over groups."""
    per_group: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        counts = per_group[row["group_id"]]
        counts[0] += len(row["samples"])
        counts[1] += sum(s is not None for s in row["samples"])
    total, parsed = (sum(c[i] for c in per_group.values()) for i in (0, 1))
    low, high = group_bootstrap([tuple(c) for c in per_group.values()], resamples=resamples, seed=seed)
    return {"text_samples": total, "text_parse_rate": parsed / total if total else None,
            "text_parse_rate_ci95_low": low, "text_parse_rate_ci95_high": high}


def compute(rows: list[dict], *, resamples: int = 2000, seed: int = 0) -> dict:
    """rows: {group_id, reply_id, human_rank, samples: [score | None, ...]} -> metrics."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["group_id"]].append({**row, "score": reply_scores(row["samples"])})
    pairs = agree = ties = exact = 0
    spearman, kendall = [], []
    tops = tops_5 = 0
    per_group: list[tuple[int, int]] = []
    for replies in groups.values():
        group_pairs = group_agree = 0
        for a, b in itertools.combinations(replies, 2):
            if a["human_rank"] == b["human_rank"]:
                continue
            better, worse = (a, b) if a["human_rank"] < b["human_rank"] else (b, a)
            group_pairs += 1
            if better["score"] is not None and worse["score"] is not None:
                if better["score"] > worse["score"]:
                    group_agree += 1
                elif better["score"] == worse["score"]:
                    ties += 1
        pairs += group_pairs
        agree += group_agree
        per_group.append((group_pairs, group_agree))
        exact += group_pairs > 0 and group_agree == group_pairs
        scored = [r for r in replies if r["score"] is not None]
        xs, ys = [r["score"] for r in scored], [-r["human_rank"] for r in scored]
        spearman.append(_correlation(stats.spearmanr, xs, ys))
        kendall.append(_correlation(stats.kendalltau, xs, ys))
        best = min(r["human_rank"] for r in replies)
        for r in replies:
            if r["human_rank"] == best:
                tops += 1
                tops_5 += r["score"] is not None and r["score"] >= 4.5
    samples = [s for row in rows for s in row["samples"]]
    valid = [s for s in samples if s is not None]
    histogram = {str(point): 0 for point in range(6)}
    for s in valid:
        histogram[str(min(5, max(0, int(math.floor(s + 0.5)))))] += 1
    return {
        "groups": len(groups), "replies": len(rows), "pairs": pairs,
        "pairwise_accuracy": agree / pairs if pairs else None,
        **dict(zip(("pairwise_accuracy_ci95_low", "pairwise_accuracy_ci95_high"),
                   group_bootstrap(per_group, resamples=resamples, seed=seed))),
        "tie_rate": ties / pairs if pairs else None,
        "exact_match": exact / len(groups) if groups else None,
        "spearman": sum(spearman) / len(spearman) if spearman else None,
        "kendall": sum(kendall) / len(kendall) if kendall else None,
        "top_scored_5": tops_5 / tops if tops else None,
        "parse_failure_rate": 1 - len(valid) / len(samples) if samples else None,
        "score_histogram": histogram,
    }
