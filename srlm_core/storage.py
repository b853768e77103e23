"""Atomic, deterministic file writes.

A writer puts bytes in a hidden temporary file beside the target, fsyncs, then renames:
a killed process leaves no partial file under the target's name (and the hidden name
matches no reader's glob). Parquet is written with fixed settings so the same rows give
the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import SrlmError

PARQUET_OPTIONS = dict(compression="zstd", compression_level=3, row_group_size=1 << 16,
                       use_dictionary=True, write_statistics=True, data_page_version="2.0")


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide outputs from other users
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    """The rename is in the folder's entries: without this a power cut can leave the old file, or none."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return sink.getvalue()


def write_parquet(table: pa.Table, path: Path | str) -> Path:
    return atomic_write_bytes(path, parquet_bytes(table))


def write_json(obj: object, path: Path | str) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: Path | str) -> dict:
    """A JSON file written by a stage; {} when the stage has not run yet."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise SrlmError(f"{path}: not valid JSON ({exc}); re-run the stage that writes it") from None
