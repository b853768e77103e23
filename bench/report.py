"""Join the benchmark results (bench/results/*.json) into docs/benchmarks.md under a header with
the machine's facts and library versions. The GPU section (bench/gpu_section.md) is measured on a
lent GPU machine, not by `make bench`, and is carried over verbatim, as is the hand-written
reading of the last run (bench/analysis.md).

    python bench/report.py [--results bench/results] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine  # noqa: E402

ORDER = ["generation", "judge", "dpo_step", "eventlog_scale", "e2e"]
PACKAGES = ["torch", "transformers", "trl", "peft", "duckdb", "polars", "pyarrow", "dvc", "llama_cpp_python"]


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def render(results: list, gpu_section: str) -> str:
    from srlm_core.engine import runtime
    m = machine()
    versions = ", ".join(f"{p} {version(p)}" for p in PACKAGES)
    found = {r["name"]: r for r in results}
    missing = [name for name in ORDER if name not in found]
    header = [
        "# Benchmarks", "",
        "Written by `make bench` (`bench/report.py`); every comparison in a section was measured side by side "
        "in one run on one machine and is reported as a ratio of medians. Do not compare numbers across "
        "machines: the processor changes between them.", "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- processor: {m['processor']}, {m['cores']} threads, torch capability {m['capability']}",
        f"- flags: {' '.join(m['flags'])}",
        f"- srlm's default dtype here (`generation.dtype: auto`): {str(runtime.compute_dtype()).removeprefix('torch.')}",
        f"- versions: {versions}",
        "- commands: `make bench` (all of the below), `make bench-peers` first for llama.cpp, `make test-vllm` "
        "first for vLLM", ""]
    if missing:
        header += [f"Not in this run: {', '.join(missing)}.", ""]
    body = [found[name]["section"].strip() + "\n" for name in ORDER if name in found]
    analysis = ROOT / "bench" / "analysis.md"
    notes = [analysis.read_text().strip() + "\n"] if analysis.exists() else []
    return "\n".join(header + body + notes + [gpu_section.strip(), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    # the folder also holds other measurements (judge templates, injection) with their own docs
    results = [r for r in (json.loads(p.read_text()) for p in sorted(args.results.glob("*.json")))
               if r.get("name") in ORDER]
    text = render(results, (ROOT / "bench" / "gpu_section.md").read_text())
    tmp = args.out.with_suffix(".partial")
    tmp.write_text(text)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({len(results)} result files)")


if __name__ == "__main__":
    main()
