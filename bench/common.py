"""Shared by the benchmarks: repeated timing (medians), peak memory, machine facts, result files.

Every benchmark script writes one JSON file: {"name", "section" (markdown for
docs/benchmarks.md, starting with a `## ` heading), "data" (the raw numbers)}; bench/report.py
joins them under a header with the machine's facts.
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Callable

REPEATS = 3


def median_seconds(fn: Callable[[], object], repeats: int = REPEATS, warmup: int = 0) -> tuple[float, list[float]]:
    """Median wall time of `fn` over `repeats` runs (after `warmup` untimed runs), and all the times."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    import torch

    from srlm_core.engine.runtime import cpu_flags
    flags = cpu_flags()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"processor": model, "cores": torch.get_num_threads(),
            "capability": torch.backends.cpu.get_cpu_capability(),
            "flags": sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))}


def write_result(out: Path | str, name: str, section: str, data: dict) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    tmp.write_text(json.dumps({"name": name, "section": section, "data": data}, indent=1))
    tmp.replace(out)


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
