"""Head-to-head outcomes and the win rate with a bootstrap interval.

A game is played in both orders. The outcome is model a (or b) only when both orders
prefer it; when the orders disagree, or a verdict could not be read, the game is a tie.
Win rate = (wins + ties / 2) / games; its 95% interval is the 2.5th and 97.5th
percentile of the win rate over games resampled with replacement (seeded).

When the evaluator gives probabilities (the local one), each game also has a
position-debiased preference for a: the mean of P(a's answer) over the two orders,
(P_ab(A) + P_ba(B)) / 2. Its mean over games, with the same kind of interval, still
separates two models when a position-biased evaluator makes every game a tie.
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


def preference(p_a_ab: float | None, p_a_ba: float | None) -> float | None:
    """How much the evaluator prefers a's answer, averaged over both positions (None without probabilities)."""
    return None if p_a_ab is None or p_a_ba is None else (p_a_ab + 1 - p_a_ba) / 2


def bootstrap_mean(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """2.5th and 97.5th percentile of the mean of `values` resampled with replacement (seeded)."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return round(float(low), 6), round(float(high), 6)


def summarise(outcomes: Sequence[str], verdicts: Sequence[str | None], *, resamples: int, seed: int,
              preferences: Sequence[float | None] = ()) -> dict:
    """Counts, win rate of a, its bootstrap 95% interval, and how the evaluator behaved."""
    points = np.array([POINTS[o] for o in outcomes])
    n = len(points)
    low, high = bootstrap_mean(points, resamples, seed)
    read = [v for v in verdicts if v is not None]
    scored = preferences and all(p is not None for p in preferences)
    prefs = np.array(preferences, dtype=float) if scored else None
    pref_low, pref_high = bootstrap_mean(prefs, resamples, seed) if scored else (None, None)
    return {
        "games": n,
        "wins": outcomes.count("a"),
        "ties": outcomes.count("tie"),
        "losses": outcomes.count("b"),
        "win_rate": round(float(points.mean()), 6),
        "win_rate_ci95_low": low,
        "win_rate_ci95_high": high,
        "decisive_rate": round((n - outcomes.count("tie")) / n, 6),
        "first_position_rate": round(read.count("A") / len(read), 6) if read else None,
        "verdict_parse_failures": len(verdicts) - len(read),
        "mean_preference": round(float(prefs.mean()), 6) if scored else None,
        "mean_preference_ci95_low": pref_low,
        "mean_preference_ci95_high": pref_high,
    }
