"""`srlm sql`: read-only DuckDB SQL over the event log."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from ..log.query import (
    MAX_ROWS,
    MEMORY_LIMIT,
    TIMEOUT_S,
    check_events_root,
    current_views_sql,
    run_query,
)
from .output import print_rows


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def sql(
    query: str = typer.Argument(None, help="SQL (SELECT/EXPLAIN only); '-' reads it from stdin."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    max_rows: int = typer.Option(10_000, "--max-rows", min=1, max=MAX_ROWS, help="Print at most this many rows."),
    events: Path = typer.Option(Path("data/events"), "--events", help="Event-log root folder."),
    views: bool = typer.Option(False, "--views", help="Print the view definitions and exit."),
    timeout: int = typer.Option(TIMEOUT_S, "--timeout", min=1, help="Stop the query after this many seconds."),
    memory_limit: str = typer.Option(MEMORY_LIMIT, "--memory-limit",
                                     help="DuckDB's memory limit, e.g. 2GB or 500MB; a query needing more fails."),
) -> None:
    """Query the event log: a view per event table (prompts, candidates, judgements, pairs, h2h_games, ...; --views lists them).

    Example: srlm sql "select iteration, source, count(*) from prompts group by all"
    """
    if views:
        print(current_views_sql(check_events_root(events)), end="")
        return
    if query is None:
        raise typer.BadParameter("give a query, '-' for stdin, or --views")
    if query == "-":
        query = sys.stdin.read()
    try:
        result = run_query(query, events, max_rows, timeout, memory_limit)
    except KeyboardInterrupt:
        print("interrupted: query stopped (Ctrl-C)", file=sys.stderr)
        raise typer.Exit(130) from None
    print_rows(result.columns, result.rows, fmt.value)
    if result.truncated:
        print(f"(stopped at {max_rows} rows; raise --max-rows or add LIMIT)", file=sys.stderr)
