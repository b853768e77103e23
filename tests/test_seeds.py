"""Stage seeds come from one table (srlm_core/seeds.py)."""

from srlm_core.seeds import OFFSETS, stage_seed


def test_the_loop_stages_of_one_run_never_share_a_stream():
    loop = ["prompts", "candidates", "judge"]
    seeds = {stage_seed(1234, stage, t) for stage in loop for t in range(1, 30)}
    assert len(seeds) == len(loop) * 29
    assert {stage_seed(1234, s) for s in OFFSETS if s not in loop} & seeds == set()


def test_the_offsets_stages_have_always_used():
    # a change here changes every output downstream of the stage (tests/pinned.py would show it)
    assert [stage_seed(1234, s, 1) - 1234 for s in ("prompts", "candidates", "judge")] == [1000, 1001, 1002]
    assert {s: stage_seed(0, s) for s in ("eft", "answers", "rm_eval", "h2h")} == {
        "eft": 7, "answers": 7, "rm_eval": 9, "h2h": 11}
