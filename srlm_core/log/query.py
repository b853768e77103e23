"""Read-only DuckDB SQL over the event log.

Each table is a view over the table's event files (`<root>/<table>/*/part-*.parquet`),
scanned by pyarrow and handed to DuckDB, one scan per schema version (older files upcast
in the view), with the ids as 64 lowercase hex digits (they are stored as 32 bytes); a
table with no files yet is an empty view of the right columns. DuckDB itself gets no file access at all (external access off, no
allowed directory, no temp directory, configuration locked), so whatever the statement,
it cannot write, attach, copy out, install or load anything, nor read another file.
On top of that only SELECT and EXPLAIN of a SELECT run, so refusals come with a clear
message. Resources are bounded too: a memory limit (set before the lock) and a time
limit; the query runs in a worker thread so that Ctrl-C and the time limit can interrupt
it (DuckDB does not return to Python, or see Ctrl-C, until a statement finishes).
`shipped_views_sql` and `--views` give the same views as `read_parquet` SQL for the
duckdb shell.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..errors import SrlmError
from .eventlog import EventLog
from .events import EVENT_TYPES, Event

SQL_TYPES = {str: "VARCHAR", int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN"}
HEX = "lower(hex({}))"   # a 32-byte id as people read it: 64 lowercase hex digits, as in Python


def sql_literal(value: object) -> str:
    """A value of an event column as an SQL literal (NULL, a number, TRUE/FALSE or a quoted string)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def version_sql(kind: type[Event], version: int, source: str, ids: str = "hex") -> str:
    """SELECT of every current column of `kind`, in order, from `source` (a relation whose rows come
    from files written at schema `version`): the columns added since as their UPCAST_VALUES entry or
    NULL, and ids as `ids` says: "hex" (64 lowercase hex digits, for people) or "binary" (32 bytes, as
    stored now: for joins)."""
    stored = kind.schema_at(version).names
    binary = version >= kind.BINARY_IDS_SINCE
    out = []
    for name, kind_type, _ in kind.columns():
        if name not in stored:
            out.append(f"CAST({sql_literal(kind.UPCAST_VALUES.get(name))} AS {SQL_TYPES[kind_type]}) AS {name}")
        elif name in kind.ID_COLUMNS and binary and ids == "hex":
            out.append(f"{HEX.format(name)} AS {name}")
        elif name in kind.ID_COLUMNS and not binary and ids == "binary":
            out.append(f"unhex({name}) AS {name}")
        else:
            out.append(name)
    return f"SELECT {', '.join(out)} FROM {source}"


def mixed_sql(source: str, kind: type[Event]) -> str:
    """SELECT * from `source` (read_parquet(..., union_by_name = true) over files of any schema
    versions of `kind`) with the ids as lowercase hex: a 32-byte id (version >= BINARY_IDS_SINCE)
    is hex-encoded, an older file's id is its hex string already (DuckDB unifies both as BLOB).
    The ADDED_COLUMNS are there even when every file predates them (unioned by name with an empty
    relation that has them), and an older file's rows read them as their UPCAST_VALUES entry or NULL."""
    replaced = [f"CASE WHEN octet_length(CAST({n} AS BLOB)) = 32 THEN {HEX.format(f'CAST({n} AS BLOB)')} "
                f"ELSE decode(CAST({n} AS BLOB)) END AS {n}" for n in kind.ID_COLUMNS]
    replaced += [f"coalesce({n}, {sql_literal(v)}) AS {n}" for n, v in kind.UPCAST_VALUES.items()]
    if kind.ADDED_COLUMNS:
        added = ", ".join(f"CAST(NULL AS {SQL_TYPES[t]}) AS {n}" for n, t, _ in kind.columns()
                          if n in kind.ADDED_COLUMNS)
        source = f"(SELECT * FROM {source}\n    UNION ALL BY NAME SELECT {added} WHERE false)"
    columns = ",\n    ".join(replaced)
    return f"SELECT * REPLACE (\n    {columns})\n  FROM {source}"

def iteration_views(events: EventLog, iteration: int | str, kinds: tuple[type[Event], ...],
                    threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A connection, for the stages' own SQL, with one view per table of `kinds` over the iteration's
    schema-checked event files, which DuckDB reads itself: only the columns a statement names, batch by
    batch. Ids are 32 bytes (BLOB) in these views, as stored; files of an older schema version are upcast
    in the view (hex ids unhexed, columns added since as NULL). `threads`: DuckDB's default (every core)
    when None."""
    con = duckdb.connect(config={} if threads is None else {"threads": threads})
    for kind in kinds:
        versions = events.versions(kind, iteration)
        if versions:
            parts = []
            for version, paths in sorted(versions.items(), reverse=True):
                files = ", ".join("'" + p.as_posix().replace("'", "''") + "'" for p in paths)
                parts.append(version_sql(kind, version, f"read_parquet([{files}])", ids="binary")
                             if version < kind.SCHEMA_VERSION else f"select * from read_parquet([{files}])")
            con.execute(f"create view {kind.TABLE} as {' union all '.join(parts)}")
        else:
            con.register(kind.TABLE, kind.arrow_schema().empty_table())
    return con


SHIPPED_VIEWS = Path(__file__).parent / "views.sql"
MEMORY_LIMIT = "2GB"   # DuckDB's own default is 80% of the machine's memory
TIMEOUT_S = 60
MAX_ROWS = 1_000_000   # rows held in Python and printed; more belongs in the duckdb shell (--views)


def view_sql(kind: type[Event], events_root: str, has_files: bool = True) -> str:
    if has_files:
        glob = f"{events_root.rstrip('/')}/{kind.TABLE}/*/*.parquet".replace("'", "''")
        body = mixed_sql(f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)", kind)
    else:   # ids shown as hex: VARCHAR
        cols = ", ".join(f"CAST(NULL AS {SQL_TYPES[t]}) AS {n}" for n, t, _ in kind.columns())
        body = f"SELECT {cols} WHERE false"
    return f"CREATE OR REPLACE VIEW {kind.TABLE} AS\n  {body};\n"


def shipped_views_sql() -> str:
    """The views for the duckdb shell, run from the repository root after the pipeline ran."""
    header = ("-- srlm event-log views. Load from the repository root:  duckdb -init srlm_core/log/views.sql\n"
              "-- Generated from srlm_core/log/events.py (a test keeps it in sync). A table the pipeline\n"
              "-- has not written yet has no files; `srlm sql` shows it as an empty view instead.\n")
    return header + "".join(view_sql(kind, "data/events") for kind in EVENT_TYPES)


def current_views_sql(events_root: Path | str) -> str:
    root = Path(events_root)
    return "".join(view_sql(kind, root.as_posix(), any((root / kind.TABLE).glob("*/*.parquet")))
                   for kind in EVENT_TYPES)


def check_events_root(events_root: Path | str) -> Path:
    """The event-log folder, if it is one: a mistyped --events must not read as an empty log."""
    root = Path(events_root)
    if not root.is_dir():
        raise SrlmError(f"{root}: no such folder; give the event-log root with --events "
                        "(data/events from the repository root)")
    if not any((root / kind.TABLE).is_dir() for kind in EVENT_TYPES):
        raise SrlmError(f"{root}: not an event log (no {', '.join(kind.TABLE for kind in EVENT_TYPES[:3])}, ... "
                        "folders); give the event-log root with --events (data/events from the repository root)")
    return root


def _check_partition(kind: type[Event], path: Path) -> None:
    """The views read `iteration` (or `model`, `matchup`) from each file's column; the folder
    name says the same. A file moved to another partition folder would disagree: refuse it."""
    folder = path.parent.name.partition("=")[2]
    try:
        values = pc.unique(pq.read_table(path, columns=[kind.PARTITION]).column(0)).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise SrlmError(f"{path}: not a readable {kind.TABLE} event file ({str(exc)[:200]}); "
                        "`srlm verify` checks every event file") from None
    wrong = [v for v in values if str(v) != folder]
    if wrong:
        raise SrlmError(f"{path}: its {kind.PARTITION} column holds {str(wrong[0])[:40]!r} but it is in the "
                        f"folder {path.parent.name}; the file was moved or written by hand (move it back to "
                        f"{kind.PARTITION}={str(wrong[0])[:40]}, or delete it)")


def connect(events_root: Path | str = "data/events", memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with one view per event table and no file access of its own."""
    log = EventLog(check_events_root(events_root).resolve())
    con = duckdb.connect(":memory:")
    try:  # settings must come before the lock below
        con.execute("SET memory_limit = ?", [memory_limit])
    except duckdb.Error:
        con.close()
        raise SrlmError(f"--memory-limit {memory_limit[:40]!r} is not a size; give e.g. 2GB or 500MB") from None
    con.execute("SET enable_progress_bar = false")  # it would print into the query's output
    con.execute("SET temp_directory = ''")  # no spill files: a query over the memory limit fails instead
    con.execute("SET allowed_directories = []")
    con.execute("SET enable_external_access = false")
    for kind in EVENT_TYPES:
        for path in log.files(kind.TABLE):
            _check_partition(kind, path)
        # One scan per schema version (an older log upcast as it is read), ids shown as hex.
        parts = []
        for version, paths in sorted(log.versions(kind, None).items(), reverse=True):
            name = f"{kind.TABLE}_v{version}_files"
            con.register(name, ds.dataset([p.as_posix() for p in paths], format="parquet",
                                          schema=kind.schema_at(version)))
            parts.append(version_sql(kind, version, name))
        if not parts:
            con.register(f"{kind.TABLE}_v{kind.SCHEMA_VERSION}_files", kind.arrow_schema().empty_table())
            parts.append(version_sql(kind, kind.SCHEMA_VERSION, f"{kind.TABLE}_v{kind.SCHEMA_VERSION}_files"))
        con.execute(f"CREATE VIEW {kind.TABLE} AS {' UNION ALL '.join(parts)}")
    con.execute("SET lock_configuration = true")
    return con


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool


REFUSAL = "`srlm sql` is read-only (SELECT, and EXPLAIN of a SELECT)"


def _explained(sql: str) -> str:
    """The statement an EXPLAIN statement explains: the text after `EXPLAIN [ANALYZE | (options)]`."""
    marks = duckdb.tokenize(sql)
    tokens = [(start, sql[start:end].strip().lower(), kind) for (start, kind), end
              in zip(marks, [m[0] for m in marks[1:]] + [len(sql)]) if kind != duckdb.token_type.comment]
    if not tokens or tokens[0][1] != "explain":
        raise SrlmError(f"refused: cannot tell what this EXPLAIN explains; {REFUSAL}")
    index = 1
    if index < len(tokens) and tokens[index][1] in ("analyze", "analyse"):
        index += 1
    elif index < len(tokens) and tokens[index][1].startswith("("):
        depth = 0
        while index < len(tokens):
            text = tokens[index][1] if tokens[index][2] == duckdb.token_type.operator else ""
            depth += text.count("(") - text.count(")")
            index += 1
            if depth <= 0:
                break
    if index >= len(tokens):
        raise SrlmError(f"refused: EXPLAIN of nothing; {REFUSAL}")
    return sql[tokens[index][0]:]


def _statement_kind(statement) -> str:
    try:
        return str(statement.type).removeprefix("StatementType.")
    except ValueError:  # a statement type this duckdb's Python enum does not know, e.g. UPDATE EXTENSIONS
        return "UNKNOWN"


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> list:
    """The parsed statements, if every one is a SELECT or an EXPLAIN of one; else SrlmError.

    EXPLAIN ANALYZE runs the statement it explains, so the explained statement is checked too.
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise SrlmError(f"SQL does not parse: {exc}") from None
    if not statements:
        raise SrlmError("no SQL statement given")
    for statement in statements:
        kind = _statement_kind(statement)
        if kind == "EXPLAIN":
            try:
                inner = con.extract_statements(_explained(statement.query))
            except duckdb.Error as exc:
                raise SrlmError(f"SQL does not parse: {exc}") from None
            kinds = [_statement_kind(s) for s in inner]
            if kinds != ["SELECT"]:
                raise SrlmError(f"refused: EXPLAIN of {' and '.join(kinds) or 'nothing'} is not allowed "
                                f"(EXPLAIN ANALYZE runs the statement); {REFUSAL}")
        elif kind != "SELECT":
            raise SrlmError(f"refused: {kind} statements are not allowed; {REFUSAL}")
    return statements


def _execute(con: duckdb.DuckDBPyConnection, statements: list, max_rows: int, out: dict,
             done: threading.Event) -> None:
    """The worker thread: run the statements and fetch at most max_rows + 1 rows into `out`."""
    try:
        for statement in statements[:-1]:
            con.execute(statement)
        cursor = con.execute(statements[-1])
        out["rows"] = cursor.fetchmany(max_rows + 1)
        out["columns"] = [d[0] for d in cursor.description or []]
    except BaseException as exc:  # handed to the main thread, which raises it there
        out["error"] = exc
    finally:
        done.set()


def _interrupt(con: duckdb.DuckDBPyConnection, done: threading.Event) -> None:
    """Interrupt until the worker ends: an interrupt that lands before the worker's statement has
    started is lost (the statement then runs to its end), so one is not enough."""
    con.interrupt()
    while not done.wait(0.1):
        con.interrupt()


def _run_bounded(con: duckdb.DuckDBPyConnection, statements: list, max_rows: int, timeout: float) -> dict:
    """Run in a worker thread while this one waits, so Ctrl-C (KeyboardInterrupt, raised only in
    the main thread) and the time limit both reach DuckDB as con.interrupt(). The wait is on an
    Event, not Thread.join: a join interrupted by Ctrl-C marks the thread finished (Python 3.11)."""
    out: dict = {}
    done = threading.Event()
    threading.Thread(target=_execute, args=(con, statements, max_rows, out, done), daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        while not done.wait(0.1) and time.monotonic() < deadline:
            pass  # short waits: a Ctrl-C is seen within 0.1 s whichever thread the signal hit
    except KeyboardInterrupt:
        _interrupt(con, done)
        raise
    if not done.is_set():
        _interrupt(con, done)
        raise SrlmError(f"query stopped: it ran past the time limit of {timeout:g} s; raise --timeout, "
                        "or add filters / LIMIT")
    return out


def _failure(exc: duckdb.Error, memory_limit: str) -> SrlmError:
    if isinstance(exc, duckdb.PermissionException):
        return SrlmError(f"query failed: {exc} (`srlm sql` reads only the event-log tables: "
                         f"{', '.join(kind.TABLE for kind in EVENT_TYPES)})")
    if isinstance(exc, duckdb.OutOfMemoryException):  # DuckDB's advice (set a temp directory) does not apply here
        return SrlmError(f"query failed: it needs more memory than the limit of {memory_limit} "
                         f"({str(exc).splitlines()[0]}); raise --memory-limit, or add filters / LIMIT")
    return SrlmError(f"query failed: {exc}")


def run_query(sql: str, events_root: Path | str = "data/events", max_rows: int = 10_000,
              timeout: float = TIMEOUT_S, memory_limit: str = MEMORY_LIMIT) -> QueryResult:
    """Run read-only SQL; returns at most `max_rows` rows of the last statement. Stops with
    SrlmError past `timeout` seconds or `memory_limit`; Ctrl-C interrupts it (KeyboardInterrupt)."""
    if not 1 <= max_rows <= MAX_ROWS:
        raise SrlmError(f"max_rows is {max_rows}; give 1 to {MAX_ROWS:,} (for more, use the duckdb shell: "
                        "`srlm sql --views`)")
    if not timeout > 0:
        raise SrlmError(f"timeout is {timeout} s; give more than 0")
    con = connect(events_root, memory_limit)
    try:
        out = _run_bounded(con, check_read_only(con, sql), max_rows, timeout)
    finally:
        con.close()
    error = out.get("error")
    if isinstance(error, duckdb.Error):
        raise _failure(error, memory_limit) from None
    if error is not None:
        raise error
    return QueryResult(out["columns"], out["rows"][:max_rows], len(out["rows"]) > max_rows)
