"""The `srlm` command: help everywhere, JSON that parses, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, SEED, small_tree, write_jsonl
from test_eventlog import prompt
from test_lineage import make_model
from typer.main import get_command
from typer.testing import CliRunner

from srlm_core.cli import app
from srlm_core.log.eventlog import EventLog

runner = CliRunner()


def command_paths(command=None, prefix=()):
    command = command or get_command(app)
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, prefix + (name,))


def leaf(path):
    command = get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def test_every_command_has_help_with_an_example():
    paths = list(command_paths())
    assert ("data", "stats") in paths and ("sql",) in paths and ("verify",) in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        if not hasattr(leaf(path), "commands"):
            assert "Example:" in result.output, path


def test_every_command_is_in_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for path in command_paths():
        if path:
            assert f"srlm {' '.join(path)}" in readme, path


def test_console_script_is_installed():
    bin_dir = REPO / ".venv" / "bin"
    exe = bin_dir / "srlm" if (bin_dir / "srlm").exists() else "srlm"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "sql" in result.stdout


def test_data_stats_json():
    result = runner.invoke(app, ["data", "stats", str(SEED), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"messages": 215, "trees": 50, "ift_examples": 50, "ranked_groups": 50}


def test_data_stats_bad_input_exits_non_zero(tmp_path):
    records = small_tree("t")
    del records[1]["role"]
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    result = subprocess.run([sys.executable, "-c", "from srlm_core.cli import main; main()",
                             "data", "stats", str(path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "bad.jsonl, line 2: missing field 'role'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_sql_formats(tmp_path, fmt):
    EventLog(tmp_path).append([prompt("a"), prompt("b")])
    result = runner.invoke(app, ["sql", "select text from prompts order by text", "--format", fmt,
                                 "--events", str(tmp_path)])
    assert result.exit_code == 0
    if fmt == "json":
        assert json.loads(result.output) == [{"text": "a"}, {"text": "b"}]
    elif fmt == "csv":
        assert result.output.splitlines() == ["text", "a", "b"]
    else:
        assert "a" in result.output and "text" in result.output


def test_sql_refusal_exits_non_zero(tmp_path):
    EventLog(tmp_path).append([prompt("a")])
    result = subprocess.run([sys.executable, "-c", "from srlm_core.cli import main; main()", "sql",
                             "create table t as select 1", "--events", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1 and "read-only" in result.stderr


@pytest.mark.parametrize("args", [["select 1"], ["--views"]], ids=["query", "views"])
def test_sql_events_pointing_at_nothing_is_an_error(tmp_path, args):
    """A mistyped --events used to read as an empty log: every table empty, exit 0."""
    (tmp_path / "empty").mkdir()
    for events, problem in [(tmp_path / "nope", "no such folder"), (tmp_path / "empty", "not an event log")]:
        result = runner.invoke(app, ["sql", *args, "--events", str(events)])
        assert result.exit_code == 1 and str(result.exception).startswith(f"{events}: {problem}")


def test_lineage_and_verify(tmp_path):
    models, events = tmp_path / "models", tmp_path / "events"
    m0 = make_model(models, "M0")
    make_model(models, "M1", parent=m0)
    EventLog(events).append([prompt("a")])
    result = runner.invoke(app, ["lineage", str(models / "M1"), "--json"])
    assert [s["name"] for s in json.loads(result.output)] == ["M1", "M0"]
    assert runner.invoke(app, ["verify", "--models", str(models), "--events", str(events)]).exit_code == 0
    (m0 / "config.json").write_text('{"changed": true}')
    result = runner.invoke(app, ["verify", "--models", str(models), "--events", str(events)])
    assert result.exit_code == 1 and "M0/config.json" in result.output
