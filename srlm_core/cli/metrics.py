"""`srlm metrics`: every model's training, reward-modelling, implicit-reward, pointwise,
instruction-following and head-to-head metrics, and each iteration's guards, in one view."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..reporting.summary import collect, interval_text, preference_text, score_diff_text, win_rate_text
from .output import console as output_console
from .output import print_json

MODEL_COLUMNS = [("model", "model"), ("kind", "kind"), ("steps", "steps"), ("final_loss", "loss"),
                 ("pairs_loss", "loss on pairs"), ("pairs_reward_accuracy", "pair acc"),
                 ("answers_changed", "answers changed"), ("pairwise_accuracy", "RM pair acc [95% CI]"),
                 ("exact_match", "exact"), ("spearman", "spearman"), ("top_scored_5", "top=5"),
                 ("text_parse_rate", "text parse [95% CI]"), ("answer_chars", "answer chars"),
                 ("score_mean", "score [95% CI]")]
WITH_INTERVAL = {"pairwise_accuracy", "text_parse_rate", "score_mean"}
IF_COLUMNS = [("prompt_accuracy", "prompt-level [95% CI]"), ("instruction_accuracy", "instruction-level [95% CI]")]


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def metrics(
    root: Path = typer.Option(Path("."), "--root", help="Repository root of the run."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print every model's metrics (training, reward modelling, implicit reward, answer length, verifiable
    instructions), every head-to-head result and each iteration's guards.

    Example: srlm metrics --json
    """
    summary = collect(root)
    if as_json:
        print_json({k: summary[k] for k in ("models", "matchups", "guards")})
        return
    console = output_console()
    console.width = max(console.width, 190)   # a pipe reports 80 columns, too narrow for the table
    table = Table(*(title for _, title in MODEL_COLUMNS), title="models")
    for row in summary["models"]:
        table.add_row(*(interval_text(row, key) if key in WITH_INTERVAL else _cell(row.get(key))
                        for key, _ in MODEL_COLUMNS))
    console.print(table)
    implicit = Table("model", "reference", "vs reference [95% CI]", "vs SFT [95% CI]", "margin at equal length vs SFT",
                     "likelihood", "likelihood per token", "pairs", "trees",
                     title="implicit reward: human-preferred reply gains more (0.5 = no regard to preference; ties 1/2)")
    for row in summary["models"]:
        m = row["implicit"]
        if m:
            implicit.add_row(row["model"], m["reference"], interval_text(m, "implicit_accuracy_ref"),
                             interval_text(m, "implicit_accuracy_sft"),
                             interval_text(m, "implicit_margin_lc_sft"), _cell(m["likelihood_accuracy"]),
                             _cell(m["likelihood_accuracy_per_token"]), str(m["pairs"]), str(m["trees"]))
    console.print(implicit)
    followed = Table("model", *(title for _, title in IF_COLUMNS),
                     title="verifiable instructions (share followed, checked by code)")
    for row in summary["models"]:
        followed.add_row(row["model"], *(interval_text(row, key) for key, _ in IF_COLUMNS))
    console.print(followed)
    games = Table("matchup", "a", "b", "win", "tie", "loss", "win rate [95% CI]", "first-position rate",
                  "mean preference [95% CI]", "score a - b [95% CI]", "a higher", "at equal length [95% CI]",
                  "evaluator",
                  title="head to head (win rate of a; ties count 1/2; score a - b: pointwise, per prompt; "
                        "at equal length: a - b regressed on the length difference)")
    for m in summary["matchups"]:
        games.add_row(m["matchup"], m["a"], m["b"], str(m["wins"]), str(m["ties"]), str(m["losses"]),
                      win_rate_text(m), _cell(m.get("first_position_rate")), preference_text(m),
                      score_diff_text(m), _cell(m.get("score_a_higher")), score_diff_text(m, "score_diff_lc"),
                      m["evaluator"])
    console.print(games)
    checks = Table("iteration", "model", "parent", "guard", "value", "threshold", "outcome", "reason",
                   title="guards after each iteration (params.yaml guards; docs/guards.md)")
    for c in summary["guards"]:
        checks.add_row(str(c["iteration"]), c["model"], c["parent"], c["guard"], _cell(c["value"]),
                       _cell(c["threshold"]), c["outcome"], c["reason"])
    console.print(checks)
