"""The committed dvc.lock (and with it metrics/ and reports/, written by the same run) agrees with
the code: every stage of dvc.yaml is locked, with the hashes of the files in this tree and the
values of params.yaml. A change to code or params therefore comes with a fresh `make run`, so
`dvc metrics diff` against a commit compares runs of that commit's code."""

from __future__ import annotations

import json
import subprocess

import yaml
from conftest import REPO
from pipeline import BIN


def run(*args: str) -> str:
    return subprocess.run(list(args), cwd=REPO, capture_output=True, text=True, check=True).stdout


def test_every_stage_is_locked():
    stages = {line.split()[0] for line in run(str(BIN / "dvc"), "stage", "list", "--name-only").splitlines()
              if line.strip()}
    locked = set(yaml.safe_load((REPO / "dvc.lock").read_text())["stages"])
    assert stages == locked, f"not locked: {sorted(stages - locked)}; locked but gone: {sorted(locked - stages)}"


def stage_outputs() -> set[str]:
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    return {out["path"].rstrip("/") for stage in lock.values() for out in stage.get("outs", [])}


def test_the_lock_holds_the_trees_code_and_params():
    tracked = set(run("git", "ls-files").splitlines())
    outs = stage_outputs()
    stale = {}
    for stage, changes in json.loads(run(str(BIN / "dvc"), "status", "--json")).items():
        for change in changes:
            if not isinstance(change, dict):
                stale.setdefault(stage, []).append(change)        # e.g. "changed command"
                continue
            for path, state in change.get("changed deps", {}).items():
                # outputs of other stages (models, event logs) are not in git, so absent from a fresh clone;
                # a folder that holds them (data/events, beside its tracked .gitignore files) is one too
                folder = path.rstrip("/")
                if any(o == folder or o.startswith(folder + "/") for o in outs):
                    continue
                if path in tracked or any(t.startswith(folder + "/") for t in tracked):
                    stale.setdefault(stage, []).append(f"{path}: {state}")
    assert not stale, ("dvc.lock is older than the tree; run `make run` and commit dvc.lock, metrics/ and reports/: "
                       f"{stale}")
