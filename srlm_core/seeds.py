"""Each stage's random stream, derived from the run's `seed` in one place.

A stage of iteration t samples with seed + 1000 t + its offset, so no two stages of a run share a
stream by accident. The offsets are what the stages have always used (changing one changes every
output downstream); eft and answers share 7, and h2h shares 11 with the answers of checkpoint
selection: different models on different prompts, so their draws are unrelated anyway.
"""

from __future__ import annotations

OFFSETS = {
    "prompts": 0,
    "candidates": 1,
    "judge": 2,
    "meta": 3,
    "eft": 7,
    "answers": 7,
    "rm_eval": 9,
    "rm_eval_text": 10,
    "h2h": 11,
    "selection_answers": 11,
    "selection_judge": 12,
    "scores": 13,
    "instructions": 14,
}


def stage_seed(seed: int, stage: str, iteration: int = 0) -> int:
    """The seed `stage` samples with in `iteration` (0: the stages outside the loop)."""
    return seed + 1000 * iteration + OFFSETS[stage]
