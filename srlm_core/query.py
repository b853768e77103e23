"""Read-only DuckDB SQL over the event log.

Each table is a view over the table's event files (`<root>/<table>/*/part-*.parquet`),
scanned by pyarrow and handed to DuckDB; a table with no files yet is an empty view of
the right columns. DuckDB itself gets no file access at all (external access off, no
allowed directory, no temp directory, configuration locked), so whatever the statement,
it cannot write, attach, copy out, install or load anything, nor read another file.
On top of that only SELECT and EXPLAIN of a SELECT run, so refusals come with a clear
message. `shipped_views_sql` and `--views` give the same views as `read_parquet` SQL for
the duckdb shell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.dataset as ds

from .errors import SrlmError
from .eventlog import EventLog
from .events import EVENT_TYPES, Event

SQL_TYPES = {str: "VARCHAR", int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN"}
SHIPPED_VIEWS = Path(__file__).parent / "sql" / "views.sql"


def view_sql(kind: type[Event], events_root: str, has_files: bool = True) -> str:
    if has_files:
        glob = f"{events_root.rstrip('/')}/{kind.TABLE}/*/*.parquet".replace("'", "''")
        body = f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
    else:
        cols = ", ".join(f"CAST(NULL AS {SQL_TYPES[t]}) AS {n}" for n, t, _ in kind.columns())
        body = f"SELECT {cols} WHERE false"
    return f"CREATE OR REPLACE VIEW {kind.TABLE} AS\n  {body};\n"


def shipped_views_sql() -> str:
    """The views for the duckdb shell, run from the repository root after the pipeline ran."""
    header = ("-- srlm event-log views. Load from the repository root:  duckdb -init srlm_core/sql/views.sql\n"
              "-- Generated from srlm_core/events.py (a test keeps it in sync). A table the pipeline\n"
              "-- has not written yet has no files; `srlm sql` shows it as an empty view instead.\n")
    return header + "".join(view_sql(kind, "data/events") for kind in EVENT_TYPES)


def current_views_sql(events_root: Path | str) -> str:
    root = Path(events_root)
    return "".join(view_sql(kind, root.as_posix(), any((root / kind.TABLE).glob("*/*.parquet")))
                   for kind in EVENT_TYPES)


def connect(events_root: Path | str = "data/events") -> duckdb.DuckDBPyConnection:
    """An in-memory connection with one view per event table and no file access of its own."""
    log = EventLog(Path(events_root).resolve())
    con = duckdb.connect(":memory:")
    con.execute("SET temp_directory = ''")  # no spill files (it must be set before the lock below)
    con.execute("SET allowed_directories = []")
    con.execute("SET enable_external_access = false")
    for kind in EVENT_TYPES:
        files = [p.as_posix() for p in log.files(kind.TABLE)]
        data = (ds.dataset(files, format="parquet", schema=kind.arrow_schema()) if files
                else kind.arrow_schema().empty_table())
        con.register(kind.TABLE, data)
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


def run_query(sql: str, events_root: Path | str = "data/events", max_rows: int = 10_000) -> QueryResult:
    """Run read-only SQL; returns at most `max_rows` rows of the last statement."""
    if max_rows < 1:
        raise SrlmError(f"max_rows is {max_rows}; give 1 or more")
    con = connect(events_root)
    try:
        statements = check_read_only(con, sql)
        for statement in statements[:-1]:
            con.execute(statement)
        cursor = con.execute(statements[-1])
        rows = cursor.fetchmany(max_rows + 1)
        columns = [d[0] for d in cursor.description or []]
    except duckdb.PermissionException as exc:
        raise SrlmError(f"query failed: {exc} (`srlm sql` reads only the event-log tables: "
                        f"{', '.join(kind.TABLE for kind in EVENT_TYPES)})") from None
    except duckdb.Error as exc:
        raise SrlmError(f"query failed: {exc}") from None
    finally:
        con.close()
    return QueryResult(columns, rows[:max_rows], len(rows) > max_rows)
