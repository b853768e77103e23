"""The tiny-model pipeline's outputs, pinned: a tripwire for changes that should not change behaviour
(moving code, renaming modules, re-encoding ids).

What is pinned is each event table's content in a canonical form (rows sorted, ids written as hex
whatever their stored encoding, `schema_version` left out) and each model's weight hash. Float
results differ between processor families (other matmul kernels, bf16 where the hardware has it),
so the pins are kept per processor capability and dtype; a machine with no pin of its own skips the
comparison and says how to add one. Within a family they can still differ in the last bits between
machines (seen on the AMX Xeon: judge scores changed, every id, text and model identical), so
a table's pin is exact for everything but its floats, which are held to a relative 1e-6 through
sums (`table_pin`). Pins written before that (a bare digest per table, `table_digest`) compare
exactly until re-written. A change that is meant to change behaviour re-pins with

    SRLM_PIN=write .venv/bin/pytest tests/test_pipeline.py -k pinned

on each processor family it can; a pin it could not re-write lists the tables it changed under
"unpinned" (with why), and those are not compared until a run there writes the pin again.
"""

from __future__ import annotations

import hashlib
import json
import math
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


def rows_of(files: list[Path]) -> list[dict]:
    rows = []
    for path in files:
        for row in pq.read_table(path).to_pylist():
            row.pop("schema_version", None)
            rows.append(cell(row))
    return rows


def table_digest(files: list[Path]) -> str:
    """The exact digest of the pins written before `table_pin`."""
    rows = [json.dumps(row, sort_keys=True, default=str) for row in rows_of(files)]
    return hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()


FLOAT = "<float>"
FLOAT_ID = "<id over floats>"
REL_TOL = 1e-6


def split_floats(value, floats: list[float]):
    """value with each finite float replaced by FLOAT and appended to floats (dict keys in sorted order)."""
    if isinstance(value, float) and math.isfinite(value):
        floats.append(value)
        return FLOAT
    if isinstance(value, list):
        return [split_floats(v, floats) for v in value]
    if isinstance(value, dict):
        return {k: split_floats(value[k], floats) for k in sorted(value)}
    return value


def float_derived_ids() -> set[str]:
    """Id fields computed over a float (a judgement's id covers its score), directly or through another
    such id: their last bits move with the float's, so the pin leaves them out, with every column that
    refers to them (`first_judgement_id`, ...). Ids over texts and integers stay exact."""
    from srlm_core.log.events import EVENT_TYPES

    names: set[str] = set()
    while True:
        found = {kind.ID_FIELD for kind in EVENT_TYPES
                 if any(refers_to(field, names) or type_ is float
                        for field, type_, _ in kind.columns() if field in kind.ID_FIELDS)}
        if found <= names:
            return names
        names |= found


def refers_to(column: str, ids: set[str]) -> bool:
    return any(column == name or column.endswith("_" + name) for name in ids)


def table_pin(files: list[Path]) -> dict:
    """{"rows": digest of the rows with their floats and float-derived ids blanked, "floats": [count,
    sum, position-weighted sum, and the two sums of magnitudes that scale the tolerance]}, floats in
    the rows' sorted order."""
    blank = float_derived_ids()
    keyed = []
    for row in rows_of(files):
        row = {k: FLOAT_ID if refers_to(k, blank) else v for k, v in row.items()}
        floats: list[float] = []
        keyed.append((json.dumps(split_floats(row, floats), sort_keys=True, default=str), floats))
    keyed.sort()
    values = [v for _, floats in keyed for v in floats]
    weighted = [(i + 1) * v for i, v in enumerate(values)]
    return {"rows": hashlib.sha256("\n".join(k for k, _ in keyed).encode()).hexdigest(),
            "floats": [len(values), math.fsum(values), math.fsum(weighted),
                       math.fsum(map(abs, values)), math.fsum(map(abs, weighted))]}


def same(want: dict, found: dict) -> bool:
    """Equal rows, and float sums within REL_TOL of the floats' magnitude."""
    (n, total, weighted, scale, weighted_scale), (m, total2, weighted2, _, _) = want["floats"], found["floats"]
    return (want["rows"] == found["rows"] and n == m and abs(total - total2) <= REL_TOL * scale
            and abs(weighted - weighted2) <= REL_TOL * weighted_scale)


def table_files(repo: Path) -> dict[str, list[Path]]:
    """{"<table>/<partition>": its Parquet files} of a finished run."""
    root = repo / "data" / "events"
    return {folder.relative_to(root).as_posix(): sorted(folder.glob("*.parquet"))
            for folder in sorted({p.parent for p in root.rglob("*.parquet")})}


def outputs(repo: Path) -> dict:
    """{"events": {"<table>/<partition>": table_pin}, "models": {name: weights hash}} of a finished run."""
    events = {key: table_pin(files) for key, files in table_files(repo).items()}
    models = {p.parent.name: json.loads(p.read_text())["hash"] for p in sorted((repo / "models").glob("*/manifest.json"))}
    return {"events": events, "models": models}


def changed_tables(repo: Path, want: dict, found: dict) -> list[str]:
    """The tables whose content differs from the pin `want` (a bare digest: compared exactly)."""
    unpinned = set(want.get("unpinned", {}).get("tables", []))
    files = table_files(repo)
    changed = []
    for key in sorted((want["events"].keys() | found["events"].keys()) - unpinned):
        pin, now = want["events"].get(key), found["events"].get(key)
        if pin is None or now is None:
            changed.append(key)
        elif isinstance(pin, str):
            if pin != table_digest(files[key]):
                changed.append(key)
        elif not same(pin, now):
            changed.append(key)
    return changed


def read() -> dict:
    return json.loads(PINS.read_text()) if PINS.is_file() else {}


def write(key: str, found: dict) -> None:
    pins = read()
    pins[key] = found
    PINS.parent.mkdir(exist_ok=True)
    PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
