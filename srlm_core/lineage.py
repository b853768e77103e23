"""Model lineage: manifests, the chain back to M0, and integrity checks.

Every model folder holds `manifest.json`: the folder's content hash (sha256 over its
other files), each file's hash, the parent model's name and hash, the hash of the data
it was trained on, the params used and library versions. A folder is published by
renaming a finished temporary folder, so a reader never sees a half-written model.
"""

from __future__ import annotations

import json
import platform
import shutil
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Iterator

from .errors import SrlmError
from .eventlog import EventLog, tampered_files
from .hashing import combine, file_hashes, sha256_file
from .storage import write_json

MANIFEST = "manifest.json"
LIBRARIES = ("srlm", "torch", "transformers", "trl", "peft", "accelerate", "tokenizers", "safetensors")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def data_hashes(paths: list[Path | str]) -> dict:
    files = {Path(p).as_posix(): sha256_file(p) for p in paths}
    return {"files": files, "hash": combine(files)}


@contextmanager
def staging(out_dir: Path | str) -> Iterator[Path]:
    """A temporary sibling folder that replaces `out_dir` only if the block succeeds."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def write_manifest(folder: Path, *, name: str, kind: str, parent: Path | None, training_data: dict | None,
                   params: dict, extra: dict | None = None) -> dict:
    files = file_hashes(folder, exclude=[MANIFEST])
    manifest = {
        "name": name,
        "kind": kind,
        "hash": combine(files),
        "files": files,
        "parent": None if parent is None else {"name": Path(parent).name, "hash": read_manifest(parent)["hash"]},
        "training_data": training_data,
        "params": params,
        "versions": library_versions(),
        **(extra or {}),
    }
    write_json(manifest, folder / MANIFEST)
    return manifest


def read_manifest(model_dir: Path | str) -> dict:
    path = Path(model_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SrlmError(f"{path}: no manifest; is {model_dir} a model folder written by srlm?") from None
    except json.JSONDecodeError as exc:
        raise SrlmError(f"{path}: not valid JSON ({exc})") from None


def chain(model_dir: Path | str) -> list[dict]:
    """The model and its ancestors back to the base, each checked against its child's record."""
    model_dir = Path(model_dir)
    out: list[dict] = []
    while True:
        manifest = read_manifest(model_dir)
        data = manifest.get("training_data") or {}
        out.append({"name": manifest["name"], "kind": manifest["kind"], "hash": manifest["hash"],
                    "path": model_dir.as_posix(), "training_data": data.get("name"),
                    "training_data_hash": data.get("hash"),
                    "parent_hash": (manifest["parent"] or {}).get("hash")})
        parent = manifest.get("parent")
        if parent is None:
            return out
        model_dir = model_dir.parent / parent["name"]
        actual = read_manifest(model_dir)["hash"]
        if actual != parent["hash"]:
            raise SrlmError(f"{model_dir}: hash {actual[:12]} differs from {parent['hash'][:12]} recorded "
                            f"by its child {out[-1]['name']}; the parent was changed after the child was trained")


def model_problems(model_dir: Path) -> list[str]:
    manifest = read_manifest(model_dir)
    actual = file_hashes(model_dir, exclude=[MANIFEST])
    problems = [f"{model_dir / rel}: changed (sha256 differs from manifest)"
                for rel, digest in manifest["files"].items() if rel in actual and actual[rel] != digest]
    problems += [f"{model_dir / rel}: missing" for rel in manifest["files"] if rel not in actual]
    problems += [f"{model_dir / rel}: not in manifest" for rel in actual if rel not in manifest["files"]]
    if not problems and combine(actual) != manifest["hash"]:
        problems.append(f"{model_dir}: folder hash differs from manifest")
    return problems


def verify(models_root: Path | str = "models", events_root: Path | str = "data/events") -> tuple[int, list[str]]:
    """(number of files checked, problems): re-hash every model file and event file."""
    problems, checked = [], 0
    for manifest_path in sorted(Path(models_root).glob(f"*/{MANIFEST}")):
        checked += len(read_manifest(manifest_path.parent)["files"])
        problems += model_problems(manifest_path.parent)
    checked += len(EventLog(events_root).files())
    problems += [f"{path}: changed (sha256 differs from the hash in its name)" for path in tampered_files(events_root)]
    return checked, problems
