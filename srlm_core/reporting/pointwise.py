"""Pointwise scores of held-out answers by one fixed judge, and paired differences between models.

A model's score is the mean over prompts of its answers' scores (an answer's score: the mean of
the judge's samples), with a 95% interval from resampling the prompts. Two models answered the
same prompts, so they are compared prompt by prompt: the difference a - b per prompt, its mean
with a 95% interval over resampled prompts, and the shares of prompts where a (or b) scores
higher. Pairing removes the prompts' own difficulty from the comparison, which is why the
interval of the difference is much narrower than the two scores' intervals suggest.
"""

from __future__ import annotations

import numpy as np

from ..errors import SrlmError
from .win_rate import bootstrap_mean


def model_score(scores: list[float], *, resamples: int, seed: int) -> dict:
    """Mean of the per-prompt scores and its bootstrap 95% interval over prompts."""
    values = np.array(scores, dtype=float)
    if not len(values):
        raise SrlmError("no scored answers to summarise")
    low, high = bootstrap_mean(values, resamples, seed)
    return {"answers": len(values), "score_mean": round(float(values.mean()), 6),
            "score_mean_ci95_low": low, "score_mean_ci95_high": high}


def paired(a: dict[str, float], b: dict[str, float], *, resamples: int, seed: int) -> dict:
    """a, b: prompt id -> score. The per-prompt difference a - b over the prompts both scored."""
    shared = sorted(set(a) & set(b))
    if not shared:
        raise SrlmError("the two models have no scored prompt in common")
    diff = np.array([a[p] - b[p] for p in shared])
    low, high = bootstrap_mean(diff, resamples, seed)
    return {"score_prompts": len(shared),
            "score_a": round(float(np.mean([a[p] for p in shared])), 6),
            "score_b": round(float(np.mean([b[p] for p in shared])), 6),
            "score_diff": round(float(diff.mean()), 6), "score_diff_ci95_low": low, "score_diff_ci95_high": high,
            "score_a_higher": round(float((diff > 0).mean()), 6), "score_b_higher": round(float((diff < 0).mean()), 6)}
