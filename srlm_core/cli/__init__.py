"""The `srlm` command. Each subcommand parses, calls the library, prints.

Run `srlm --help` for the list; every command has `--help` with an example.
"""

from __future__ import annotations

import sys

import typer

from ..errors import SrlmError
from . import data, diff, join, lineage, metrics, plots, report, serve, sql

app = typer.Typer(help="Self-Rewarding Language Models: query, inspect and verify a run.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.add_typer(data.app, name="data")
app.command("sql")(sql.sql)
app.command("lineage")(lineage.lineage)
app.command("verify")(lineage.verify)
app.command("metrics")(metrics.metrics)
app.command("plots")(plots.plots)
app.command("report")(report.report)
app.command("diff")(diff.diff)
app.command("join")(join.join)
app.command("serve")(serve.serve)


def main() -> None:
    try:
        app()
    except SrlmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
