"""`srlm report`: a self-contained HTML and Markdown summary of a run."""

from __future__ import annotations

from pathlib import Path

import typer

from ..reporting import report as lib


def report(
    root: Path = typer.Option(Path("."), "--root", help="Repository root of the run."),
    out: Path = typer.Option(Path("reports"), "--out", "-o", help="Folder for report.html and report.md."),
) -> None:
    """Write report.html (one file, opens offline) and report.md summarising models, games, lineage and plots.

    Example: srlm report && chromium reports/report.html
    """
    page, markdown = lib.write(root, out)
    typer.echo(page)
    typer.echo(markdown)
