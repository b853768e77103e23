"""The tiny-model pipeline's outputs, pinned: a tripwire for changes that should not change behaviour
(moving code, renaming modules, re-encoding ids).

What is pinned is each event table's content in a canonical form (rows sorted, ids written as hex
whatever their stored encoding, `schema_version` left out) and each model's weight hash. Float
results differ between processor families (other matmul kernels, bf16 where the hardware has it),
so the pins are kept per processor capability and dtype; a machine with no pin of its own skips the
comparison and says how to add one. A change that is meant to change behaviour re-pins with

    SRLM_PIN=write .venv/bin/pytest tests/test_pipeline.py -k pinned

on each processor family it can; a pin it could not re-write lists the tables it changed under
"unpinned" (with why), and those are not compared until a run there writes the pin again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

from srlm_core.engine import runtime

PINS = Path(__file__).parent / "pinned" / "tiny_pipeline.json"


def machine_key() -> str:
    """The processor family as it affects float results, and the dtype the models run in."""
    flags = runtime.cpu_flags()
    family = next((name for name, flag in (("amx", "amx_bf16"), ("avx512_bf16", "avx512_bf16"),
                                           ("avx512", "avx512f"), ("avx2", "avx2")) if flag in flags), "other")
    return f"{family}/{str(runtime.compute_dtype()).removeprefix('torch.')}"


def cell(value):
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [cell(v) for v in value]
    if isinstance(value, dict):
        return {k: cell(v) for k, v in value.items()}
    return value


def table_digest(files: list[Path]) -> str:
    rows = []
    for path in files:
        for row in pq.read_table(path).to_pylist():
            row.pop("schema_version", None)
            rows.append(json.dumps(cell(row), sort_keys=True, default=str))
    return hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()


def outputs(repo: Path) -> dict:
    """{"events": {"<table>/<partition>": digest}, "models": {name: weights hash}} of a finished run."""
    events = {}
    for folder in sorted({p.parent for p in (repo / "data" / "events").rglob("*.parquet")}):
        key = folder.relative_to(repo / "data" / "events").as_posix()
        events[key] = table_digest(sorted(folder.glob("*.parquet")))
    models = {p.parent.name: json.loads(p.read_text())["hash"] for p in sorted((repo / "models").glob("*/manifest.json"))}
    return {"events": events, "models": models}


def read() -> dict:
    return json.loads(PINS.read_text()) if PINS.is_file() else {}


def write(key: str, found: dict) -> None:
    pins = read()
    pins[key] = found
    PINS.parent.mkdir(exist_ok=True)
    PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
