"""Stage `implicit@<model>`: the judge-free measure against human preference. From the log-probs
that `logprobs@` wrote for the model, its reference and the SFT baseline, how often the
human-preferred held-out reply gains more implicit reward log p_model - log p_ref than its
sibling (reporting/implicit_metrics.py), to the DVC metrics file metrics/<model>/implicit.json."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ..errors import SrlmError
from ..params import Params
from ..reporting import implicit_metrics
from ..storage import write_json


def read_logprobs(path: Path) -> dict[str, dict]:
    """reply_id -> row of one model's log-prob file."""
    if not path.is_file():
        raise SrlmError(f"{path}: no log-probs; run `dvc repro logprobs@{path.stem}` (the model must be in "
                        "evaluation.implicit.models)")
    return {r["reply_id"]: r for r in pq.read_table(path).to_pylist()}


def run(params: Params, *, model: str, reference: str, heldout_path: Path, logprobs_dir: Path,
        metrics_dir: Path) -> dict:
    names = {"model": model, "ref": reference, "sft": "SFT"}
    scored = {role: read_logprobs(logprobs_dir / f"{name}.parquet") for role, name in names.items()}
    replies = set(scored["model"])
    for role, rows in scored.items():
        if set(rows) != replies:
            raise SrlmError(f"{logprobs_dir / names[role]}.parquet scored other replies than "
                            f"{logprobs_dir / model}.parquet; they were written with different "
                            "evaluation.implicit settings or seed data: re-run `dvc repro` so both are current")
    heldout = [r for r in pq.read_table(heldout_path).to_pylist() if r["reply_id"] in replies]
    if len(heldout) != len(replies):
        raise SrlmError(f"{logprobs_dir / model}.parquet holds replies that {heldout_path} lacks; "
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
    hashes = {f"{role}_hash": next(iter(scored[role].values()))["model_hash"] if scored[role] else None
              for role in names}
    metrics = {"model": model, "reference": reference, **hashes, "replies_too_long": too_long, **metrics}
    write_json(metrics, metrics_dir / "implicit.json")
    return metrics
