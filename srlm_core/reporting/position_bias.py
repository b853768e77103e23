"""Whether an evaluator's position bias leaves its head-to-head games anything to say.

The first-position rate r is the share of readable verdicts naming Response A (0.5: no bias).
A game is decisive only when its two orders name different positions, so at most 2(1 - r) of
the games can be decisive and the win rate cannot move more than 1 - r from 0.5 (for r >= 0.5;
r < 0.5, a bias to the second position, mirrors it). An evaluator past the threshold
(evaluation.evaluator.max_first_position_rate) makes every matchup look like a near-tie whatever
the answers, so its games are reported as uninformative rather than as a result.

The rate's 95% interval resamples games (a game's two verdicts share its answers, so games are
the unit). The gate fires only when that interval and the exact (Clopper-Pearson) 95% interval
over the verdicts are both wholly past the threshold. The bootstrap alone is too narrow for a
handful of verdicts, a few games resampled taking only a few values: until 2026-12-03 eight
identical verdicts gave the single point [1, 1] (the bootstrap now gives the exact interval when
every verdict agrees), and four calibration games failed an evaluator at the 0.75 threshold one
time in ten. The exact interval needs 13 identical verdicts to pass 0.75 (0.025 ** (1/13) =
0.753), so 7 games, and an evaluator at the threshold fails by chance at most 2.5% of the time.
"""

from __future__ import annotations

from typing import Sequence

from scipy.stats import binomtest

from .rm_metrics import group_bootstrap


def check(verdict_pairs: Sequence[tuple[str | None, str | None]], *, max_rate: float, resamples: int,
          seed: int) -> dict:
    """verdict_pairs: per game (verdict in order ab, verdict in order ba), each "A", "B" or None."""
    per_game = [(sum(v is not None for v in pair), sum(v == "A" for v in pair)) for pair in verdict_pairs]
    read, first = sum(n for n, _ in per_game), sum(a for _, a in per_game)
    low, high = group_bootstrap(per_game, resamples=resamples, seed=seed)
    rate = first / read if read else None
    exact = binomtest(first, read).proportion_ci(0.95) if read else None
    past = lambda lo, hi: lo > max_rate or hi < 1 - max_rate  # noqa: E731
    if rate is None:
        reason = "no verdict could be read"
    elif past(low, high) and past(exact.low, exact.high):
        position, share = ("first", rate) if rate >= 0.5 else ("second", 1 - rate)
        reason = (f"evaluator picks the {position} position in {share:.0%} of verdicts (first-position rate "
                  f"{rate:.3f}, 95% CI [{low:.3f}, {high:.3f}] over {read} verdicts, exact [{exact.low:.3f}, "
                  f"{exact.high:.3f}]; evaluation.evaluator.max_first_position_rate {max_rate})")
    else:
        reason = None
    return {"first_position_rate": None if rate is None else round(rate, 6),
            "first_position_rate_ci95_low": low, "first_position_rate_ci95_high": high,
            "informative": reason is None, "uninformative_reason": reason}
