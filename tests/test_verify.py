"""`srlm verify` names exactly the file whose bytes changed, or that went missing or appeared,
in a real (tiny) model folder and a small event log. The library-level checks are in
tests/test_lineage.py; this is the command, one fault at a time."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from srlm_core.cli import app
from srlm_core.eventlog import EventLog
from test_eventlog import prompt

runner = CliRunner()


@pytest.fixture
def run_dir(tmp_path, tiny_srlm_model):
    """models/M1 (weights, config, tokenizer, manifest) and events/prompts in two partitions."""
    shutil.copytree(tiny_srlm_model, tmp_path / "models" / "M1")
    log = EventLog(tmp_path / "events")
    log.append([prompt("a", 1), prompt("b", 1)])
    log.append([prompt("c", 2)])
    return tmp_path


def verify(run_dir):
    result = runner.invoke(app, ["verify", "--models", str(run_dir / "models"), "--events", str(run_dir / "events")])
    mismatches = [line.removeprefix("MISMATCH ") for line in result.stderr.splitlines()
                  if line.startswith("MISMATCH ")]
    return result, mismatches


def flip(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def event_file(run_dir):
    return EventLog(run_dir / "events").files("prompts")[0]


def test_untouched_run_passes(run_dir):
    result, mismatches = verify(run_dir)
    assert result.exit_code == 0 and mismatches == []
    files = json.loads((run_dir / "models" / "M1" / "manifest.json").read_text())["files"]
    assert result.stdout == f"ok: {len(files) + 2} files match their recorded sha256\n"


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("target", ["model.safetensors", "config.json", "event"])
def test_one_flipped_byte_is_named(run_dir, target, where):
    path = event_file(run_dir) if target == "event" else run_dir / "models" / "M1" / target
    size = path.stat().st_size
    flip(path, {"first": 0, "middle": size // 2, "last": size - 1}[where])
    result, mismatches = verify(run_dir)
    assert result.exit_code == 1
    assert len(mismatches) == 1 and mismatches[0].startswith(f"{path}: changed"), mismatches


def test_an_edited_manifest_is_named(run_dir):
    """A manifest edit that keeps valid JSON (one hex digit of a recorded hash) and one that
    breaks it: either way the manifest is named, not the file its entry describes."""
    manifest = run_dir / "models" / "M1" / "manifest.json"
    original = manifest.read_bytes()
    digest = json.loads(original)["files"]["config.json"]
    flip(manifest, original.index(digest.encode()) + 10)
    result, mismatches = verify(run_dir)
    assert result.exit_code == 1 and len(mismatches) == 1 and mismatches[0].startswith(f"{manifest}: changed")

    manifest.write_bytes(original.replace(b'"files": {', b'"files": [', 1))
    result, mismatches = verify(run_dir)
    assert result.exit_code == 1 and mismatches == [f"{manifest}: changed (no longer valid JSON); its folder "
                                                    "cannot be checked"]


def test_an_edited_param_in_the_manifest_is_named(run_dir):
    manifest = run_dir / "models" / "M1" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"kind": "base"', '"kind": "sft!"'))
    result, mismatches = verify(run_dir)
    assert result.exit_code == 1 and len(mismatches) == 1 and mismatches[0].startswith(f"{manifest}: changed")


def test_a_deleted_model_file_is_named(run_dir):
    path = run_dir / "models" / "M1" / "config.json"
    path.unlink()
    result, mismatches = verify(run_dir)
    assert result.exit_code == 1 and mismatches == [f"{path}: missing"]


def test_an_added_model_file_is_named(run_dir):
    path = run_dir / "models" / "M1" / "extra.bin"
    path.write_bytes(b"\0")
    result, mismatches = verify(run_dir)
    assert result.exit_code == 1 and mismatches == [f"{path}: not in manifest"]


@pytest.mark.parametrize("name", ["extra.parquet", "part-0000.parquet", "notes.txt"])
def test_an_added_event_file_is_named(run_dir, name):
    """A file the log did not write: named wrongly (stray) or under a part- name its bytes do
    not hash to. (A file added under the sha256 of its own bytes cannot be told apart from one
    the log wrote; nor can a deleted event file be noticed: see docs/reliability.md.)"""
    path = event_file(run_dir).parent / name
    path.write_bytes(event_file(run_dir).read_bytes())
    result, mismatches = verify(run_dir)
    assert result.exit_code == 1 and len(mismatches) == 1 and mismatches[0].startswith(f"{path}: "), mismatches
