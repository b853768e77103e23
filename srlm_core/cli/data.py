"""`srlm data ...`: look at input data before running the pipeline."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InputError
from ..inputs.conversations import apply_filters, check_structure, counts
from ..inputs.oasst import read_messages
from ..params import DataParams
from ..steps.seed import filters_from
from .output import print_json

app = typer.Typer(help="Inspect OpenAssistant input data.", no_args_is_help=True)


@app.command("stats")
def stats(
    path: Path = typer.Argument(..., help="Flat or nested oasst export (.jsonl, .jsonl.gz, .parquet) or a folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Counts after the default filters (English, not deleted, not failed review, not synthetic).

    Example: srlm data stats data/seed/oasst_seed.messages.jsonl --json
    """
    messages = read_messages(path)
    complete, _ = check_structure(messages, path)
    kept, dropped = apply_filters(complete, filters_from(DataParams()))
    if not kept:
        raise InputError(path, None, f"no messages left after the default filters (dropped: {dict(dropped)})")
    result = counts(kept)
    if as_json:
        print_json(result)
    else:
        for key, value in result.items():
            print(f"{key:>14}: {value}")
