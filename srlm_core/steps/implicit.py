"""Stage `implicit@<model>`: the judge-free measure against human preference. From the log-probs
that `logprobs@` wrote to the event log (`reply_logprobs`) for the model, its reference and the SFT
baseline, how often the human-preferred held-out reply gains more implicit reward
log p_model - log p_ref than its sibling (reporting/implicit_metrics.py), to the DVC metrics file
metrics/<model>/implicit.json."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ..errors import SrlmError
from ..log.eventlog import EventLog
from ..log.events import ReplyLogprobComputed
from ..params import Params
from ..reporting import implicit_metrics
from ..storage import write_json


def read_logprobs(events: EventLog, model: str) -> dict[str, dict]:
    """reply_id -> event of one model's partition of `reply_logprobs`."""
    folder = events.partition(ReplyLogprobComputed.TABLE, model)
    rows = events.read(ReplyLogprobComputed, model).to_pylist()
    if not rows:
        raise SrlmError(f"{folder}: no log-probs; run `dvc repro logprobs@{model}` (the model must be in "
                        "evaluation.implicit.models)")
    by_reply = {r["reply_id"]: r for r in rows}
    if len(by_reply) != len(rows):
        raise SrlmError(f"{folder}: holds some reply more than once (written by more than one run); "
                        f"re-run `dvc repro logprobs@{model}`, which replaces the partition")
    return by_reply


def run(params: Params, *, model: str, reference: str, heldout_path: Path, events_root: Path,
        metrics_dir: Path) -> dict:
    events = EventLog(events_root)
    names = {"model": model, "ref": reference, "sft": "SFT"}
    scored = {role: read_logprobs(events, name) for role, name in names.items()}
    folders = {role: events.partition(ReplyLogprobComputed.TABLE, name) for role, name in names.items()}
    replies = set(scored["model"])
    for role, rows in scored.items():
        if set(rows) != replies:
            raise SrlmError(f"{folders[role]} scored other replies than {folders['model']}; they were written "
                            "with different evaluation.implicit settings or seed data: re-run `dvc repro` so both "
                            "are current")
    heldout = [r for r in pq.read_table(heldout_path).to_pylist() if r["reply_id"] in replies]
    if len(heldout) != len(replies):
        raise SrlmError(f"{folders['model']} holds replies that {heldout_path} lacks; "
                        "re-run `dvc repro` to score the current held-out replies")
    rows, too_long = [], 0
    for r in heldout:
        values = {role: scored[role][r["reply_id"]]["logprob"] for role in names}
        if None in values.values():
            too_long += 1
            continue
        rows.append({"tree_id": r["tree_id"], "group_id": r["group_id"], "depth": r["depth"], "rank": r["rank"],
                     "tokens": scored["model"][r["reply_id"]]["tokens"], "logprob": values["model"],
                     "ref_logprob": values["ref"], "sft_logprob": values["sft"]})
    metrics = implicit_metrics.compute(rows, with_sft=model != "SFT", resamples=params.evaluation.bootstrap,
                                       seed=params.seed)
    hashes = {f"{role}_hash": next(iter(scored[role].values()))["model_hash"] for role in names}
    metrics = {"model": model, "reference": reference, **hashes, "replies_too_long": too_long, **metrics}
    write_json(metrics, metrics_dir / "implicit.json")
    return metrics
