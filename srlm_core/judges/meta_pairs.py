"""Judge pairs from meta-judgements: which candidates are meta-judged, which comparisons are played,
the position-debiased win rates, and the best vs the worst judgement of a candidate.

Pure functions over plain values (no model), so each rule is tested on its own (tests/test_meta.py).
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from typing import Sequence

from ..hashing import row_id
from .judge import points, target


@dataclass(frozen=True)
class Shown:
    """One of a candidate's judgements as the meta-judge reads it and the judge would be trained on it."""
    judgement_id: str
    text: str      # its justification closed by `Score: N` (judges.judge.target)
    points: int    # that N


def distinct(judgements: Sequence[dict]) -> list[Shown]:
    """A candidate's scored judgements (rows of `judgements`, in sample order), one per distinct text: two
    samples that would teach the same text are one judgement, and an unscored one teaches no score."""
    seen: dict[str, Shown] = {}
    for j in sorted(judgements, key=lambda j: j["sample_index"]):
        if j["score"] is None:
            continue
        text = target(j["raw_output"], j["score"])
        seen.setdefault(text, Shown(j["judgement_id"], text, points(j["raw_output"], j["score"])))
    return list(seen.values())


def spread(scores: Sequence[float | None]) -> float:
    """The variance of a candidate's judge scores (the judge's own uncertainty about it)."""
    valid = [s for s in scores if s is not None]
    return statistics.pvariance(valid) if len(valid) > 1 else 0.0


def draw(eligible: dict[str, float], k: int, how: str, seed: int) -> list[str]:
    """Up to k candidate ids from `eligible` (candidate id -> score variance), in the order they are used:
    `spread`, the largest variance first (the paper's choice: where the judge is least sure); `random`,
    a seeded shuffle. Ties, and the shuffle, follow a hash of the seed and the id, so the draw does not
    depend on the order the candidates were read in."""
    def key(cid: str):
        tiebreak = row_id("meta-draw", seed, cid)
        return (-eligible[cid], tiebreak) if how == "spread" else (tiebreak,)
    return sorted(eligible, key=key)[:k]


def orders(n: int) -> list[tuple[int, int]]:
    """(first, second) for every ordered pair of n judgements: each unordered pair in both orders."""
    return list(itertools.permutations(range(n), 2))


def win_rates(n: int, p_first: dict[tuple[int, int], float]) -> list[float]:
    """Each judgement's mean preference over the others, where the preference for i over j is the mean of
    P(i better) shown first and shown second: a meta-judge that favours a position gains nothing by it."""
    rates = []
    for i in range(n):
        prefs = [(p_first[i, j] + 1.0 - p_first[j, i]) / 2 for j in range(n) if j != i]
        rates.append(round(sum(prefs) / len(prefs), 6))   # rounded, so a pure position bias is an exact tie
    return rates


def pick(rates: Sequence[float], min_margin: float) -> tuple[int, int, str | None]:
    """(best, worst, why no pair): the highest win rate (the earliest on a tie) vs the lowest (the latest on
    a tie); no pair when they are equal (tie) or closer than min_margin (below_margin)."""
    order = range(len(rates))
    best = max(order, key=lambda i: (rates[i], -i))
    worst = min(order, key=lambda i: (rates[i], -i))
    gap = rates[best] - rates[worst]
    reason = "tie" if gap == 0 else "below_margin" if gap < min_margin else None
    return best, worst, reason
