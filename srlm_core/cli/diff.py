"""`srlm diff`: what changed between two iterations, or two runs, of one event-log table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ..reporting.diff import STATS
from ..reporting.diff import diff as compute
from .output import console as output_console
from .output import print_json


def diff(
    a: str = typer.Argument(..., help="Side A: <table>@<partition> (pairs@1, rm_judgements@M1) or a folder."),
    b: str = typer.Argument(..., help="Side B, of the same table; a folder may come from another run."),
    events: Path = typer.Option(Path("data/events"), "--events", help="Event-log root for <table>@<partition>."),
    examples: int = typer.Option(3, "--examples", min=0, help="Show up to this many rows added and removed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (keys below)."),
) -> None:
    """Compare two partitions of one table: rows, prompts, scores, lengths, changes.

    A side is <table>@<partition> under --events, or a folder: a partition
    (data/events/pairs/iteration=1), a table folder, or another run's folder.
    Prompts match by prompt text (the row's own, or joined from the run's
    prompts table), else by prompt_id, group_id, guard (guard_checks) or row id. Pairs get margin = chosen_score -
    rejected_score and, joined from candidates, chosen/rejected lengths; the rows per
    rule (best_vs_worst, length_controlled) and tolerance that chose them.

    --json keys: table; a, b: {label, path, rows};
    overlap: {key, only_a, only_b, both, jaccard};
    scores, lengths: {column: {a, b, delta_mean}} (guard_checks: {column[guard]: ...}), each side {count, nulls,
    mean, std, min, p25, median, p75, max}; labels: {column: {a, b}}, each side
    {value: rows} (pairs: rule, tolerance; skipped_pairs, rejected_prompts:
    reason); added (key only in B), removed
    (key only in A): {rows, examples}, example text clipped to 80 characters.

    Example: srlm diff pairs@1 pairs@2 --json
    Example: srlm diff instruction_answers@M1 instruction_answers@M2
    Example: srlm diff reply_logprobs@M1 reply_logprobs@M2
    Example: srlm diff guard_checks@1 guard_checks@2
    """
    result = compute(a, b, events, examples)
    if as_json:
        print_json(result)
        return
    # No markup: prompts and paths may contain [brackets].
    console = output_console(highlight=False)
    console.print(f"table {result['table']}")
    for name, change in (("a", ""), ("b", f" ({result['b']['rows'] - result['a']['rows']:+d})")):
        side = result[name]
        where = side["path"] if side["label"] == side["path"] else f"{side['label']} ({side['path']})"
        console.print(f"{name.upper()}: {where}, {side['rows']} rows{change}")
    o = result["overlap"]
    jaccard = "-" if o["jaccard"] is None else f"{o['jaccard']:.2f}"
    console.print(f"prompts by {o['key']}: {o['only_a']} only in A, {o['only_b']} only in B, "
                  f"{o['both']} in both (Jaccard {jaccard})")
    if o["key"] == "prompt_id":
        console.print("  (prompt ids hash the iteration, so they never match across iterations; "
                      "give folders inside an event log with its prompts table to match by prompt text)")
    for title, block in (("scores", result["scores"]), ("lengths (characters)", result["lengths"])):
        if block:
            console.print(_stats_table(title, block))
    for column, sides in result["labels"].items():
        console.print(f"{column}: " + "; ".join(
            f"{name.upper()} " + (", ".join(f"{value} {rows}" for value, rows in counts.items()) or "no rows")
            for name, counts in sides.items()))
    for title, side in (("added (only in B)", result["added"]), ("removed (only in A)", result["removed"])):
        console.print(f"{title}: {side['rows']} rows" + (", e.g." if side["examples"] else ""))
        for row in side["examples"]:
            _print_example(console, row)


def _stats_table(title: str, block: dict) -> Table:
    # Short headers and one-space gaps keep the table whole in an 80-column terminal.
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0),
                  pad_edge=False)
    table.add_column("column", no_wrap=True)
    table.add_column("")
    for header in ("n", "null", "mean", "std", "min", "p25", "med", "p75", "max", "Δmean"):   # as in STATS
        table.add_column(header, justify="right", no_wrap=True)
    for column, sides in block.items():
        table.add_row(column, "A", *(_number(sides["a"][s]) for s in STATS), "")
        table.add_row("", "B", *(_number(sides["b"][s]) for s in STATS),
                      "-" if sides["delta_mean"] is None else f"{sides['delta_mean']:+.2f}")
    return table


def _print_example(console: Console, row: dict) -> None:
    """The key, then ids (shortened) and numbers on one line, then each text on its own."""
    texts = {k: v for k, v in row.items() if k != "key" and isinstance(v, str) and not k.endswith("_id")}
    fields = "  ".join(f"{k}={v[:12] if k.endswith('_id') else _number(v)}"
                       for k, v in row.items() if k != "key" and k not in texts)
    for line in (f"  - {row['key']}", f"    {fields}", *(f"    {k}: {v}" for k, v in texts.items())):
        console.print(line, no_wrap=True, overflow="ellipsis")


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
