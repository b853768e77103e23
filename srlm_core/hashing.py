"""Content hashes (sha256) of bytes, files, folders and event rows.

Everything in srlm is named by what made it: a row id is the hash of the fields that
define the row, a model's hash is the hash of its files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def row_id(*fields: object) -> str:
    """Content address of a row: sha256 over the canonical JSON of its defining fields."""
    canonical = json.dumps(list(fields), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return sha256_text(canonical)


def file_hashes(folder: Path | str, exclude: Iterable[str] = ()) -> dict[str, str]:
    """sha256 of every file under `folder`, keyed by POSIX relative path, sorted."""
    root = Path(folder)
    skip = set(exclude)
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel not in skip:
            found[rel] = sha256_file(path)
    return found


def combine(hashes: dict[str, str]) -> str:
    """One hash for a set of named hashes (a folder, or several data files)."""
    lines = "".join(f"{name}\0{value}\n" for name, value in sorted(hashes.items()))
    return sha256_text(lines)


def folder_hash(folder: Path | str, exclude: Iterable[str] = ()) -> str:
    return combine(file_hashes(folder, exclude))
