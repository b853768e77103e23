"""`srlm sql` surface: views over every table, read-only, bounded."""

from __future__ import annotations

import pytest
from test_eventlog import prompt

from srlm_core.errors import SrlmError
from srlm_core.log.eventlog import EventLog
from srlm_core.log.query import SHIPPED_VIEWS, run_query, shipped_views_sql


@pytest.fixture
def events(tmp_path):
    log = EventLog(tmp_path / "events")
    log.append([prompt("a", 1), prompt("b", 1)])
    log.append([prompt("c", 2)])
    return tmp_path / "events"


def test_views_read_partitions(events):
    result = run_query("select iteration, count(*) as n from prompts group by 1 order by 1", events)
    assert result.columns == ["iteration", "n"] and result.rows == [(1, 2), (2, 1)]


def test_tables_without_files_are_empty_views(events):
    for table in ("candidates", "judgements", "pairs"):
        assert run_query(f"select count(*) from {table}", events).rows == [(0,)]
    cols = run_query("select * from pairs", events).columns
    assert cols[:3] == ["pair_id", "prompt_id", "iteration"]


def test_result_size_is_bounded(events):
    result = run_query("select * from range(100)", events, max_rows=10)
    assert len(result.rows) == 10 and result.truncated


@pytest.mark.parametrize("statement", [
    "copy prompts to '{root}/x.parquet'",
    "select 1; copy (select 1) to '{root}/prompts/iteration=1/y.parquet'",
    "attach '{root}/x.db'",
    "install httpfs",
    "load httpfs",
    "set threads = 1",
    "reset threads",
    "create table t as select 1",
    "create view v as select 1",
    "insert into prompts select * from prompts",
    "delete from prompts",
    "update prompts set text = 'x'",
    "drop view prompts",
    "export database '{root}/dump'",
    "pragma enable_profiling",
    "call pragma_version()",
    "checkpoint",
    "detach memory",
    "vacuum",
    "begin transaction",
])
def test_refuses_everything_but_reads(events, statement):
    before = sorted(p.name for p in events.rglob("*"))
    with pytest.raises(SrlmError, match="refused|not allowed"):
        run_query(statement.format(root=events), events)
    assert sorted(p.name for p in events.rglob("*")) == before


def test_cannot_read_outside_the_event_log(events, tmp_path):
    (tmp_path / "secret.csv").write_text("a\n1\n")
    with pytest.raises(SrlmError, match="query failed"):
        run_query(f"select * from read_csv('{tmp_path / 'secret.csv'}')", events)


def test_shipped_views_file_is_in_sync():
    assert SHIPPED_VIEWS.read_text(encoding="utf-8") == shipped_views_sql()
