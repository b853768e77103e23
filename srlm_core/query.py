"""Read-only DuckDB SQL over the event log.

Each table is a view over `read_parquet('<root>/<table>/*/*.parquet', hive_partitioning)`;
a table with no files yet is an empty view of the right columns. Only SELECT and
EXPLAIN statements run, on a connection whose file access is limited to the event log
and whose configuration is locked, so no query can write, attach, copy out, install or
load anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from .errors import SrlmError
from .events import EVENT_TYPES, Event

SQL_TYPES = {str: "VARCHAR", int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN"}
READ_ONLY_TYPES = {"StatementType.SELECT", "StatementType.EXPLAIN"}
SHIPPED_VIEWS = Path(__file__).parent / "sql" / "views.sql"


def view_sql(kind: type[Event], events_root: str, has_files: bool = True) -> str:
    if has_files:
        glob = f"{events_root.rstrip('/')}/{kind.TABLE}/*/*.parquet"
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
    root = Path(events_root).resolve()
    con = duckdb.connect(":memory:")
    con.execute(f"SET allowed_directories = ['{root.as_posix()}/']")
    con.execute("SET enable_external_access = false")
    con.execute(current_views_sql(root))
    con.execute("SET lock_configuration = true")
    return con


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> list:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise SrlmError(f"SQL does not parse: {exc}") from None
    if not statements:
        raise SrlmError("no SQL statement given")
    for statement in statements:
        kind = str(statement.type)
        if kind not in READ_ONLY_TYPES:
            raise SrlmError(f"refused: {kind.removeprefix('StatementType.')} statements are not allowed; "
                            "`srlm sql` is read-only (SELECT and EXPLAIN only)")
    return statements


def run_query(sql: str, events_root: Path | str = "data/events", max_rows: int = 10_000) -> QueryResult:
    """Run read-only SQL; returns at most `max_rows` rows of the last statement."""
    con = connect(events_root)
    try:
        statements = check_read_only(con, sql)
        for statement in statements[:-1]:
            con.execute(statement)
        cursor = con.execute(statements[-1])
        rows = cursor.fetchmany(max_rows + 1)
        columns = [d[0] for d in cursor.description or []]
    except duckdb.Error as exc:
        raise SrlmError(f"query failed: {exc}") from None
    finally:
        con.close()
    return QueryResult(columns, rows[:max_rows], len(rows) > max_rows)
