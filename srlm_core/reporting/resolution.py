"""How small a difference a run of this size could detect, per measure.

From a measure's 95% bootstrap interval [low, high] its standard error is about
(high - low) / 3.92. A difference is detected with 80% power at two-sided alpha 0.05 when it is
(1.96 + 0.84) standard errors of the compared quantity:
  against no difference  a measure that is itself a comparison (a win rate or an implicit-reward
                         accuracy against 0.5, a paired score difference against 0):
                         2.80 x SE, about 0.71 x the interval's width;
  between models         two models' values of a per-model measure (RM accuracy, a parse rate),
                         taken as independent: 2.80 x sqrt(2) x SE, about 1.01 x the width. The
                         models are measured on the same items, which usually correlates them, so
                         this errs large: the run may detect somewhat smaller differences.
The width is the median over the models (or matchups) that have the measure. A zero-width interval
(every resample the same) measures no spread and is left out: it would claim any difference detectable.
"""

from __future__ import annotations

import math
import statistics

Z = 1.959964 + 0.841621   # two-sided alpha 0.05, power 0.8
FACTOR = {"against no difference": Z / 3.919928, "between models": Z * math.sqrt(2) / 3.919928}


def detectable(widths: list[float], comparison: str) -> float | None:
    """The smallest difference detectable from intervals of these widths (None without any)."""
    return FACTOR[comparison] * statistics.median(widths) if widths else None


def rows(measures: list[tuple[str, str, list[dict], str, str]]) -> list[dict]:
    """measures: (label, unit, rows, key, comparison); rows carry `<key>_ci95_low/high`. One row per
    measure: its label, what it resamples, the median interval width and the detectable difference."""
    out = []
    for label, unit, found, key, comparison in measures:
        widths = [width for r in found if r and r.get(f"{key}_ci95_low") is not None
                  and r.get(f"{key}_ci95_high") is not None
                  and (width := r[f"{key}_ci95_high"] - r[f"{key}_ci95_low"]) > 0]
        value = detectable(widths, comparison)
        out.append({"measure": label, "resampled": unit, "comparison": comparison,
                    "median_ci95_width": statistics.median(widths) if widths else None,
                    "detectable_difference": None if value is None else round(value, 4)})
    return out
