"""Shared output helpers for CLI commands: JSON, CSV and rich tables."""

from __future__ import annotations

import csv
import json
import sys

from rich.console import Console
from rich.table import Table


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def print_rows(columns: list[str], rows: list[tuple], fmt: str) -> None:
    if fmt == "json":
        print_json([dict(zip(columns, row)) for row in rows])
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        Console().print(table)
