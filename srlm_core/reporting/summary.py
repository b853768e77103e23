"""Everything a run measured, gathered from its files: per model the training,
reward-modelling, implicit-reward, pointwise and verifiable-instruction metrics and answer
length, per matchup the head-to-head result, per iteration the statistics of the `stats`
stage and the checks of its guards, and the lineage chain. Read by `srlm metrics` and `srlm report`; missing files
(stages not run yet) give empty fields.
"""

from __future__ import annotations

from pathlib import Path

from ..log import lineage
from ..params import load_params
from ..storage import read_json

TRAIN_KEYS = ("examples", "steps", "final_loss", "final_rewards_accuracies", "final_rewards_margins", "pairs_loss",
              "pairs_reward_accuracy", "pairs_reward_margin")
IMPLICIT_KEYS = ("reference", "trees", "pairs", "implicit_accuracy_ref", "implicit_accuracy_ref_ci95_low",
                 "implicit_accuracy_ref_ci95_high", "implicit_tie_rate_ref", "implicit_margin_ref",
                 "implicit_accuracy_sft", "implicit_accuracy_sft_ci95_low", "implicit_accuracy_sft_ci95_high",
                 "implicit_tie_rate_sft", "implicit_margin_sft", "implicit_margin_lc_ref", "implicit_margin_lc_ref_ci95_low", "implicit_margin_lc_ref_ci95_high",
                 "implicit_length_slope_ref", "implicit_margin_lc_sft", "implicit_margin_lc_sft_ci95_low",
                 "implicit_margin_lc_sft_ci95_high", "implicit_length_slope_sft",
                 "likelihood_accuracy", "likelihood_accuracy_per_token")
RM_KEYS = ("pairwise_accuracy", "pairwise_accuracy_ci95_low", "pairwise_accuracy_ci95_high", "exact_match", "spearman",
           "kendall", "top_scored_5", "parse_failure_rate", "text_parse_rate", "text_parse_rate_ci95_low",
           "text_parse_rate_ci95_high")
STATS_KEYS = ("answer_chars", "answer_tokens", "parent", "answers_compared", "answers_changed")
SCORE_KEYS = ("score_mean", "score_mean_ci95_low", "score_mean_ci95_high", "judge")
IF_KEYS = ("prompt_accuracy", "prompt_accuracy_ci95_low", "prompt_accuracy_ci95_high", "instruction_accuracy",
           "instruction_accuracy_ci95_low", "instruction_accuracy_ci95_high")


def collect(root: Path | str = ".") -> dict:
    root = Path(root)
    params = load_params(root / "params.yaml")
    metrics, stats = root / "metrics", read_json(root / "reports" / "stats.json")
    names = list(dict.fromkeys(["SFT", "M1", *params.iterations, *params.evaluation.models]))
    models = []
    for name in names:
        train, rm = read_json(metrics / name / "train.json"), read_json(metrics / name / "rm_eval.json")
        scores = read_json(metrics / name / "scores.json")
        followed = read_json(metrics / name / "instructions.json")
        manifest = root / "models" / name / lineage.MANIFEST
        record = lineage.read_manifest(manifest.parent) if manifest.is_file() else {}
        answers = stats.get("models", {}).get(name, {})
        implicit = read_json(metrics / name / "implicit.json")
        models.append({"model": name, "kind": record.get("kind"), "hash": record.get("hash"),
                       **{k: train.get(k) for k in TRAIN_KEYS}, **{k: rm.get(k) for k in RM_KEYS},
                       "implicit": {k: implicit.get(k) for k in IMPLICIT_KEYS} if implicit else None,
                       **{k: answers.get(k) for k in STATS_KEYS}, **{k: scores.get(k) for k in SCORE_KEYS},
                       **{k: followed.get(k) for k in IF_KEYS}})
    matchups = [{"matchup": name, **read_json(metrics / "h2h" / f"{name}.json")} for name in params.evaluation.matchups]
    last = root / "models" / (list(params.iterations)[-1] if params.iterations else "M1")
    chain = lineage.chain(last) if (last / lineage.MANIFEST).is_file() else []
    return {"models": models, "matchups": [m for m in matchups if "games" in m],
            "iterations": stats.get("iterations", {}), "guards": guard_checks(metrics, params.iterations),
            "lineage": chain}


def guard_checks(metrics: Path, iterations: dict) -> list[dict]:
    """One row per check of each iteration's guards (metrics/guards/<model>.json), in iteration order."""
    rows = []
    for name in iterations:
        found = read_json(metrics / "guards" / f"{name}.json")
        rows += [{"iteration": found["iteration"], "model": name, "parent": found["parent"], "guard": guard, **check}
                 for guard, check in found.get("checks", {}).items()]
    return sorted(rows, key=lambda r: r["iteration"])


def interval_text(values: dict, key: str) -> str:
    """`0.612 [0.540, 0.680]`: a value and its 95% interval (`<key>_ci95_low`, `_high`), or `-` without one."""
    if values.get(key) is None:
        return "-"
    if values.get(f"{key}_ci95_low") is None:
        return f"{values[key]:.3f}"
    return f"{values[key]:.3f} [{values[f'{key}_ci95_low']:.3f}, {values[f'{key}_ci95_high']:.3f}]"


def preference_text(matchup: dict) -> str:
    """`0.512 [0.480, 0.545]`: a matchup's mean preference and its interval, or `-` without one."""
    if matchup.get("mean_preference") is None:
        return "-"
    return (f"{matchup['mean_preference']:.3f} [{matchup['mean_preference_ci95_low']:.3f}, "
            f"{matchup['mean_preference_ci95_high']:.3f}]")


def win_rate_text(matchup: dict) -> str:
    """The win rate with its interval, or why the games say nothing (position-biased evaluator)."""
    if matchup.get("informative") is False:
        skipped = matchup.get("games_skipped") or 0
        return f"uninformative: {matchup['uninformative_reason']}" + (f"; {skipped} games skipped" if skipped else "")
    return interval_text(matchup, "win_rate")


def score_diff_text(matchup: dict, key: str = "score_diff") -> str:
    """`+0.120 [0.030, 0.210]`: the paired score difference a - b (or its length-controlled
    reading, key score_diff_lc) and its interval, or `-`."""
    if matchup.get(key) is None:
        return "-"
    return f"{matchup[key]:+.3f} [{matchup[f'{key}_ci95_low']:+.3f}, {matchup[f'{key}_ci95_high']:+.3f}]"
