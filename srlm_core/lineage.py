"""Model lineage: manifests, the chain back to M0, and integrity checks.

Every model folder holds `manifest.json`: the folder's content hash (sha256 over its
other files), each file's hash, the parent model's name and hash, the hash of the data
it was trained on, the params used, library versions and the sha256 of the manifest's
own content. A folder is published by renaming a finished temporary folder, so a reader
never sees a half-written model.
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
from .eventlog import EventLog, stray_files, tampered_files
from .hashing import combine, file_hashes, row_id, sha256_file
from .storage import write_json

MANIFEST = "manifest.json"
SELF_HASH = "manifest_sha256"  # sha256 over the manifest's other keys, so an edited manifest is detected
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
    manifest[SELF_HASH] = manifest_digest(manifest)
    write_json(manifest, folder / MANIFEST)
    return manifest


def manifest_digest(manifest: dict) -> str:
    return row_id("manifest", {k: v for k, v in manifest.items() if k != SELF_HASH})


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


def manifest_problems(model_dir: Path) -> list[str]:
    """Whether manifest.json is as written: canonical bytes (write_json's form) and, in manifests
    that record it, the sha256 of its content. A manifest without that key (written before it
    existed) is checked for form only."""
    path = model_dir / MANIFEST
    try:
        raw = path.read_bytes()
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return [f"{path}: changed (no longer valid JSON); its folder cannot be checked"]
    canonical = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    well_formed = (isinstance(manifest, dict) and isinstance(manifest.get("files"), dict)
                   and isinstance(manifest.get("hash"), str))
    changed = [f"{path}: changed (content differs from what srlm wrote); its folder cannot be checked"]
    if raw != canonical or not well_formed:
        return changed
    recorded = manifest.get(SELF_HASH)
    return changed if recorded is not None and recorded != manifest_digest(manifest) else []


def model_problems(model_dir: Path) -> list[str]:
    problems = manifest_problems(model_dir)
    if problems:  # a changed manifest would make every file it describes look changed
        return problems
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
    """(number of files checked, problems): re-hash every model file and event file.

    Not detectable here: an event file deleted, or added under the name of its own sha256
    (the log keeps no list of its files; `dvc status` compares against dvc.lock).
    """
    problems, checked = [], 0
    for manifest_path in sorted(Path(models_root).glob(f"*/{MANIFEST}")):
        if manifest_path.parent.name.startswith("."):   # a staging folder a killed stage left: not a model
            continue
        found = model_problems(manifest_path.parent)
        if not found:
            checked += len(read_manifest(manifest_path.parent)["files"])
        problems += found
    checked += len(EventLog(events_root).files())
    problems += [f"{path}: changed (sha256 differs from the hash in its name)" for path in tampered_files(events_root)]
    problems += [f"{path}: not an event file (event files are part-<sha256>.parquet; SQL over the folder "
                 "would read it)" for path in stray_files(events_root)]
    return checked, problems
