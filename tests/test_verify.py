"""`srlm verify` names exactly the file whose bytes changed, or that went missing or appeared,
in a real (tiny) model folder and a small event log. The library-level checks are in
tests/test_lineage.py; this is the command, one fault at a time."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from test_eventlog import prompt
from typer.testing import CliRunner

from srlm_core.cli import app
from srlm_core.log.eventlog import EventLog

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


@pytest.mark.parametrize("name", ["extra.parquet", "part-0000.parquet", "notes.txt", ".hidden.parquet"])
def test_an_added_event_file_is_named(run_dir, name):
    """A file the log did not write: named wrongly (stray) or under a part- name its bytes do
    not hash to. (A file added under the sha256 of its own bytes cannot be told apart from one
    the log wrote: see docs/reliability.md. A deleted one is noticed through dvc.lock, below.)"""
    path = event_file(run_dir).parent / name
    path.write_bytes(event_file(run_dir).read_bytes())
    result, mismatches = verify(run_dir)
    assert result.exit_code == 1 and len(mismatches) == 1 and mismatches[0].startswith(f"{path}: "), mismatches


def test_a_killed_write_s_temporary_file_is_not_named(run_dir):
    """storage.py's temporary file while it writes: the views' `*.parquet` glob does not read it."""
    (event_file(run_dir).parent / f".{event_file(run_dir).name}.x1y2.partial").write_bytes(b"\0")
    result, mismatches = verify(run_dir)
    assert result.exit_code == 0 and mismatches == []


# --- when verify cannot vouch: folders missing or empty, lineage that points at nothing ----------

def unchecked(result) -> list[str]:
    return [line.removeprefix("NOT CHECKED ") for line in result.stderr.splitlines()
            if line.startswith("NOT CHECKED ")]


@pytest.mark.parametrize("models,events,named,problem", [
    ("modles", "events", "modles", "no such folder"),           # a mistyped --models
    ("models", "event", "event", "no such folder"),             # a mistyped --events
    ("no-models", "events", "no-models", "holds no model folders"),
    ("models", "no-events", "no-events", "holds no event files"),
], ids=["models-mistyped", "events-mistyped", "models-empty", "events-empty"])
def test_a_missing_or_empty_folder_fails(run_dir, models, events, named, problem):
    """Each used to print "ok: N files" and exit 0 (with N = 0 when run from the wrong folder)."""
    (run_dir / "no-models").mkdir()
    (run_dir / "no-events" / "prompts").mkdir(parents=True)   # a table folder, no files
    result = runner.invoke(app, ["verify", "--models", str(run_dir / models), "--events", str(run_dir / events)])
    assert result.exit_code == 1 and "ok:" not in result.stdout
    assert len(unchecked(result)) == 1 and unchecked(result)[0].startswith(f"{run_dir / named}: {problem}")


def test_run_from_the_wrong_folder_fails(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 1
    assert [line.split(":")[0] for line in unchecked(result)] == ["models", "data/events"]


def test_a_deleted_manifest_is_named(run_dir):
    manifest = run_dir / "models" / "M1" / "manifest.json"
    manifest.unlink()
    result, mismatches = verify(run_dir)
    assert result.exit_code == 1 and len(mismatches) == 1 and mismatches[0].startswith(f"{manifest}: missing")


def add_child(run_dir, name="M2", parent="M1"):
    from srlm_core.log.lineage import write_manifest

    folder = run_dir / "models" / name
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    write_manifest(folder, name=name, kind="dpo-full", parent=run_dir / "models" / parent, training_data=None,
                   params={})
    return folder


def test_a_model_folder_renamed_away_is_named(run_dir):
    add_child(run_dir)
    assert verify(run_dir)[0].exit_code == 0
    (run_dir / "models" / "M1").rename(run_dir / "models" / "M1.old")
    result, mismatches = verify(run_dir)
    assert result.exit_code == 1 and mismatches == [
        f"{run_dir / 'models' / 'M1.old'}: its manifest names it M1; the folder was renamed (rename it back to "
        f"{run_dir / 'models' / 'M1'})",
        f"{run_dir / 'models' / 'M1'}: missing, yet {run_dir / 'models' / 'M2' / 'manifest.json'} names it as the "
        "parent (restore it: `dvc checkout`, or rename the moved folder back)"]


def test_a_deleted_parent_model_is_named(run_dir):
    add_child(run_dir)
    shutil.rmtree(run_dir / "models" / "M1")
    result, mismatches = verify(run_dir)
    assert result.exit_code == 1 and len(mismatches) == 1
    assert mismatches[0].startswith(f"{run_dir / 'models' / 'M1'}: missing, yet")


def write_lock(run_dir, *, cached: bool) -> None:
    """A dvc.lock in DVC's format recording both prompt partitions (and a stage not run here), and,
    if `cached`, DVC's cache listing of partition iteration=1."""
    log = EventLog(run_dir / "events")
    outs = {}
    for t in (1, 2):
        folder = log.partition("prompts", t)
        names = sorted(p.name for p in folder.iterdir())
        md5 = f"{t:02d}" + "0" * 30 + ".dir"
        outs[t] = {"path": f"events/prompts/iteration={t}", "hash": "md5", "md5": md5, "size": 1,
                   "nfiles": len(names)}
        if cached:
            listing = run_dir / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
            listing.parent.mkdir(parents=True, exist_ok=True)
            listing.write_text(json.dumps([{"md5": "0" * 32, "relpath": n} for n in names]))
    stages = {"prompts@1": {"cmd": "x", "outs": [outs[1]]}, "prompts@2": {"cmd": "x", "outs": [outs[2]]},
              "dpo@M9": {"cmd": "x", "outs": [{"path": "models/M9", "hash": "md5", "md5": "9" * 32 + ".dir",
                                               "size": 1, "nfiles": 7}]}}
    (run_dir / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))


@pytest.mark.parametrize("cached", [True, False], ids=["named-from-dvc-cache", "counted-from-nfiles"])
def test_a_deleted_event_file_is_named_from_dvc_lock(run_dir, monkeypatch, cached):
    """The log keeps no list of its files; dvc.lock (and DVC's cache listing of each partition) does."""
    write_lock(run_dir, cached=cached)
    monkeypatch.chdir(run_dir)   # dvc.lock of the working folder, as from the repository root
    result, mismatches = verify(run_dir)
    assert result.exit_code == 0, mismatches   # models/M9 of a stage not run here is not asked for
    path = event_file(run_dir)
    path.unlink()
    result, mismatches = verify(run_dir)
    assert result.exit_code == 1 and len(mismatches) == 1
    if cached:
        assert mismatches[0].startswith(f"{path}: missing (dvc.lock records it as an output of stage prompts@1")
    else:
        assert mismatches[0].startswith(f"{path.parent}: holds 0 files, 1 expected: an event file is missing")


def test_a_deleted_partition_is_named_from_dvc_lock(run_dir):
    """A stage with two partitions, one deleted whole (--lock given explicitly, from anywhere)."""
    write_lock(run_dir, cached=True)
    lock = yaml.safe_load((run_dir / "dvc.lock").read_text())
    lock["stages"]["prompts@1"]["outs"] += lock["stages"].pop("prompts@2")["outs"]
    (run_dir / "dvc.lock").write_text(yaml.safe_dump(lock))
    partition = EventLog(run_dir / "events").partition("prompts", 2)
    shutil.rmtree(partition)
    result = runner.invoke(app, ["verify", "--models", str(run_dir / "models"), "--events", str(run_dir / "events"),
                                 "--lock", str(run_dir / "dvc.lock")])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"MISMATCH {partition}: missing (dvc.lock records it as an output of "
                                          "stage prompts@1; `dvc checkout events/prompts/iteration=2` restores it)"]
