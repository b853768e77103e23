"""`srlm sql` cannot write, attach, copy out, install, load, change settings or read other
files, and its output, time and memory are bounded; tried through the library and through
the CLI, with the bytes of every file under the test folder hashed before and after."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time

import pytest
from test_eventlog import prompt
from typer.testing import CliRunner

from srlm_core.cli import app
from srlm_core.errors import SrlmError
from srlm_core.log.eventlog import EventLog
from srlm_core.log.query import run_query

runner = CliRunner()

# {root}: the event log; {out}: a folder beside it
WRITES = [
    "insert into prompts select * from prompts",
    "with t as (select 1) insert into prompts select * from prompts",
    "update prompts set text = 'x'",
    "delete from prompts",
    "create table t as select 1",
    "create temp table t (a int)",
    "create view v as select 1",
    "create or replace view prompts as select 1 as x",
    "create macro m() as 1",
    "create secret s (type s3, key_id 'a', secret 'b')",
    "drop view prompts",
    "drop table if exists prompts",
    "alter view prompts rename to p",
    "attach '{root}/x.db' as x",
    "attach ':memory:' as m",
    "detach memory",
    "copy prompts to '{root}/prompts/iteration=1/part-x.parquet' (format parquet)",
    "copy (select 1) to '{out}/x.csv'",
    "copy prompts from '{out}/outside.csv'",
    "export database '{out}/dump'",
    "import database '{out}/dump'",
    "install httpfs",
    "force install httpfs",
    "load httpfs",
    "update extensions",
    "set threads = 1",
    "set enable_external_access = true",
    "set allowed_directories = ['/']",
    "reset lock_configuration",
    "set variable x = 1",
    "use memory",
    "pragma enable_profiling",
    "pragma threads = 1",
    "call pragma_version()",
    "call enable_logging()",
    "checkpoint",
    "vacuum",
    "analyze",
    "begin transaction",
    "commit",
    "prepare p as select 1",
    "execute p",
    "select 1; copy (select 1) to '{root}/prompts/iteration=1/y.parquet'",
    "select 1; drop view prompts",
    "select * from prompts; insert into prompts select * from prompts",
    # EXPLAIN ANALYZE runs the statement it explains: it used to write this file into the log
    "explain analyze copy (select 1) to '{root}/prompts/iteration=1/z.parquet'",
    "/* a comment */ EXPLAIN ANALYZE COPY (select 1) TO '{root}/z.csv'",
    "explain (analyze) copy (select 1) to '{root}/z.csv'",
    "explain copy (select 1) to '{root}/z.csv'",
    "explain analyze create table t as select 1",
]
# SELECTs that would read or write outside the event log: they fail inside DuckDB
OUTSIDE = [
    "select * from read_csv('/etc/passwd')",
    "select * from read_text('/etc/passwd')",
    "select * from read_blob('/etc/passwd')",
    "select * from '/etc/passwd'",  # no replacement scan of a file name either
    "select * from sniff_csv('/etc/passwd')",
    "select * from read_parquet('{out}/outside.parquet')",
    "select * from parquet_metadata('{out}/outside.parquet')",
    "select * from read_parquet('{root}/../out/outside.parquet')",
    "select * from read_parquet('{root}/prompts/*/*.parquet')",  # the views are the only way in
    "select * from glob('/*')",
    "select * from glob('{root}/**')",
    "select * from read_csv('https://example.com/x.csv')",
    "select * from read_duckdb('{out}/x.db')",
    "select * from enable_logging(storage = 'file', storage_path = '{root}/log')",
    "select * from enable_profiling(save_location = '{root}/profile.json')",
    "select * from query('copy (select 1) to ''{root}/q.csv''')",
    "explain analyze select * from read_csv('/etc/passwd')",
]


@pytest.fixture
def log(tmp_path, monkeypatch):
    """An event log at tmp/events, files outside it at tmp/out, and tmp as the working folder
    (so a relative path written by DuckDB would land where the snapshot sees it)."""
    root = tmp_path / "events"
    events = EventLog(root)
    events.append([prompt("a", 1), prompt("b", 1)])
    events.append([prompt("c", 2)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "outside.csv").write_text("a\n1\n")
    (out / "outside.parquet").write_bytes(events.files()[0].read_bytes())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def fill(statement: str, folder) -> str:
    return statement.format(root=(folder / "events").as_posix(), out=(folder / "out").as_posix())


@pytest.mark.parametrize("statement", WRITES)
def test_writes_are_refused(log, statement):
    before = snapshot(log)
    with pytest.raises(SrlmError, match=r"^refused: .*`srlm sql` is read-only"):
        run_query(fill(statement, log), log / "events")
    assert snapshot(log) == before


@pytest.mark.parametrize("statement", OUTSIDE)
def test_nothing_outside_the_views_is_reachable(log, statement):
    before = snapshot(log)
    failure = r"(?s)^query failed: .*(disabled by configuration|locked|single SELECT|does not exist)"
    with pytest.raises(SrlmError, match=failure):
        run_query(fill(statement, log), log / "events")
    assert snapshot(log) == before


@pytest.mark.parametrize("statement", WRITES + OUTSIDE)
def test_the_cli_refuses_the_same(log, statement):
    before = snapshot(log)
    result = runner.invoke(app, ["sql", fill(statement, log), "--events", str(log / "events")])
    assert result.exit_code != 0
    assert isinstance(result.exception, SrlmError)
    assert str(result.exception).startswith(("refused: ", "query failed: "))
    assert snapshot(log) == before


def test_the_cli_refuses_sql_from_stdin(log):
    before = snapshot(log)
    result = runner.invoke(app, ["sql", "-", "--events", str(log / "events")],
                           input=fill("select 1;\ncopy (select 1) to '{root}/x.csv';\n", log))
    assert isinstance(result.exception, SrlmError) and "COPY statements are not allowed" in str(result.exception)
    assert snapshot(log) == before


def test_the_console_command_prints_the_refusal_and_exits_1(log):
    before = snapshot(log)
    statement = fill("explain analyze copy (select 1) to '{root}/prompts/iteration=1/z.parquet'", log)
    result = subprocess.run([sys.executable, "-c", "from srlm_core.cli import main; main()", "sql", statement,
                             "--events", str(log / "events")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "error: refused: EXPLAIN of COPY is not allowed" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(log) == before


def test_reads_still_work(log):
    result = run_query("select iteration, count(*) as n from prompts group by 1 order by 1", log / "events")
    assert result.rows == [(1, 2), (2, 1)]
    result = run_query("explain analyze select count(*) from prompts", log / "events")
    assert result.columns == ["explain_key", "explain_value"]


def test_max_rows_bounds_the_result(log):
    result = run_query("select * from range(1000)", log / "events", max_rows=7)
    assert len(result.rows) == 7 and result.truncated
    result = run_query("select * from prompts", log / "events", max_rows=3)
    assert len(result.rows) == 3 and not result.truncated
    with pytest.raises(SrlmError, match="max_rows"):
        run_query("select 1", log / "events", max_rows=0)


def test_cli_max_rows_bounds_the_output(log):
    result = runner.invoke(app, ["sql", "select * from range(1000) t(i)", "--format", "json", "--max-rows", "5",
                                 "--events", str(log / "events")])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [{"i": i} for i in range(5)]
    assert "stopped at 5 rows" in result.stderr
    result = runner.invoke(app, ["sql", "select * from range(1000)", "--format", "csv", "--max-rows", "1000",
                                 "--events", str(log / "events")])
    assert len(result.stdout.splitlines()) == 1001 and "stopped" not in result.stderr
    for bad in ("0", "-3"):
        result = runner.invoke(app, ["sql", "select 1", "--max-rows", bad, "--events", str(log / "events")])
        assert result.exit_code == 2


# --- bounded resources: time, memory, Ctrl-C, result size ---------------------------------

ENDLESS = "select count(*) from range(1e12::bigint)"   # minutes of work, in constant memory


def test_the_table_prints_brackets_as_data(log):
    """Cells are data, not rich markup: "[lowercase]" was dropped from the table and "[/]" crashed it."""
    result = runner.invoke(app, ["sql", "select '[lowercase] x' as a, 'a [/] b' as b, '[red]r' as \"[c]\"",
                                 "--events", str(log / "events")])
    assert result.exit_code == 0, result.output
    assert "[lowercase] x" in result.stdout and "a [/] b" in result.stdout and "[red]r" in result.stdout
    assert "[c]" in result.stdout


def test_json_refuses_two_columns_of_one_name(log):
    """A JSON object keeps one value per name; the other column would vanish without a word."""
    query = "select 1 as stage, 2 as stage"
    result = runner.invoke(app, ["sql", query, "--format", "json", "--events", str(log / "events")])
    assert isinstance(result.exception, SrlmError)   # the console command prints it and exits 1
    assert "more than one column named 'stage'" in str(result.exception) and "alias" in str(result.exception)
    csv = runner.invoke(app, ["sql", query, "--format", "csv", "--events", str(log / "events")])
    assert csv.exit_code == 0 and csv.stdout.splitlines() == ["stage,stage", "1,2"]


def test_a_query_past_the_time_limit_is_stopped(log):
    """It used to run for minutes; DuckDB has no time limit of its own."""
    start = time.monotonic()
    with pytest.raises(SrlmError, match=r"^query stopped: it ran past the time limit of 1 s; raise --timeout"):
        run_query(ENDLESS, log / "events", timeout=1)
    assert time.monotonic() - start < 5


def test_a_stop_that_comes_before_the_statement_has_started_still_stops_it(log):
    """On a loaded machine the worker thread can start its statement after the stop (Ctrl-C or the
    time limit) was sent; DuckDB drops an interrupt with no statement running, so the query then ran
    for minutes (seen in a CI run). Here the worker is held back 0.5 s, past a 0.05 s limit."""
    code = ("import time; from srlm_core.log import query; execute = query._execute\n"
            "query._execute = lambda *a: (time.sleep(0.5), execute(*a))\n"
            f"query.run_query({ENDLESS!r}, {str(log / 'events')!r}, timeout=0.05)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "query stopped: it ran past the time limit of 0.05 s" in proc.stderr


@pytest.mark.parametrize("statement", [
    "select list(i) from range(100000000) t(i)",                                  # one 800 MB value
    "select count(distinct a.i * 100000 + b.i) from range(100000) a(i), range(100000) b(i)",  # a cross join
])
def test_a_query_past_the_memory_limit_fails_naming_the_flag(log, statement):
    """DuckDB's default limit is 80% of the machine's memory, and a cross join reached 5.4 GB in
    15 s; nothing spills to disk (no temp directory), so past the limit the query fails."""
    with pytest.raises(SrlmError, match=r"^query failed: it needs more memory than the limit of 50MB .*"
                                        r"raise --memory-limit"):
        run_query(statement, log / "events", memory_limit="50MB", timeout=30)


def test_the_limits_are_set_and_locked(log):
    result = run_query("select current_setting('memory_limit'), current_setting('enable_progress_bar')",
                       log / "events", memory_limit="300MB")
    assert result.rows == [("286.1 MiB", False)]   # DuckDB shows 300 MB in MiB
    with pytest.raises(SrlmError, match=r"^--memory-limit 'lots' is not a size"):
        run_query("select 1", log / "events", memory_limit="lots")
    with pytest.raises(SrlmError, match=r"^refused: SET statements are not allowed"):
        run_query("set memory_limit = '100GB'", log / "events")


def test_cli_timeout_and_memory_limit_flags(log):
    events = str(log / "events")
    result = runner.invoke(app, ["sql", ENDLESS, "--timeout", "1", "--events", events])
    assert result.exit_code == 1 and "time limit of 1 s" in str(result.exception)
    result = runner.invoke(app, ["sql", "select list(i) from range(100000000) t(i)", "--memory-limit", "50MB",
                                 "--events", events])
    assert result.exit_code == 1 and "limit of 50MB" in str(result.exception)
    assert runner.invoke(app, ["sql", "select 1", "--timeout", "0", "--events", events]).exit_code == 2


@pytest.mark.parametrize("rows", ["1000001", "10000000000000000000000"])
def test_a_too_large_max_rows_is_a_usage_error(log, rows):
    """10**22 used to end in a TypeError traceback from fetchmany."""
    result = runner.invoke(app, ["sql", "select 1", "--max-rows", rows, "--events", str(log / "events")])
    assert result.exit_code == 2 and "--max-rows" in result.stderr
    with pytest.raises(SrlmError, match=r"^max_rows is \d+; give 1 to 1,000,000"):
        run_query("select 1", log / "events", max_rows=int(rows))


def test_ctrl_c_interrupts_the_query(log):
    """The console command, a real SIGINT: it used to be ignored until the query ended (minutes)."""
    code = "import srlm_core.cli as cli; print('imported', flush=True); cli.main()"
    # A terminal delivers Ctrl-C to a process whose SIGINT is at its default; a suite started as a background
    # job (`make test &`) has it ignored, and its children would inherit that.
    proc = subprocess.Popen([sys.executable, "-c", code, "sql", ENDLESS, "--events", str(log / "events")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline() == "imported\n"
    time.sleep(1.5)   # into the query (a signal before it also ends as below)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5
    assert proc.returncode == 130 and stderr == "interrupted: query stopped (Ctrl-C)\n" and stdout == ""


# --- where `iteration` comes from ------------------------------------------------------------

def test_a_file_whose_folder_and_column_disagree_is_refused(log):
    """The views read `iteration` from each file's column; the README says it is the partition
    folder. They must agree: a file moved into another partition's folder is named."""
    moved = EventLog(log / "events").files("prompts")[-1]            # iteration=2, holds iteration 2
    target = moved.parent.parent / "iteration=1" / moved.name
    moved.rename(target)
    with pytest.raises(SrlmError) as info:
        run_query("select iteration, count(*) from prompts group by 1", log / "events")
    assert str(info.value) == (f"{target}: its iteration column holds '2' but it is in the folder iteration=1; the "
                               "file was moved or written by hand (move it back to iteration=2, or delete it)")
