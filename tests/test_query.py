"""`srlm sql` surface: views over every table, read-only, bounded."""

from __future__ import annotations

import dataclasses

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_eventlog import one_of_each, prompt

from srlm_core.errors import SrlmError
from srlm_core.log.eventlog import EventLog
from srlm_core.log.events import GuardChecked, PairBuilt, ReplyLogprobComputed
from srlm_core.log.query import SHIPPED_VIEWS, run_query, shipped_views_sql, view_sql


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


def test_ids_show_as_hex_whatever_version_wrote_them(tmp_path):
    """`srlm sql` and the shipped views show ids as lowercase hex, as Python has them: both over
    32-byte ids (written now) and over hex-string ids (a schema-version-1 file, upcast)."""
    log = EventLog(tmp_path / "events")
    for batch in one_of_each(1) + one_of_each(2):
        log.append(batch)
    old_pair = one_of_each(3)[-1][0]
    folder = log.partition("pairs", 3)
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([dataclasses.asdict(old_pair)], schema=PairBuilt.schema_at(1)),
                   folder / "part-old.parquet")
    pairs = {r["iteration"]: r for r in log.read(PairBuilt).to_pylist()}
    # a version-1 file predates the rule column: its pair was chosen best vs worst, the only rule then
    assert pairs[3] == {**dataclasses.asdict(old_pair), "rule": "best_vs_worst", "tolerance": None}
    assert pairs[1]["rule"] == "length_controlled"
    sql = "select iteration, pair_id, chosen_id, rejected_id, rule, tolerance from pairs order by iteration"
    views = view_sql(PairBuilt, (tmp_path / "events").as_posix())
    for label, rows in (("srlm sql", run_query(sql, tmp_path / "events").rows),
                        ("views.sql", duckdb.sql(views + sql).fetchall())):
        assert [r[0] for r in rows] == [1, 2, 3], label
        for iteration, *row in rows:
            want = pairs[iteration]
            assert row == [want[c] for c in ("pair_id", "chosen_id", "rejected_id", "rule", "tolerance")], label
    joined = run_query("select count(*) from pairs p join candidates c on c.candidate_id = p.chosen_id "
                       "join judgements j on j.candidate_id = c.candidate_id", tmp_path / "events").rows
    assert joined == [(2,)]


def test_a_log_older_than_the_rule_column_shows_it(tmp_path):
    """Every pair file predating the rule column (schema version 2): `srlm sql` and the shipped view
    still have the column, reading best_vs_worst (and no tolerance)."""
    log = EventLog(tmp_path / "events")
    pair = one_of_each(1)[-1][0]
    folder = log.partition("pairs", 1)
    folder.mkdir(parents=True)
    row = {k: bytes.fromhex(v) if k in PairBuilt.ID_COLUMNS else v for k, v in dataclasses.asdict(pair).items()}
    pq.write_table(pa.Table.from_pylist([row], schema=PairBuilt.schema_at(2)), folder / "part-old.parquet")
    sql = "select pair_id, rule, tolerance from pairs"
    want = [(pair.pair_id, "best_vs_worst", None)]
    assert run_query(sql, tmp_path / "events").rows == want
    assert duckdb.sql(view_sql(PairBuilt, (tmp_path / "events").as_posix()) + sql).fetchall() == want


def test_reply_logprobs_view(tmp_path):
    """`srlm sql` and the shipped view read the log-probs: the row id as hex, the dataset ids as written."""
    log = EventLog(tmp_path / "events")
    rows = [ReplyLogprobComputed.create(model="M1", group_id="g-1", reply_id=reply, model_hash="m" * 64, tokens=tokens,
                                        logprob=lp, stage="logprobs", seed=None, sampling=None)
            for reply, tokens, lp in (("r-1", 4, -8.0), ("r-2", None, None))]
    log.append(rows)
    sql = "select model, logprob_id, group_id, reply_id, logprob from reply_logprobs order by reply_id"
    want = [("M1", e.logprob_id, "g-1", e.reply_id, e.logprob) for e in rows]
    assert run_query(sql, tmp_path / "events").rows == want
    views = view_sql(ReplyLogprobComputed, (tmp_path / "events").as_posix())
    assert duckdb.sql(views + sql).fetchall() == want


def test_guard_checks_view(tmp_path):
    """`srlm sql` and the shipped view read the guards' checks, a skipped one with null value and threshold."""
    log = EventLog(tmp_path / "events")
    rows = [GuardChecked.create(iteration=1, model="M2", parent="M1", guard=guard, value=value, threshold=threshold,
                                outcome=outcome, reason="why", model_hash="m" * 64, stage="guards", seed=None,
                                sampling=None)
            for guard, value, threshold, outcome in (("length_growth", 1.8, 1.5, "warn"),
                                                     ("top_share", None, None, "skipped"))]
    log.append(rows)
    sql = "select iteration, check_id, guard, value, threshold, outcome from guard_checks order by guard"
    want = [(1, e.check_id, e.guard, e.value, e.threshold, e.outcome) for e in rows]
    assert run_query(sql, tmp_path / "events").rows == want
    views = view_sql(GuardChecked, (tmp_path / "events").as_posix())
    assert duckdb.sql(views + sql).fetchall() == want
