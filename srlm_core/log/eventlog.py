"""The append-only event log: Parquet files under <root>/<table>/iteration=<t>/.

(Evaluation tables are partitioned by the evaluated model instead: <table>/model=<name>/;
each event type names its partition column in PARTITION.)

Each append writes one new file named by the sha256 of its bytes (so a changed byte is
detectable from the name alone), atomically. A batch is all-or-nothing: any invalid row
or an id already in the partition fails the whole batch and writes nothing. Files are
never rewritten; readers check the schema of what they read.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SrlmError
from ..hashing import sha256_bytes, sha256_file
from ..storage import atomic_write_bytes, parquet_bytes
from .events import BY_TABLE, Event

DEFAULT_ROOT = Path("data/events")
PART = re.compile(r"^part-([0-9a-f]{64})\.parquet$")


class EventLogError(SrlmError):
    pass


class EventLog:
    def __init__(self, root: Path | str = DEFAULT_ROOT):
        self.root = Path(root)

    def partition(self, table: str, iteration: int | str) -> Path:
        """The folder of one partition: `iteration=<t>`, or `model=<name>` for evaluation tables."""
        return self.root / table / f"{BY_TABLE[table].PARTITION}={iteration}"

    def append(self, events: Sequence[Event]) -> Path:
        """Write one batch of events of one type and one iteration; returns the new file."""
        if not events:
            raise EventLogError("refusing to append an empty batch")
        kind = type(events[0])
        iteration = getattr(events[0], kind.PARTITION)
        for index, event in enumerate(events):
            if type(event) is not kind or getattr(event, kind.PARTITION) != iteration:
                raise EventLogError(f"batch row {index}: one batch holds one event type and one {kind.PARTITION}")
            problems = event.problems()
            if problems:
                raise EventLogError(f"{kind.TABLE} row {index}: {'; '.join(problems)}")
        ids = [getattr(e, kind.ID_FIELD) for e in events]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise EventLogError(f"{kind.TABLE}: duplicate {kind.ID_FIELD} {dup} within the batch")
        folder = self.partition(kind.TABLE, iteration)
        clash = set(ids) & self._ids(kind, folder)
        if clash:
            raise EventLogError(f"{folder}: {len(clash)} {kind.ID_FIELD}(s) already in the log, e.g. "
                                f"{sorted(clash)[0]}; events are insert-only")
        rows = [dataclasses.asdict(e) for e in events]
        data = parquet_bytes(pa.Table.from_pylist(rows, schema=kind.arrow_schema()))
        return atomic_write_bytes(folder / f"part-{sha256_bytes(data)}.parquet", data)

    def append_partition(self, kind: type[Event], iteration: int | str, events: Sequence[Event]) -> None:
        """Write a stage's whole output for one partition: the folder exists (a DVC output)
        even when there are no events, e.g. no rejected prompts."""
        self.partition(kind.TABLE, iteration).mkdir(parents=True, exist_ok=True)
        if events:
            self.append(events)

    def _ids(self, kind: type[Event], folder: Path) -> set[str]:
        found: set[str] = set()
        for path in sorted(folder.glob("part-*.parquet")):
            found.update(pq.read_table(path, columns=[kind.ID_FIELD]).column(0).to_pylist())
        return found

    def files(self, table: str | None = None) -> list[Path]:
        tables = [table] if table else sorted(BY_TABLE)
        return [p for t in tables for p in sorted((self.root / t).glob(f"{BY_TABLE[t].PARTITION}=*/part-*.parquet"))]

    def paths(self, kind: type[Event], iteration: int | str | None) -> list[Path]:
        """A table's (or one partition's) files, each checked to hold the table's schema (footer only)."""
        paths = (sorted(self.partition(kind.TABLE, iteration).glob("part-*.parquet"))
                 if iteration is not None else self.files(kind.TABLE))
        accepted = [kind.arrow_schema().remove_metadata()]
        if kind.ADDED_COLUMNS:
            accepted.append(kind.v1_schema())
        for path in paths:
            schema = pq.read_schema(path).remove_metadata()
            if not any(schema.equals(s) for s in accepted):
                raise EventLogError(f"{path}: schema does not match {kind.TABLE} v{kind.SCHEMA_VERSION}: {schema}")
        return paths

    def read(self, kind: type[Event], iteration: int | str | None = None,
             columns: Sequence[str] | None = None) -> pa.Table:
        """All rows of a table (or one iteration), schema-checked, in file order; only `columns` if given."""
        schema = kind.arrow_schema()
        names = list(columns) if columns is not None else schema.names
        # A version-1 file reads the columns added since as null (the upcast of an older log).
        tables = [upcast(pq.read_table(path, columns=[c for c in names if c in pq.read_schema(path).names],
                                       partitioning=None), schema, names)
                  for path in self.paths(kind, iteration)]
        if not tables:
            return schema.empty_table().select(names)
        return pa.concat_tables(tables)


def upcast(table: pa.Table, schema: pa.Schema, names: Sequence[str]) -> pa.Table:
    """`table` with the columns `names` of `schema`, in that order, the missing ones as nulls."""
    return pa.table([table.column(n) if n in table.column_names else pa.nulls(table.num_rows, schema.field(n).type)
                     for n in names], schema=pa.schema([schema.field(n) for n in names]))


def tampered_files(root: Path | str = DEFAULT_ROOT) -> list[Path]:
    """Event files whose bytes no longer hash to the name they were written under."""
    bad = []
    for path in EventLog(root).files():
        match = PART.match(path.name)
        if not match or sha256_file(path) != match.group(1):
            bad.append(path)
    return bad


def stray_files(root: Path | str = DEFAULT_ROOT) -> list[Path]:
    """Files in partition folders that are not event files (hidden temporary files aside):
    the views of the duckdb shell (`*/*.parquet`) would read such a file, unverified."""
    log = EventLog(root)
    return [p for t in sorted(BY_TABLE) for p in sorted((log.root / t).glob(f"{BY_TABLE[t].PARTITION}=*/*"))
            if p.is_file() and not p.name.startswith(".") and not p.name.startswith("part-")]
