"""The loop on the real SmolLM2-135M (offline, from the packaged GGUF), at minimal scale, with the
follow-ups of docs/meta-judge.md and docs/guards.md on: meta-judging, length-controlled pairs, guards."""

from __future__ import annotations

import json

import pytest
from pipeline import clone_repo, dvc, srlm

MINIMAL = {
    "sft": {"batch_size": 1, "grad_accum": 1, "max_steps": 1, "max_length": 384},
    "eft": {"max_groups": 2, "min_examples": 1, "fallback": "unfiltered"},
    "prompts": {"num_prompts": 2, "requests_per_round": 4, "max_new_tokens": 32},
    "candidates": {"n": 2, "max_new_tokens": 24},
    # two judgements per candidate: the meta-judge compares them
    "judge": {"samples": 2, "max_new_tokens": 16, "max_prompt_tokens": 64, "max_response_tokens": 64},
    # judge pairs carry the judge prompt (about 400 tokens here), longer than actor pairs
    "dpo": {"batch_size": 2, "grad_accum": 1, "max_steps": 1, "max_length": 512},
    "meta": {"enabled": True, "candidates": 2, "max_new_tokens": 8},
    # two prompts: keep any gap so DPO has pairs to run on
    "pairs": {"min_margin": 0.0, "length_control": {"enabled": True}},
    "iterations": {"M2": {"prev": "M1", "t": 1}},
    "evaluation": {"models": ["SFT", "M1", "M2"], "rm_max_groups": 1,
                   "answers": {"max_prompts": 2, "max_new_tokens": 24},
                   "instructions": {"max_prompts": 2, "max_new_tokens": 24},
                   # one iteration: the implicit-reward stages name only the models this run builds
                   "implicit": {"models": ["M0", "SFT", "M1", "M2"], "references": {"SFT": "M0", "M1": "M0", "M2": "M1"},
                                "max_groups": 2},
                   "matchups": {"M2_vs_M1": {"a": "M2", "b": "M1"}}},
}


@pytest.mark.slow
def test_real_model_runs_the_loop(tmp_path):
    repo = clone_repo(tmp_path, MINIMAL)
    dvc(repo, "repro")
    chain = json.loads(srlm(repo, "lineage", "models/M2", "--json").stdout)
    assert [c["name"] for c in chain] == ["M2", "M1", "M0"]
    rows = json.loads(srlm(repo, "sql", "select count(*) as n, count(score) as scored from judgements",
                           "--format", "json").stdout)
    assert rows[0]["n"] == rows[0]["scored"] > 0
    pairs = json.loads(srlm(repo, "sql", "select count(*) as n from pairs", "--format", "json").stdout)
    skipped = json.loads(srlm(repo, "sql", "select count(*) as n from skipped_pairs", "--format", "json").stdout)
    assert pairs[0]["n"] + skipped[0]["n"] == 2
    rm = json.loads((repo / "metrics" / "M2" / "rm_eval.json").read_text())
    assert rm["groups"] == 1 and rm["parse_failure_rate"] == 0
    h2h = json.loads((repo / "metrics" / "h2h" / "M2_vs_M1.json").read_text())
    assert h2h["games"] == 2 and h2h["evaluator"] == "local:M0"
    rules = json.loads(srlm(repo, "sql", "select rule, count(*) as n from pairs group by rule", "--format", "json").stdout)
    assert rules == [{"rule": "length_controlled", "n": pairs[0]["n"]}]
    meta = json.loads((repo / "data/meta/M1/summary.json").read_text())
    train = json.loads((repo / "metrics/M2/train.json").read_text())
    assert meta["enabled"] and meta["comparisons"] == 4   # two candidates, their two judgements, both orders
    assert train["judge_pairs"] == min(meta["judge_pairs"], train["actor_pairs"]) > 0
    assert train["judge_pairs_too_long"] == 0
    checks = json.loads(srlm(repo, "sql", "select guard, outcome from guard_checks where model = 'M2'",
                             "--format", "json").stdout)
    assert checks and {c["outcome"] for c in checks} <= {"ok", "warn", "skipped"}
    assert "ok:" in srlm(repo, "verify").stdout
