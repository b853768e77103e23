"""Stage `logprobs@<model>`: log p_model(reply | conversation) of every held-out human-ranked
reply (data/processed/heldout_ranked.parquet, all depths), one row per reply, to
data/eval/logprobs/<model>.parquet. Computed once per model and read by every `implicit@`
stage that measures against it, so a reference is never scored twice."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..engine import logprobs, runtime
from ..errors import SrlmError
from ..params import Params
from ..storage import write_parquet

SCHEMA = pa.schema([
    ("model", pa.string()), ("model_hash", pa.string()), ("group_id", pa.string()), ("reply_id", pa.string()),
    ("tokens", pa.int64()), ("logprob", pa.float64()),   # both null: conversation + reply over max_length
])


def select(rows: list[dict], max_groups: int) -> list[dict]:
    """The replies of the first `max_groups` groups, in the file's order (the seed's seeded order of trees)."""
    keep = set(list(dict.fromkeys(r["group_id"] for r in rows))[:max_groups])
    return [r for r in rows if r["group_id"] in keep]


def run(params: Params, *, model_dir: Path, heldout_path: Path, out_path: Path) -> dict:
    cfg = params.evaluation.implicit
    replies = select(pq.read_table(heldout_path).to_pylist(), cfg.max_groups)
    if not replies:
        raise SrlmError(f"{heldout_path}: no held-out ranked replies to score; raise data.eval_fraction or use "
                        "data with ranked sibling replies")
    model, tokenizer, model_hash = runtime.load(model_dir, dtype=runtime.compute_dtype(params.generation.dtype))
    encoded = [logprobs.encode(tokenizer, r["conversation"], r["reply"]) for r in replies]
    fits = [i for i, e in enumerate(encoded) if len(e.ids) <= cfg.max_length]
    scored = dict(zip(fits, logprobs.score(model, [encoded[i] for i in fits], batch_size=cfg.batch_size,
                                           pad_id=tokenizer.pad_token_id)))
    rows = [dict(model=model_dir.name, model_hash=model_hash, group_id=r["group_id"], reply_id=r["reply_id"],
                 tokens=scored[i].tokens if i in scored else None,
                 logprob=scored[i].logprob if i in scored else None) for i, r in enumerate(replies)]
    write_parquet(pa.Table.from_pylist(rows, schema=SCHEMA), out_path)
    return {"replies": len(rows), "too_long": len(rows) - len(fits),
            "groups": len({r["group_id"] for r in rows})}
