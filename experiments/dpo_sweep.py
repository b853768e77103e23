"""DPO sweep on the real model: which settings move the policy within the time budget.

Trains M(t+1) from one parent on (subsets of) one AIFT dataset with srlm's own DPO stage code,
once per setting, then lets each trained model answer the held-out prompts with the answers
stage's code (same prompts, same sampling seed as the parent's answers), and records per setting:
optimizer steps, training time, the trained policy's DPO loss / reward accuracy / margin on all
its training pairs (ln 2 / 50% / 0 before training), the share of held-out answers that differ
from the parent's, and two signs of degeneration (answers cut at max tokens, distinct bigrams).

It needs a repository where `dvc repro pairs@<child> answers@<parent>` has run (the parent model,
AIFT(parent), the event log with the parent's held-out answers):

    python experiments/dpo_sweep.py --repo /path/to/run --parent M1 --out sweep.json

Settings are given as JSON lines on --settings (one object of dpo overrides plus "pairs", the number
of AIFT pairs used), or the built-in grid below. Each setting takes 1-3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from srlm_core.log.eventlog import EventLog  # noqa: E402
from srlm_core.log.events import EvalAnswerGenerated, PromptAdded  # noqa: E402
from srlm_core.params import load_params, parse_params  # noqa: E402
from srlm_core.steps import answers, dpo  # noqa: E402
from srlm_core.storage import write_json, write_parquet  # noqa: E402

# One factor at a time around a centre (lr 5e-6, 4 epochs, batch 4, beta 0.1, 8 pairs: the default
# run's pairs per iteration), plus the paper's schedule, which the default used before.
GRID = [
    {"name": "paper (lr 1e-6, 1 epoch, batch 16)", "pairs": 8, "learning_rate": 1e-6, "epochs": 1, "batch_size": 4,
     "grad_accum": 4},
    {"name": "centre", "pairs": 8, "learning_rate": 5e-6, "epochs": 4, "batch_size": 4, "grad_accum": 1},
    {"name": "lr 1e-6", "pairs": 8, "learning_rate": 1e-6, "epochs": 4, "batch_size": 4, "grad_accum": 1},
    {"name": "lr 2e-5", "pairs": 8, "learning_rate": 2e-5, "epochs": 4, "batch_size": 4, "grad_accum": 1},
    {"name": "8 epochs", "pairs": 8, "learning_rate": 5e-6, "epochs": 8, "batch_size": 4, "grad_accum": 1},
    {"name": "beta 0.5", "pairs": 8, "learning_rate": 5e-6, "epochs": 4, "batch_size": 4, "grad_accum": 1,
     "beta": 0.5},
    {"name": "all pairs", "pairs": 1000, "learning_rate": 5e-6, "epochs": 4, "batch_size": 4, "grad_accum": 1},
]


def distinct_bigrams(texts: list[str]) -> float:
    """Distinct word bigrams / all bigrams over the answers: low when a model repeats itself."""
    grams = [tuple(words[i:i + 2]) for words in (t.split() for t in texts) for i in range(len(words) - 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def held_out_log(events_root: Path, scratch: Path) -> None:
    """An event log holding only the seed prompts (the held-out ones among them), for the answers."""
    source = EventLog(events_root).partition(PromptAdded.TABLE, 0)
    shutil.copytree(source, EventLog(scratch / "events").partition(PromptAdded.TABLE, 0))


def run_setting(setting: dict, base: dict, repo: Path, parent: str, scratch: Path, parent_answers: dict) -> dict:
    overrides = {k: v for k, v in setting.items() if k not in ("name", "pairs")}
    overrides.setdefault("lr_end", overrides.get("learning_rate", base["dpo"]["learning_rate"]) / 10)
    params = parse_params({**base, "dpo": {**base["dpo"], **overrides}})
    folder = scratch / f"setting-{len(list(scratch.glob('setting-*')))}"
    aift = folder / "aift"
    table = pq.read_table(repo / "data" / "aift" / parent / "train.parquet")
    write_parquet(table.slice(0, setting["pairs"]), aift / "train.parquet")
    shutil.copy(repo / "data" / "aift" / parent / "summary.json", aift / "summary.json")
    started = time.monotonic()
    dpo.run(params, prev_dir=repo / "models" / parent, aift_dir=aift, out_dir=folder / "child",
            metrics_dir=folder / "metrics")
    train_s = time.monotonic() - started
    train = json.loads((folder / "metrics" / "train.json").read_text())
    shutil.rmtree(scratch / "events" / EvalAnswerGenerated.TABLE, ignore_errors=True)
    log = EventLog(scratch / "events")
    answers.run(params, model_dir=folder / "child", events_root=scratch / "events")
    rows = log.read(EvalAnswerGenerated).to_pylist()
    changed = [r["text"] != parent_answers[r["prompt_id"]] for r in rows if r["prompt_id"] in parent_answers]
    shutil.rmtree(folder / "child")
    return {**setting, "train_s": round(train_s, 1), "examples": train["examples"], "steps": train["steps"],
            "final_step_loss": train["final_loss"], "pairs_loss": train["pairs_loss"],
            "pairs_reward_accuracy": train["pairs_reward_accuracy"], "pairs_reward_margin": train["pairs_reward_margin"],
            "answers_compared": len(changed), "answers_changed": sum(changed) / len(changed),
            "cut_at_max_tokens": sum(r["finish_reason"] == "length" for r in rows) / len(rows),
            "mean_chars": sum(len(r["text"]) for r in rows) / len(rows),
            "distinct_bigrams": distinct_bigrams([r["text"] for r in rows])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--parent", default="M1")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--settings", type=Path, help="JSON lines of settings (default: the built-in grid)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[sweep] %(message)s")
    grid = [json.loads(line) for line in args.settings.read_text().splitlines() if line.strip()] \
        if args.settings else GRID
    base = load_params(args.repo / "params.yaml").model_dump()
    events = EventLog(args.repo / "data" / "events")
    parent_answers = {r["prompt_id"]: r["text"] for r in events.read(EvalAnswerGenerated).to_pylist()
                      if r["model"] == args.parent}
    if not parent_answers:
        sys.exit(f"{args.repo}: no held-out answers of {args.parent}; run `dvc repro answers@{args.parent}` there")
    results = []
    with tempfile.TemporaryDirectory(prefix="dpo-sweep-") as tmp:
        scratch = Path(tmp)
        held_out_log(args.repo / "data" / "events", scratch)
        for setting in grid:
            logging.info("setting: %s", setting)
            results.append(run_setting(setting, base, args.repo, args.parent, scratch, parent_answers))
            logging.info("result: %s", results[-1])
            write_json({"repo": str(args.repo), "parent": args.parent, "results": results}, args.out)


if __name__ == "__main__":
    main()
