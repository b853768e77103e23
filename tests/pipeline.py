"""Helpers to run the real DVC pipeline in a throwaway copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO

BIN = Path(sys.executable).parent


def clone_repo(dest: Path, params: dict, cache: Path | None = None) -> Path:
    """A git repo holding the tracked files of this checkout, with params.yaml overridden. `cache`: a
    DVC cache shared with other copies, so a stage whose command, dependencies and params equal one
    already run there is restored from DVC's run cache instead of run again."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    for rel in filter(None, files):
        source = REPO / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    current = yaml.safe_load((dest / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(merge(current, params), sort_keys=False))
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "test copy")
    if cache is not None:
        dvc(dest, "cache", "dir", "--local", str(cache))
    return dest


REPLACED = {"iterations", "matchups", "references"}   # collections of named entries: an override replaces them whole


def merge(base: dict, override: dict) -> dict:
    """params.yaml with `override` merged in, section by section and key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in REPLACED:
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # The copy's own srlm_core, not the editable install's: what DVC hashed is what runs.
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(cwd),
               SRLM_SCRATCH=str(cwd / ".srlm"))
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, str(BIN / "dvc"), *args, check=check)


def srlm(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, str(BIN / "srlm"), *args, check=check)
