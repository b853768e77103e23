"""Head-to-head outcomes and the win rate with a bootstrap interval.

A game is played in both orders. The outcome is model a (or b) only when both orders
prefer it; when the orders disagree, or a verdict could not be read, the game is a tie.
Win rate = (wins + ties / 2) / games; its 95% interval is the 2.5th and 97.5th
percentile of the win rate over games resampled with replacement (seeded).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

PREFERS_AB = {"A": "a", "B": "b"}   # order ab: a's answer is Response A
PREFERS_BA = {"A": "b", "B": "a"}   # order ba: a's answer is Response B
POINTS = {"a": 1.0, "tie": 0.5, "b": 0.0}


def outcome(verdict_ab: str | None, verdict_ba: str | None) -> str:
    first, second = PREFERS_AB.get(verdict_ab), PREFERS_BA.get(verdict_ba)
    return first if first is not None and first == second else "tie"


def summarise(outcomes: Sequence[str], verdicts: Sequence[str | None], *, resamples: int, seed: int) -> dict:
    """Counts, win rate of a, its bootstrap 95% interval, and how the evaluator behaved."""
    points = np.array([POINTS[o] for o in outcomes])
    n = len(points)
    rng = np.random.default_rng(seed)
    means = points[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    read = [v for v in verdicts if v is not None]
    return {
        "games": n,
        "wins": outcomes.count("a"),
        "ties": outcomes.count("tie"),
        "losses": outcomes.count("b"),
        "win_rate": round(float(points.mean()), 6),
        "win_rate_ci95_low": round(float(low), 6),
        "win_rate_ci95_high": round(float(high), 6),
        "decisive_rate": round((n - outcomes.count("tie")) / n, 6),
        "first_position_rate": round(read.count("A") / len(read), 6) if read else None,
        "verdict_parse_failures": len(verdicts) - len(read),
    }
