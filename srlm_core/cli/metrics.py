"""`srlm metrics`: every model's training, reward-modelling, instruction-following and head-to-head
metrics in one view."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..reporting.summary import collect, interval_text, preference_text
from .output import print_json

MODEL_COLUMNS = [("model", "model"), ("kind", "kind"), ("steps", "steps"), ("final_loss", "loss"),
                 ("pairwise_accuracy", "RM pair acc"), ("exact_match", "exact"), ("spearman", "spearman"),
                 ("kendall", "kendall"), ("top_scored_5", "top=5"), ("parse_failure_rate", "parse fail"),
                 ("answer_chars", "answer chars")]
IF_COLUMNS = [("prompt_accuracy", "prompt-level [95% CI]"), ("instruction_accuracy", "instruction-level [95% CI]")]


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def metrics(
    root: Path = typer.Option(Path("."), "--root", help="Repository root of the run."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print every model's metrics (training, reward modelling, answer length, verifiable instructions) and every
    head-to-head result.

    Example: srlm metrics --json
    """
    summary = collect(root)
    if as_json:
        print_json({k: summary[k] for k in ("models", "matchups")})
        return
    console = Console()
    console.width = max(console.width, 150)   # a pipe reports 80 columns, too narrow for the table
    table = Table(*(title for _, title in MODEL_COLUMNS), title="models")
    for row in summary["models"]:
        table.add_row(*(_cell(row.get(key)) for key, _ in MODEL_COLUMNS))
    console.print(table)
    followed = Table("model", *(title for _, title in IF_COLUMNS),
                     title="verifiable instructions (share followed, checked by code)")
    for row in summary["models"]:
        followed.add_row(row["model"], *(interval_text(row, key) for key, _ in IF_COLUMNS))
    console.print(followed)
    games = Table("matchup", "a", "b", "win", "tie", "loss", "win rate [95% CI]", "first-position rate",
                  "mean preference [95% CI]", "evaluator", title="head to head (win rate of a; ties count 1/2)")
    for m in summary["matchups"]:
        games.add_row(m["matchup"], m["a"], m["b"], str(m["wins"]), str(m["ties"]), str(m["losses"]),
                      f"{m['win_rate']:.3f} [{m['win_rate_ci95_low']:.3f}, {m['win_rate_ci95_high']:.3f}]",
                      _cell(m.get("first_position_rate")), preference_text(m), m["evaluator"])
    console.print(games)
