"""Shared output helpers for CLI commands: JSON, CSV and rich tables."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter

from rich.console import Console
from rich.table import Table

from ..errors import SrlmError


def console(**options) -> Console:
    """A console for data: cells and labels print as written, never read as rich markup ("[/]", "[red]")."""
    return Console(markup=False, **options)


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def print_rows(columns: list[str], rows: list[tuple], fmt: str) -> None:
    if fmt == "json":
        repeated = sorted(name for name, n in Counter(columns).items() if n > 1)
        if repeated:   # an object keeps one value per name: the others would vanish without a word
            raise SrlmError(f"the result has more than one column named {', '.join(map(repr, repeated))}; JSON needs "
                             "distinct names: alias them (select p.stage as pair_stage, c.stage as candidate_stage ...)")
        print_json([dict(zip(columns, row)) for row in rows])
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        console().print(table)
