"""Atomicity under SIGKILL: a writer killed at random moments leaves whole files or none where
readers look. A child process appends event batches (several MB each) or publishes model
folders in a loop; the test kills it at random times and checks what DuckDB views, the
event log and `srlm verify` see."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq

from srlm_core.log import query
from srlm_core.log.eventlog import EventLog, stray_files, tampered_files
from srlm_core.log.lineage import read_manifest, verify
from srlm_core.storage import atomic_write_bytes

REPO = Path(__file__).resolve().parents[1]

APPEND = """
import sys
from srlm_core.log.eventlog import EventLog
from srlm_core.log.events import PromptAdded
log = EventLog(sys.argv[1])
batch = len(log.files())   # a new child continues where the killed one stopped
while True:
    log.append([PromptAdded.create(iteration=1, source="generated", text=f"{batch}-{i} " + "x" * 200,
                                   model_hash="m" * 64, origin_id=None, split=None, stage="t", seed=0,
                                   sampling=None) for i in range(5000)])
    batch += 1
    print(batch, flush=True)
"""

PUBLISH = """
import os, sys
from pathlib import Path
from srlm_core.log.lineage import staging, write_manifest
out, n = Path(sys.argv[1]), 0
while True:
    with staging(out) as tmp:
        for name in ("model.safetensors", "optimizer.bin"):
            (tmp / name).write_bytes(os.urandom(8 << 20))
        write_manifest(tmp, name=out.name, kind="test", parent=None, training_data=None, params={"n": n})
    n += 1
    print(n, flush=True)
"""


def kill_at_random(code: str, target: Path, kills: int, seed: int) -> int:
    """Run `code` on `target` and SIGKILL it `kills` times, each at a random moment of a write
    (after its first whole write, within the time one write takes); returns how many writes finished."""
    rng, finished = random.Random(seed), 0
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for _ in range(kills):
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(target)], env=env,
                                 stdout=subprocess.PIPE, text=True)
        start = time.monotonic()
        child.stdout.readline()                    # one write done (start-up included)
        first = time.monotonic() - start
        time.sleep(rng.uniform(0.05, 1.0) * first)
        os.kill(child.pid, signal.SIGKILL)
        finished += 1 + len(child.communicate()[0].split())
    return finished


def test_killed_event_appends_leave_only_whole_files(tmp_path):
    events = tmp_path / "events"
    batches = kill_at_random(APPEND, events, kills=4, seed=1)
    files = EventLog(events).files()
    # every reported batch is a file; a kill between a file's rename and the child's print loses the print
    assert 0 < batches <= len(files) <= batches + 4
    assert tampered_files(events) == [] and stray_files(events) == []
    rows = sum(pq.read_metadata(p).num_rows for p in files)
    assert rows == 5000 * len(files)                         # every file complete, and readable
    con = query.connect(events)
    assert con.execute("select count(*) from prompts").fetchone()[0] == rows
    leftovers = [p.name for p in (events / "prompts" / "iteration=1").iterdir() if p not in files]
    assert all(name.startswith(".") and name.endswith(".partial") for name in leftovers)


def test_a_killed_model_publish_leaves_the_old_folder_or_the_new_one(tmp_path):
    models = tmp_path / "models"
    kill_at_random(PUBLISH, models / "M1", kills=4, seed=2)
    checked, problems = verify(models, tmp_path / "no-events")
    assert problems == []                                      # a staging folder left behind is not read
    if (models / "M1").exists():
        assert read_manifest(models / "M1")["kind"] == "test" and checked == 2
    assert {p.name for p in models.iterdir()} <= {"M1", ".M1.partial"}


def test_a_write_syncs_the_file_and_then_its_folder(tmp_path, monkeypatch):
    """The rename is durable only once the folder's entries are on disk too."""
    synced, real = [], os.fsync

    def record(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)
    monkeypatch.setattr(os, "fsync", record)
    atomic_write_bytes(tmp_path / "sub" / "a.json", b"{}")
    assert len(synced) == 2 and Path(synced[0]).name.startswith(".a.json.") and synced[1] == str(tmp_path / "sub")
