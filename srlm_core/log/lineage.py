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

import yaml

from ..errors import SrlmError
from ..hashing import combine, file_hashes, row_id, sha256_file
from ..storage import write_json
from .eventlog import EventLog, stray_files, tampered_files

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


def _model_folders(models_root: Path) -> list[Path]:
    # a dot-folder is a staging folder a killed stage left (`.M1.partial`): not a model
    return sorted(p for p in models_root.iterdir() if p.is_dir() and not p.name.startswith("."))


def missing_folders(models_root: Path | str, events_root: Path | str) -> list[str]:
    """Why `srlm verify` cannot vouch for a run at all: a folder to check is missing or empty
    (run from another folder, a mistyped --models / --events, nothing produced yet)."""
    models_root, events_root = Path(models_root), Path(events_root)
    problems = []
    for root, flag in ((models_root, "--models"), (events_root, "--events")):
        if not root.is_dir():
            problems.append(f"{root}: no such folder, so nothing in it was checked (run from the repository "
                            f"root, or give the folder with {flag})")
    empty = "so nothing in it was checked (run the pipeline or `dvc pull`, or give the folder with"
    if models_root.is_dir() and not _model_folders(models_root):
        problems.append(f"{models_root}: holds no model folders, {empty} --models)")
    if events_root.is_dir() and not EventLog(events_root).files():
        problems.append(f"{events_root}: holds no event files, {empty} --events)")
    return problems


def lineage_problems(model_dir: Path) -> list[str]:
    """What a (verified) manifest says exists: the folder under the name it was written as, and
    its parent beside it."""
    manifest = read_manifest(model_dir)
    problems = []
    if manifest["name"] != model_dir.name:
        problems.append(f"{model_dir}: its manifest names it {manifest['name']}; the folder was renamed "
                        f"(rename it back to {model_dir.parent / manifest['name']})")
    parent = manifest.get("parent")
    if parent and not (model_dir.parent / parent["name"] / MANIFEST).is_file():
        problems.append(f"{model_dir.parent / parent['name']}: missing, yet {model_dir / MANIFEST} names it as "
                        "the parent (restore it: `dvc checkout`, or rename the moved folder back)")
    return problems


def _dvc_listing(lock: Path, md5: str) -> list[str] | None:
    """The file names of a folder output, from DVC's cache (`<md5>.dir`), or None if not cached here."""
    listing = lock.parent / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    try:
        return [entry["relpath"] for entry in json.loads(listing.read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _stage_outs(lock: Path) -> dict[str, list[dict]]:
    """Stage name -> its outputs as dvc.lock records them (path relative to the lock's folder)."""
    try:
        stages = yaml.safe_load(lock.read_text(encoding="utf-8")).get("stages") or {}
        return {name: [dict(out) for out in stage.get("outs") or []] for name, stage in stages.items()}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, TypeError, ValueError) as exc:
        raise SrlmError(f"{lock}: not a readable dvc.lock ({str(exc)[:200]})") from None


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def lock_problems(lock: Path, models_root: Path | str, events_root: Path | str) -> list[str]:
    """Outputs that dvc.lock records under the model and event folders but that are gone: a model
    folder, an event partition, or one file of a partition (named when DVC's cache lists the
    partition's files, else counted). A stage none of whose outputs there exist has not run in
    this workspace (a fresh clone, `dvc repro` of part of the pipeline, a stage DVC cleared to
    re-run it): its entry is skipped. (Its metrics files are no sign: git tracks them.)"""
    roots = [Path(models_root).resolve(), Path(events_root).resolve()]
    problems = []
    for stage, outs in _stage_outs(lock).items():
        mine = [(out, path) for out in outs for path in [(lock.parent / str(out.get("path"))).resolve()]
                if any(_within(path, root) for root in roots)]
        if not any(path.exists() for _, path in mine):
            continue
        for out, path in mine:
            where = f"dvc.lock records it as an output of stage {stage}; `dvc checkout {out.get('path')}` restores it"
            if not path.exists():
                problems.append(f"{path}: missing ({where})")
            elif path.is_dir() and _within(path, roots[1]):
                problems += _partition_problems(lock, out, path, where)
    return problems


def _partition_problems(lock: Path, out: dict, folder: Path, where: str) -> list[str]:
    names = _dvc_listing(lock, str(out.get("md5", "")))
    if names is not None:
        return [f"{folder / name}: missing ({where})" for name in names if not (folder / name).is_file()]
    present = sum(1 for p in folder.rglob("*") if p.is_file())
    expected = out.get("nfiles")
    if isinstance(expected, int) and present < expected:
        return [f"{folder}: holds {present} files, {expected} expected: an event file is missing ({where})"]
    return []


def verify(models_root: Path | str = "models", events_root: Path | str = "data/events",
           lock: Path | str | None = None) -> tuple[int, list[str]]:
    """(number of files checked, problems): re-hash every model file and event file, and check
    what the lineage says exists: every model folder has its manifest, under its own name, beside
    its parent; and, given dvc.lock, every model folder, event partition and event file it records.

    Not detectable here: an event file added under the name of its own sha256, and outputs of a
    stage deleted all together (`dvc status` compares against dvc.lock).
    """
    problems, checked = [], 0
    models_root = Path(models_root)
    for model_dir in _model_folders(models_root) if models_root.is_dir() else []:
        if not (model_dir / MANIFEST).is_file():
            problems.append(f"{model_dir / MANIFEST}: missing; every model folder srlm writes has one, so its "
                            "files cannot be checked (restore it: `dvc checkout`, or re-run the stage)")
            continue
        found = model_problems(model_dir)
        if not found:
            checked += len(read_manifest(model_dir)["files"])
            found = lineage_problems(model_dir)
        problems += found
    checked += len(EventLog(events_root).files())
    problems += [f"{path}: changed (sha256 differs from the hash in its name)" for path in tampered_files(events_root)]
    problems += [f"{path}: not an event file (event files are part-<sha256>.parquet; SQL over the folder "
                 "would read it)" for path in stray_files(events_root)]
    if lock is not None:
        problems += lock_problems(Path(lock), models_root, events_root)
    return checked, problems
