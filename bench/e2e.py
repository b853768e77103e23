"""The embedded default end to end: `dvc repro` on a fresh clone of this commit, wall time per
stage (from the moment DVC starts a stage to the moment it starts the next one or exits).

    python bench/e2e.py --out bench/results/e2e.json      # about 30 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import table, write_result  # noqa: E402

STARTED = re.compile(r"Running stage '([^']+)'")


def run_timed(repo: Path) -> tuple[list[tuple[str, float]], float]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "SRLM_SCRATCH": str(repo / ".srlm")}
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    proc = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    for line in proc.stdout:
        found = STARTED.search(line)
        if found:
            marks.append((found.group(1), time.perf_counter() - start))
    if proc.wait() != 0:
        raise SystemExit(f"dvc repro failed in {repo} (exit {proc.returncode})")
    total = time.perf_counter() - start
    ends = [t for _, t in marks[1:]] + [total]
    return [(name, end - began) for (name, began), end in zip(marks, ends)], total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "e2e.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="srlm-e2e-") as tmp:
        repo = Path(tmp) / "srlm"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True).stdout.strip()
        stages, total = run_timed(repo)
    data = {"commit": commit, "stages": stages, "total_s": total}
    body = [[f"`{name}`", f"{seconds:.0f}"] for name, seconds in stages] + [["**all**", f"**{total:.0f}**"]]
    section = "\n".join(["## The embedded default end to end", "",
                         f"`dvc repro` on a fresh clone of {commit} (offline base model, bundled seed, default "
                         "params); wall seconds per stage, DVC's own overhead included.", "",
                         table(["stage", "seconds"], body), "", "Command: `python bench/e2e.py`."])
    write_result(args.out, "e2e", section, data)


if __name__ == "__main__":
    main()
