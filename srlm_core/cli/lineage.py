"""`srlm lineage` and `srlm verify`: where a model came from, and whether bytes still match."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import SrlmError
from ..log import lineage as lib
from .output import print_json


def lineage(
    model: Path = typer.Argument(..., help="A model folder, e.g. models/M1."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The chain from a model back to the base model M0, with content hashes.

    Example: srlm lineage models/M0 --json
    """
    steps = lib.chain(model)
    if as_json:
        print_json(steps)
        return
    for step in steps:
        data = f" <- {step['training_data']} {step['training_data_hash'][:12]}" if step["training_data"] else ""
        print(f"{step['name']} ({step['kind']}) {step['hash'][:12]}{data}")


def verify(
    models: Path = typer.Option(Path("models"), "--models", help="Folder of model folders."),
    events: Path = typer.Option(Path("data/events"), "--events", help="Event-log root folder."),
    lock: Path = typer.Option(None, "--lock", help="dvc.lock whose model and event outputs must exist "
                              "[default: dvc.lock, if there is one]."),
) -> None:
    """Re-hash every model file and event file, and check that what the lineage (manifests,
    dvc.lock) says exists does; exit 1 naming each problem, or when a folder is missing or empty.

    Example: srlm verify
    """
    if lock is None and Path("dvc.lock").is_file():
        lock = Path("dvc.lock")
    elif lock is not None and not lock.is_file():
        raise SrlmError(f"{lock}: no such file (--lock)")
    unchecked = lib.missing_folders(models, events)
    checked, problems = lib.verify(models, events, lock)
    for problem in unchecked:
        typer.echo(f"NOT CHECKED {problem}", err=True)
    for problem in problems:
        typer.echo(f"MISMATCH {problem}", err=True)
    if unchecked or problems:
        raise typer.Exit(1)
    typer.echo(f"ok: {checked} files match their recorded sha256")
