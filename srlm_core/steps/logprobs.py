"""Stage `logprobs@<model>`: log p_model(reply | conversation) of every held-out human-ranked
reply (data/processed/heldout_ranked.parquet, all depths), one event per reply, to the event log
(`reply_logprobs`, partition model=<name>). Computed once per model and read by every `implicit@`
stage that measures against it, so a reference is never scored twice."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ..engine import logprobs, runtime
from ..errors import SrlmError
from ..log.eventlog import EventLog
from ..log.events import ReplyLogprobComputed, sampling_json
from ..params import Params

STAGE = "logprobs"


def select(rows: list[dict], max_groups: int) -> list[dict]:
    """The replies of the first `max_groups` groups, in the file's order (the seed's seeded order of trees)."""
    keep = set(list(dict.fromkeys(r["group_id"] for r in rows))[:max_groups])
    return [r for r in rows if r["group_id"] in keep]


def run(params: Params, *, model_dir: Path, heldout_path: Path, events_root: Path) -> dict:
    cfg = params.evaluation.implicit
    replies = select(pq.read_table(heldout_path).to_pylist(), cfg.max_groups)
    if not replies:
        raise SrlmError(f"{heldout_path}: no held-out ranked replies to score; raise data.eval_fraction or use "
                        "data with ranked sibling replies")
    dtype = runtime.compute_dtype(params.generation.dtype)
    model, tokenizer, model_hash = runtime.load(model_dir, dtype=dtype)
    encoded = [logprobs.encode(tokenizer, r["conversation"], r["reply"]) for r in replies]
    fits = [i for i, e in enumerate(encoded) if len(e.ids) <= cfg.max_length]
    scored = dict(zip(fits, logprobs.score(model, [encoded[i] for i in fits], batch_size=cfg.batch_size,
                                           pad_id=tokenizer.pad_token_id)))
    # No sampling: what the numbers depend on besides the weights is how they were computed.
    record = sampling_json({"dtype": str(dtype).removeprefix("torch."), "max_length": cfg.max_length,
                            "batch_size": cfg.batch_size})
    rows = [ReplyLogprobComputed.create(model=model_dir.name, group_id=r["group_id"], reply_id=r["reply_id"],
                                        model_hash=model_hash, tokens=scored[i].tokens if i in scored else None,
                                        logprob=scored[i].logprob if i in scored else None, stage=STAGE,
                                        seed=None, sampling=record)
            for i, r in enumerate(replies)]
    EventLog(events_root).append_partition(ReplyLogprobComputed, model_dir.name, rows)
    return {"replies": len(rows), "too_long": len(rows) - len(fits),
            "groups": len({r.group_id for r in rows})}
