"""The append-only event log: Parquet files under <root>/<table>/iteration=<t>/.

(Evaluation tables are partitioned by the evaluated model instead: <table>/model=<name>/;
each event type names its partition column in PARTITION.)

Each append writes one new file named by the sha256 of its bytes (so a changed byte is
detectable from the name alone), atomically. A batch is all-or-nothing: any invalid row
or an id already in the partition fails the whole batch and writes nothing. Files are
never rewritten; readers check the schema of what they read, and read files of every
schema version of a table (events.py: the version history), upcasting older ones on read.
Ids are stored as 32 bytes; `read` hands them to Python as hex strings unless asked not to.
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
from .events import BY_TABLE, Event, IdEncodingError, ids_from_hex, ids_to_hex

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
        table = upcast(pa.Table.from_pylist(rows, schema=kind.python_schema()), kind)   # hex ids -> 32 bytes
        data = parquet_bytes(table.replace_schema_metadata(kind.arrow_schema().metadata))
        return atomic_write_bytes(folder / f"part-{sha256_bytes(data)}.parquet", data)

    def append_partition(self, kind: type[Event], iteration: int | str, events: Sequence[Event]) -> None:
        """Write a stage's whole output for one partition: the folder exists (a DVC output)
        even when there are no events, e.g. no rejected prompts."""
        self.partition(kind.TABLE, iteration).mkdir(parents=True, exist_ok=True)
        if events:
            self.append(events)

    def _ids(self, kind: type[Event], folder: Path) -> set[str]:
        found: set[str] = set()
        for path in self._checked(kind, sorted(folder.glob("part-*.parquet"))):
            column = upcast(pq.read_table(path, columns=[kind.ID_FIELD]), kind, [kind.ID_FIELD]).column(0)
            found.update(ids_to_hex(column).to_pylist())
        return found

    def files(self, table: str | None = None) -> list[Path]:
        tables = [table] if table else sorted(BY_TABLE)
        return [p for t in tables for p in sorted((self.root / t).glob(f"{BY_TABLE[t].PARTITION}=*/part-*.parquet"))]

    def paths(self, kind: type[Event], iteration: int | str | None) -> list[Path]:
        """A table's (or one partition's) files, each checked to hold the table's schema (footer only)."""
        paths = (sorted(self.partition(kind.TABLE, iteration).glob("part-*.parquet"))
                 if iteration is not None else self.files(kind.TABLE))
        return self._checked(kind, paths)

    def versions(self, kind: type[Event], iteration: int | str | None) -> dict[int, list[Path]]:
        """`paths`, grouped by the schema version each file was written at."""
        found: dict[int, list[Path]] = {}
        for path in self.paths(kind, iteration):
            found.setdefault(kind.version_of(pq.read_schema(path)), []).append(path)
        return found

    @staticmethod
    def _checked(kind: type[Event], paths: list[Path]) -> list[Path]:
        for path in paths:
            schema = pq.read_schema(path)
            if kind.version_of(schema) is None:
                raise EventLogError(f"{path}: schema does not match {kind.TABLE} v{kind.SCHEMA_VERSION} (nor an "
                                    f"older version it upcasts): {schema.remove_metadata()}")
        return paths

    def read(self, kind: type[Event], iteration: int | str | None = None,
             columns: Sequence[str] | None = None, hex_ids: bool = True) -> pa.Table:
        """All rows of a table (or one iteration), schema-checked, in file order; only `columns` if given.
        Files of older schema versions are upcast (`upcast`). Ids come as hex strings, as Python
        handles them (kind.python_schema()); hex_ids=False gives them as stored, 32 bytes each."""
        schema = kind.arrow_schema() if not hex_ids else kind.python_schema()
        names = list(columns) if columns is not None else schema.names
        tables = []
        for path in self.paths(kind, iteration):
            table = upcast(pq.read_table(path, columns=[c for c in names if c in pq.read_schema(path).names],
                                         partitioning=None), kind, names, path)
            tables.append(hexed(table, kind) if hex_ids else table)
        if not tables:
            return schema.empty_table().select(names)
        return pa.concat_tables(tables)


def upcast(table: pa.Table, kind: type[Event], names: Sequence[str] | None = None,
           path: Path | None = None) -> pa.Table:
    """`table`, columns of `kind` at any of its schema versions, as the current schema's columns `names`
    (all by default), in that order: each step of the version history undone in turn, so a file of
    any older version reads as the current one: the columns added since a file's version read as
    their UPCAST_VALUES entry or null (ADDED_COLUMNS: the judgement tables' guard columns, null; the
    pairs' rule, best_vs_worst), and ids written as hex strings (before BINARY_IDS_SINCE) as their 32 bytes."""
    schema = kind.arrow_schema()
    names = schema.names if names is None else names
    out = []
    for name in names:
        field = schema.field(name)
        if name not in table.column_names:
            out.append(pa.repeat(pa.scalar(kind.UPCAST_VALUES.get(name), field.type), table.num_rows))
        elif name in kind.ID_COLUMNS and not pa.types.is_fixed_size_binary(table.schema.field(name).type):
            try:
                out.append(ids_from_hex(table.column(name)))
            except IdEncodingError as exc:
                raise EventLogError(f"{path or kind.TABLE}: {name}: {exc}") from None
        else:
            out.append(table.column(name))
    return pa.table(out, schema=pa.schema([schema.field(n) for n in names]))


def hexed(table: pa.Table, kind: type[Event]) -> pa.Table:
    """`table` with its id columns as hex strings (Python's form of an id)."""
    for index, name in enumerate(table.column_names):
        if name in kind.ID_COLUMNS and pa.types.is_fixed_size_binary(table.schema.field(name).type):
            table = table.set_column(index, pa.field(name, pa.string(), table.schema.field(name).nullable),
                                     ids_to_hex(table.column(name)))
    return table


def tampered_files(root: Path | str = DEFAULT_ROOT) -> list[Path]:
    """Event files whose bytes no longer hash to the name they were written under."""
    bad = []
    for path in EventLog(root).files():
        match = PART.match(path.name)
        if not match or sha256_file(path) != match.group(1):
            bad.append(path)
    return bad


def stray_files(root: Path | str = DEFAULT_ROOT) -> list[Path]:
    """Files in partition folders that are not event files (a killed write's `*.partial` aside): the views
    of the duckdb shell (`*/*.parquet`) would read such a file unverified, a hidden `.x.parquet` too."""
    log = EventLog(root)
    return [p for t in sorted(BY_TABLE) for p in sorted((log.root / t).glob(f"{BY_TABLE[t].PARTITION}=*/*"))
            if p.is_file() and not p.name.endswith(".partial") and not p.name.startswith("part-")]
