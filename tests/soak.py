"""Soak run (`make soak`): the tiny-model loop for three iterations, SIGKILLed at random moments.

Runs the whole DAG once without faults (the reference), then again in a second copy where
`dvc repro` is killed (its whole process group, SIGKILL) after a random delay, restarted,
killed again, `--kills` times, and finally left to finish. Then checks that `srlm verify`
passes, `dvc status` is clean, every event table holds exactly the reference's rows, and
every model has the reference's hash. Prints a JSON summary (which stages were hit) and exits
1 on any difference.

    python tests/soak.py --kills 12 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from pipeline import BIN, clone_repo, dvc, srlm  # noqa: E402
from tiny_model import save_tiny_model, save_tokenizer  # noqa: E402

PARAMS = {
    "sft": {"batch_size": 2, "grad_accum": 1, "max_steps": 8, "max_length": 256},
    "train": {"checkpoint_minutes": 0},
    "eft": {"max_groups": 6, "min_examples": 1},
    # batches of one: many chunks per stage, so kills land between finished chunks
    "prompts": {"num_prompts": 6, "requests_per_round": 2, "max_rounds": 12, "min_words": 1, "max_new_tokens": 16},
    "candidates": {"max_new_tokens": 32, "batch_size": 1},
    "judge": {"samples": 2, "max_new_tokens": 16, "max_prompt_tokens": 48, "max_response_tokens": 48,
              "batch_size": 1},
    "dpo": {"batch_size": 2, "grad_accum": 1, "max_length": 256},
    "pairs": {"min_margin": 0.0},   # a random model's scores differ by less than the default margin
    "iterations": {"M2": {"prev": "M1", "t": 1}, "M3": {"prev": "M2", "t": 2}, "M4": {"prev": "M3", "t": 3}},
    "evaluation": {"models": ["SFT", "M1", "M2", "M3", "M4"], "rm_max_groups": 3,
                   "answers": {"max_prompts": 6, "max_new_tokens": 16, "batch_size": 1},
                   "evaluator": {"max_prompt_tokens": 48, "max_response_tokens": 48, "batch_size": 1},
                   "matchups": {"M4_vs_M3": {"a": "M4", "b": "M3"}, "M4_vs_SFT": {"a": "M4", "b": "SFT"}}},
}


def env(repo: Path) -> dict:
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(repo),
                SRLM_SCRATCH=str(repo / ".srlm"))


def repro_with_kills(repo: Path, kills: int, rng: random.Random, low: float, high: float) -> list[dict]:
    """`dvc repro`, SIGKILLed `kills` times after random delays, then run to the end."""
    faults: list[dict] = []
    attempt = 0
    while True:
        log = repo.parent / f"attempt-{attempt}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([str(BIN / "dvc"), "repro"], cwd=repo, env=env(repo), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            delay = rng.uniform(low, high) if len(faults) < kills else None
            try:
                code = proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                running = re.findall(r"Running stage '([^']+)'", log.read_text())
                faults.append({"attempt": attempt, "after_s": round(delay, 1),
                               "stage": running[-1] if running else "(dvc start-up)"})
                print(f"kill {len(faults)}/{kills}: after {delay:.1f} s, in {faults[-1]['stage']}", flush=True)
                attempt += 1
                continue
        if code != 0:
            raise SystemExit(f"dvc repro failed after {len(faults)} kills; see {log}")
        return faults


def resumes(work: Path) -> dict[str, int]:
    """What the restarted runs took over from the killed ones, from their logs."""
    text = "".join(p.read_text() for p in sorted(work.glob("attempt-*.log")))
    return {"chunks_reused": sum(int(n) for n in re.findall(r"resumed: (\d+) of \d+ chunks", text)),
            "stages_resumed_from_chunks": len(re.findall(r"resumed: \d+ of \d+ chunks", text)),
            "trainings_resumed_from_checkpoint": len(re.findall(r"resuming from \S*checkpoint-\d+", text))}


def rows(repo: Path) -> dict[str, list]:
    from srlm_core.log.eventlog import EventLog
    from srlm_core.log.events import BY_TABLE

    log = EventLog(repo / "data" / "events")
    return {table: sorted(log.read(kind).to_pylist(), key=lambda r: r[kind.ID_FIELD])
            for table, kind in sorted(BY_TABLE.items())}


def model_hashes(repo: Path) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["hash"] for p in sorted((repo / "models").glob("*/manifest.json"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-delay", type=float, default=8.0, help="seconds before a kill, at least")
    parser.add_argument("--max-delay", type=float, default=60.0, help="seconds before a kill, at most")
    parser.add_argument("--work", type=Path, default=None, help="folder for the two copies (default: a temp dir)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="srlm-soak-"))
    model = save_tiny_model(work / "tiny-model", save_tokenizer(work / "tokenizer"))
    params = {"model": {"base": str(model)}, **PARAMS}
    (work / "clean").mkdir(parents=True)
    (work / "faulty").mkdir()
    clean = clone_repo(work / "clean", params)
    faulty = clone_repo(work / "faulty", params)

    started = time.monotonic()
    dvc(clean, "repro")
    clean_s = time.monotonic() - started
    print(f"reference run: {clean_s:.0f} s", flush=True)
    started = time.monotonic()
    faults = repro_with_kills(faulty, args.kills, random.Random(args.seed), args.min_delay, args.max_delay)
    faulty_s = time.monotonic() - started

    verify = srlm(faulty, "verify", check=False)
    status = dvc(faulty, "status").stdout.strip()
    expected, found = rows(clean), rows(faulty)
    tables = {t: {"rows": len(found[t]), "equal": found[t] == expected[t]} for t in expected}
    models_equal = model_hashes(faulty) == model_hashes(clean)
    result = {"kills": faults, "resumes": resumes(work), "reference_s": round(clean_s), "faulty_s": round(faulty_s),
              "verify": (verify.stdout + verify.stderr).strip(), "dvc_status": status,
              "tables": tables, "models": model_hashes(faulty), "models_equal": models_equal,
              "leftover_journals": sorted(str(p.relative_to(faulty)) for p in (faulty / ".srlm").glob("journal/*"))}
    ok = (verify.returncode == 0 and all(t["equal"] for t in tables.values()) and models_equal
          and status.endswith("up to date."))
    result["ok"] = ok
    (work / "soak-result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"soak {'passed' if ok else 'FAILED'}: {len(faults)} kills; result in {work / 'soak-result.json'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
