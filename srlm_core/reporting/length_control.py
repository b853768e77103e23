"""Length-controlled readings of a matchup: what the comparison says once the answers' length
difference is taken out, as AlpacaEval 2's length-controlled win rate does.

A judge that rewards length turns longer answers into higher scores and more wins, and DPO on
that judge's pairs makes answers longer (the paper's M1 -> M3: 1,092 -> 2,552 characters). Both
readings below regress the per-prompt result on the per-prompt length difference d = (characters
of a's answer - characters of b's) / 100 and report the result predicted at d = 0:

  score_diff_lc    least squares  diff_i = alpha + beta d_i  (diff_i: pointwise score a - b);
                   alpha, the score difference between equally long answers.
  win_rate_lc      logistic  P(a wins game i) = sigmoid(theta + phi tanh(d_i / s)), fitted to the
                   game points (1 win, 1/2 tie, 0 loss) by maximum likelihood with a small ridge
                   penalty (AlpacaEval 2's form; s: the standard deviation of d, so tanh bounds the
                   length term); sigmoid(theta), the win rate between equally long answers.

Each with a 95% percentile interval from refitting on prompts resampled with replacement, and
the fitted length slope (beta per 100 characters; phi) beside it. With no length difference at
all (every d = 0) the length term is dropped and the readings equal the raw ones.
"""

from __future__ import annotations

import numpy as np

RIDGE = 0.1          # on phi and theta: keeps the fit finite when a wins (or loses) every game
NEWTON_STEPS = 50


def length_differences(chars_a: list[int], chars_b: list[int]) -> np.ndarray:
    return (np.array(chars_a, dtype=float) - np.array(chars_b, dtype=float)) / 100.0


def _ols(y: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    if np.ptp(d) == 0:
        return float(y.mean()), 0.0
    beta = float(np.cov(d, y, bias=True)[0, 1] / d.var())
    return float(y.mean() - beta * d.mean()), beta


def _logistic(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """(theta, phi) maximising sum y log p + (1 - y) log (1 - p) - RIDGE (theta^2 + phi^2) / 2."""
    design = np.column_stack([np.ones_like(x), x])
    w = np.zeros(2)
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-design @ w))
        grad = design.T @ (y - p) - RIDGE * w
        hess = design.T @ (design * (p * (1 - p))[:, None]) + RIDGE * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w += step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def _interval(fit, y: np.ndarray, d: np.ndarray, resamples: int, seed: int,
              groups: list | None = None) -> tuple[float, float]:
    """Percentile interval of fit(y, d) over resamples of the items, or of whole `groups` (one label per item)
    where items of a group are not independent."""
    rng = np.random.default_rng(seed)
    units = [np.array([i]) for i in range(len(y))] if groups is None else \
        [np.flatnonzero(np.array(groups) == g) for g in dict.fromkeys(groups)]
    values = []
    for picks in rng.integers(0, len(units), size=(resamples, len(units))):
        index = np.concatenate([units[u] for u in picks])
        values.append(fit(y[index], d[index]))
    low, high = np.percentile(values, [2.5, 97.5])
    return round(float(low), 6), round(float(high), 6)


def score_difference(diffs: list[float], d: np.ndarray, *, resamples: int, seed: int,
                     groups: list | None = None) -> dict:
    """The pointwise score difference a - b at equal length, with its interval (over `groups` when given) and
    the length slope."""
    y = np.array(diffs, dtype=float)
    alpha, beta = _ols(y, d)
    low, high = _interval(lambda yy, dd: _ols(yy, dd)[0], y, d, resamples, seed, groups)
    return {"score_diff_lc": round(alpha, 6), "score_diff_lc_ci95_low": low, "score_diff_lc_ci95_high": high,
            "score_length_slope": round(beta, 6)}


def win_rate(points: list[float], d: np.ndarray, *, resamples: int, seed: int) -> dict:
    """The win rate of a at equal length (ties 1/2), with its interval and the fitted length term."""
    y = np.array(points, dtype=float)
    scale = d.std()

    def fit(yy: np.ndarray, dd: np.ndarray) -> tuple[float, float]:
        if scale == 0:
            return float(np.log(yy.mean() + 1e-9) - np.log(1 - yy.mean() + 1e-9)), 0.0
        return _logistic(yy, np.tanh(dd / scale))

    theta, phi = fit(y, d)
    sigmoid = lambda t: 1.0 / (1.0 + np.exp(-t))  # noqa: E731
    low, high = _interval(lambda yy, dd: sigmoid(fit(yy, dd)[0]), y, d, resamples, seed)
    return {"win_rate_lc": round(float(sigmoid(theta)), 6), "win_rate_lc_ci95_low": low,
            "win_rate_lc_ci95_high": high, "win_length_term": round(phi, 6)}
