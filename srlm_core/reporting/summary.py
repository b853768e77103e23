"""Everything a run measured, gathered from its files: per model the training,
reward-modelling and verifiable-instruction metrics and answer length, per matchup the
head-to-head result, per iteration the statistics of the `stats` stage, and the lineage
chain. Read by
`srlm metrics` and `srlm report`; missing files (stages not run yet) give empty fields.
"""

from __future__ import annotations

from pathlib import Path

from ..log import lineage
from ..params import load_params
from ..storage import read_json

TRAIN_KEYS = ("examples", "steps", "final_loss", "final_rewards_accuracies", "final_rewards_margins")
RM_KEYS = ("pairwise_accuracy", "pairwise_accuracy_ci95_low", "pairwise_accuracy_ci95_high", "exact_match", "spearman",
           "kendall", "top_scored_5", "parse_failure_rate")
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
        followed = read_json(metrics / name / "instructions.json")
        manifest = root / "models" / name / lineage.MANIFEST
        record = lineage.read_manifest(manifest.parent) if manifest.is_file() else {}
        answers = stats.get("models", {}).get(name, {})
        models.append({"model": name, "kind": record.get("kind"), "hash": record.get("hash"),
                       **{k: train.get(k) for k in TRAIN_KEYS}, **{k: rm.get(k) for k in RM_KEYS},
                       **{k: followed.get(k) for k in IF_KEYS},
                       "answer_chars": answers.get("answer_chars"), "answer_tokens": answers.get("answer_tokens")})
    matchups = [{"matchup": name, **read_json(metrics / "h2h" / f"{name}.json")} for name in params.evaluation.matchups]
    last = root / "models" / (list(params.iterations)[-1] if params.iterations else "M1")
    chain = lineage.chain(last) if (last / lineage.MANIFEST).is_file() else []
    return {"models": models, "matchups": [m for m in matchups if "games" in m],
            "iterations": stats.get("iterations", {}), "lineage": chain}


def interval_text(row: dict, key: str) -> str:
    """`0.325 [0.175, 0.475]`: a metric and its 95% interval, or `-` when it was not measured."""
    if row.get(key) is None:
        return "-"
    low, high = row[f"{key}_ci95_low"], row[f"{key}_ci95_high"]
    return f"{row[key]:.3f} [{low:.3f}, {high:.3f}]"


def preference_text(matchup: dict) -> str:
    """`0.512 [0.480, 0.545]`: a matchup's mean preference and its interval, or `-` without one."""
    if matchup.get("mean_preference") is None:
        return "-"
    return (f"{matchup['mean_preference']:.3f} [{matchup['mean_preference_ci95_low']:.3f}, "
            f"{matchup['mean_preference_ci95_high']:.3f}]")
