"""Compare two partitions (or two folders) of one event-log table, as plain data.

`diff("pairs@1", "pairs@2")` returns row counts, prompt overlap, score and length
distributions, the rows per label (a pair's rule, a skip reason) and example rows added and
removed, all computed by DuckDB over the Parquet files on a read-only in-memory connection.
`srlm diff` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from ..errors import SrlmError
from ..log.eventlog import DEFAULT_ROOT, EventLog
from ..log.events import BY_TABLE, EVENT_TYPES, CandidateGenerated, Event, PromptAdded
from ..log.query import SQL_TYPES, mixed_sql

STATS = ("count", "nulls", "mean", "std", "min", "p25", "median", "p75", "max")
NOT_MEASURES = {"seed", "schema_version", "iteration", "tolerance"}   # numeric, but labels rather than measurements
PER_KEY = {"guard"}   # rows of different keys measure different things (a length ratio, a share): compared apart
LABELS = ("rule", "tolerance", "reason")                # counted per value: how each row was chosen or skipped
CONTENT = {"text", "detail"}                             # free text whose length is worth comparing,
RAW = "raw_"                                             # as is a judge's raw output (any raw_* column)
PROMPT_TEXT = {"prompts", "rejected_prompts"}            # tables whose own `text` is the prompt
MARGINS = (("chosen_score", "rejected_score"), ("top_score", "bottom_score"),
           ("chosen_win_rate", "rejected_win_rate"), ("top_win_rate", "bottom_win_rate"))   # judge pairs: meta-judge
CLIP = 80


@dataclass(frozen=True)
class Side:
    """One operand: its Parquet files, and the event-log root it sits in (None for a loose folder)."""

    label: str
    table: str
    folder: Path
    files: list[Path]
    root: Path | None


def resolve(spec: str, events_root: Path | str = DEFAULT_ROOT) -> Side:
    """`<table>@<partition>` under `events_root`, or a folder (partition, table or loose Parquet files)."""
    if Path(spec).is_dir():
        return _folder_side(spec, Path(spec))
    table, at, value = spec.partition("@")
    if not at:
        raise SrlmError(f"{spec}: not a folder and not <table>@<partition> "
                        "(fix: e.g. pairs@1, or a folder such as data/events/pairs/iteration=1)")
    if table not in BY_TABLE:
        raise SrlmError(f"{spec}: unknown table {table!r} (fix: one of {', '.join(sorted(BY_TABLE))})")
    log = EventLog(events_root)
    folder = log.partition(table, value)
    if not folder.is_dir():
        have = sorted(p.name for p in (log.root / table).glob("*=*"))
        raise SrlmError(f"{spec}: no folder {folder} (fix: use one of {', '.join(have) or 'none'}, "
                        "or point --events at the run's event log)")
    return Side(spec, table, folder, sorted(folder.glob("*.parquet")), log.root)


def _folder_side(spec: str, folder: Path) -> Side:
    files = sorted(folder.rglob("*.parquet"))
    tables = sorted({_table_of(path) for path in files})
    if len(tables) > 1:
        raise SrlmError(f"{folder}: holds several tables ({', '.join(tables)}) "
                        f"(fix: pass one table's folder, e.g. {folder / tables[0]})")
    here = folder.resolve()
    if tables:
        table = tables[0]
    elif here.name in BY_TABLE or here.parent.name in BY_TABLE:
        # An empty partition is a real result (no rows that iteration); its path names the table.
        table = here.name if here.name in BY_TABLE else here.parent.name
    else:
        raise SrlmError(f"{folder}: no Parquet files, so no table to compare "
                        "(fix: pass a partition folder such as data/events/pairs/iteration=1)")
    if here.name == table:
        root = here.parent
    elif here.parent.name == table and here.name.startswith(f"{BY_TABLE[table].PARTITION}="):
        root = here.parent.parent
    else:
        root = None
    return Side(spec, table, folder, files, root)


def _table_of(path: Path) -> str:
    schema = pq.read_schema(path)
    named = (schema.metadata or {}).get(b"srlm.table")
    if named:
        return named.decode()
    # Files written by other tools lose the metadata; the column set still identifies the table.
    names = set(schema.names)
    for kind in EVENT_TYPES:
        if names == {name for name, _, _ in kind.columns()}:
            return kind.TABLE
    raise SrlmError(f"{path}: not an event-log table (no srlm.table metadata, and its columns "
                    "match no table in srlm_core/log/events.py)")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _source(kind: type[Event], files: list[Path]) -> str:
    if not files:
        columns = ", ".join(f"CAST(NULL AS {SQL_TYPES[t]}) AS {name}" for name, t, _ in kind.columns())
        return f"SELECT {columns} WHERE false"
    listed = ", ".join(_literal(path.resolve().as_posix()) for path in files)
    return mixed_sql(f"read_parquet([{listed}], union_by_name = true)", kind)   # ids as hex, any schema version


def _context(side: Side, table: str) -> list[Path]:
    """Files of another table in the same run, for joining prompt text or candidate text."""
    return EventLog(side.root).files(table) if side.root else []


def _connect(files: list[Path]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    folders = sorted({path.resolve().parent.as_posix() + "/" for path in files})
    con.execute(f"SET allowed_directories = [{', '.join(map(_literal, folders))}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def diff(a: str, b: str, events_root: Path | str = DEFAULT_ROOT, examples: int = 3) -> dict:
    """Compare two operands of one table; see `srlm diff --help` for the keys of the result."""
    left, right = resolve(a, events_root), resolve(b, events_root)
    if left.table != right.table:
        raise SrlmError(f"cannot diff {a} ({left.table}) with {b} ({right.table}): both sides must be the same "
                        f"table (fix: e.g. srlm diff {left.table}@1 {left.table}@2)")
    kind = BY_TABLE[left.table]
    columns = {name: t for name, t, _ in kind.columns()}
    sides = {"a": left, "b": right}
    prompts = {name: _context(side, "prompts") for name, side in sides.items()}
    has_pair = {"chosen_id", "rejected_id"} <= columns.keys()
    candidates = {name: _context(side, "candidates") if has_pair else [] for name, side in sides.items()}
    # Each key and join is chosen for both sides at once, so the two sides are keyed alike.
    if left.table in PROMPT_TEXT:
        key, key_sql = "prompt text", "r.text"
    elif "prompt" in columns:
        key, key_sql = "prompt text", "r.prompt"   # rows that carry their prompt (instruction_answers)
    elif "prompt_id" in columns and all(prompts.values()):
        key, key_sql = "prompt text", "p.text"   # prompt ids hash the iteration, so they never match across iterations
    else:
        key = next(name for name in ("prompt_id", "group_id", "guard", kind.ID_FIELD) if name in columns)
        key_sql = f"r.{key}"
    pair_texts = has_pair and all(candidates.values())

    measures = [n for n, t in columns.items() if t in (int, float) and n not in NOT_MEASURES
                and not n.endswith(("_id", "_index"))]
    margin = next((f"r.{hi} - r.{lo}" for hi, lo in MARGINS if hi in columns and lo in columns), None)
    measures += ["margin"] if margin else []
    contents = [n for n, t in columns.items() if t is str and (n in CONTENT or n.startswith(RAW))]
    contents += ["chosen", "rejected"] if pair_texts or {"chosen", "rejected"} <= columns.keys() else []   # judge_pairs
    labels = [n for n in LABELS if n in columns]

    con = _connect([*left.files, *right.files, *(f for fs in (*prompts.values(), *candidates.values()) for f in fs)])
    try:
        for name, side in sides.items():
            select, joins = ["r.*", f"{key_sql} AS _key"], []
            if key_sql == "p.text":
                joins.append(f"LEFT JOIN ({_source(PromptAdded, prompts[name])}) p ON p.prompt_id = r.prompt_id")
            if margin:
                select.append(f"{margin} AS margin")
            if pair_texts:
                for role in ("chosen", "rejected"):
                    select.append(f"{role}_c.text AS {role}")
                    joins.append(f"LEFT JOIN ({_source(CandidateGenerated, candidates[name])}) {role}_c "
                                 f"ON {role}_c.candidate_id = r.{role}_id")
            con.execute(f"CREATE TEMP VIEW {name} AS SELECT {', '.join(select)} "
                        f"FROM ({_source(kind, side.files)}) r {' '.join(joins)}")
        shown = [kind.ID_FIELD, *measures, *(c for c in contents if f"r.{c}" != key_sql)]
        counts = {name: _scalar(con, f"SELECT count(*) FROM {name}") for name in sides}
        return {
            "table": kind.TABLE,
            **{name: {"label": side.label, "path": str(side.folder), "rows": counts[name]}
               for name, side in sides.items()},
            "overlap": {"key": key, **_overlap(con)},
            "scores": _scores(con, measures, per_key=key in PER_KEY),
            "lengths": {column: _compare(con, f"length({column})") for column in contents},
            "labels": {column: {name: _counts(con, name, column) for name in sides} for column in labels},
            "added": _only_in(con, "b", "a", shown, examples),
            "removed": _only_in(con, "a", "b", shown, examples),
        }
    except duckdb.Error as exc:
        raise SrlmError(f"diff of {a} and {b} failed reading Parquet: {exc}") from None
    finally:
        con.close()


def _scalar(con: duckdb.DuckDBPyConnection, sql: str):
    return con.execute(sql).fetchone()[0]


def _overlap(con: duckdb.DuckDBPyConnection) -> dict:
    only_a, only_b, both = con.execute(
        "WITH ka AS (SELECT DISTINCT _key FROM a WHERE _key IS NOT NULL), "
        "kb AS (SELECT DISTINCT _key FROM b WHERE _key IS NOT NULL) "
        "SELECT count(*) FILTER (WHERE kb._key IS NULL), count(*) FILTER (WHERE ka._key IS NULL), "
        "count(*) FILTER (WHERE ka._key IS NOT NULL AND kb._key IS NOT NULL) "
        "FROM ka FULL OUTER JOIN kb ON ka._key = kb._key").fetchone()
    union = only_a + only_b + both
    return {"only_a": only_a, "only_b": only_b, "both": both, "jaccard": both / union if union else None}


def _stats(con: duckdb.DuckDBPyConnection, view: str, expr: str, key: str | None = None) -> dict:
    where, args = ("WHERE _key = ?", [key]) if key is not None else ("", [])
    row = con.execute(f"SELECT count({expr}), count(*) - count({expr}), avg({expr}), stddev_pop({expr}), "
                      f"min({expr}), quantile_cont({expr}, 0.25), median({expr}), quantile_cont({expr}, 0.75), "
                      f"max({expr}) FROM {view} {where}", args).fetchone()
    return dict(zip(STATS, row))


def _counts(con: duckdb.DuckDBPyConnection, view: str, column: str) -> dict:
    """{value as text ("null" for NULL): rows} of one side's `column`, by value."""
    rows = con.execute(f"SELECT coalesce(CAST({column} AS VARCHAR), 'null') AS v, count(*) FROM {view} "
                       "GROUP BY v ORDER BY v").fetchall()
    return dict(rows)


def _scores(con: duckdb.DuckDBPyConnection, measures: list[str], per_key: bool) -> dict:
    """{column: comparison}, or with `per_key` {column[key]: comparison} for each key of either side."""
    if not per_key:
        return {column: _compare(con, column) for column in measures}
    keys = [row[0] for row in con.execute("SELECT _key FROM a UNION SELECT _key FROM b ORDER BY 1").fetchall()]
    return {f"{column}[{key}]": _compare(con, column, key) for column in measures for key in keys}


def _compare(con: duckdb.DuckDBPyConnection, expr: str, key: str | None = None) -> dict:
    a, b = _stats(con, "a", expr, key), _stats(con, "b", expr, key)
    delta = None if a["mean"] is None or b["mean"] is None else b["mean"] - a["mean"]
    return {"a": a, "b": b, "delta_mean": delta}


def _only_in(con: duckdb.DuckDBPyConnection, new: str, old: str, shown: list[str], limit: int) -> dict:
    """Rows of `new` whose key `old` lacks: their count and the first `limit`, text clipped for display."""
    rows = f"FROM {new} n ANTI JOIN {old} o ON n._key = o._key WHERE n._key IS NOT NULL"
    cursor = con.execute(f"SELECT n._key AS key, {', '.join(f'n.{c}' for c in shown)} {rows} "
                         f"ORDER BY n._key, n.{shown[0]} LIMIT {int(limit)}")
    names = [d[0] for d in cursor.description]
    examples = [{n: _clip(v) for n, v in zip(names, row)} for row in cursor.fetchall()]
    return {"rows": _scalar(con, f"SELECT count(*) {rows}"), "examples": examples}   # after the fetch: one cursor


def _clip(value):
    if not isinstance(value, str):
        return value
    flat = " ".join(value.split())
    return flat if len(flat) <= CLIP else flat[:CLIP - 1] + "…"
