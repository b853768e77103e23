"""Stage `answers@<model>`: the model answers the held-out evaluation prompts (one sample each,
the same seed for every model), for the head-to-head games."""

from __future__ import annotations

from pathlib import Path

from ..engine.backend import Sampling, open_generator
from ..engine.prompts import chat_prompt_ids
from ..errors import SrlmError
from ..journal import Journal
from ..log.eventlog import EventLog
from ..log.events import EvalAnswerGenerated, PromptAdded, sampling_json
from ..params import Params
from ..seeds import stage_seed

STAGE = "answers"


def eval_prompts(events: EventLog, limit: int) -> list[dict]:
    """The first `limit` held-out prompts by id (the seed stage logs them under iteration 0)."""
    rows = [p for p in events.read(PromptAdded, 0).to_pylist() if p["source"] == "eval"]
    if not rows:
        raise SrlmError(f"{events.partition(PromptAdded.TABLE, 0)}: no held-out eval prompts; "
                        "set data.eval_prompts in params.yaml and re-run the seed stage")
    return sorted(rows, key=lambda p: p["prompt_id"])[:limit]


def run(params: Params, *, model_dir: Path, events_root: Path) -> dict:
    cfg = params.evaluation.answers
    events = EventLog(events_root)
    prompts = eval_prompts(events, cfg.max_prompts)
    gen = open_generator(params.generation, model_dir)
    model_hash = gen.model_hash
    tokenizer = gen.tokenizer
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_new_tokens)
    record = sampling_json(sampling.record(n=1, **gen.info()))
    seed = stage_seed(params.seed, "answers")
    ids = [chat_prompt_ids(tokenizer, p["text"]) for p in prompts]
    journal = Journal(f"answers@{model_dir.name}", {"model": model_hash, "sampling": record, "seed": seed,
                                                     "batch_size": cfg.batch_size, "prompts": ids})
    outputs = gen.sample(ids, n=1, sampling=sampling, seed=seed, batch_size=cfg.batch_size,
                     label=f"{model_dir.name}: answering {len(prompts)} held-out prompts", journal=journal)
    rows = [EvalAnswerGenerated.create(model=model_dir.name, prompt_id=p["prompt_id"], model_hash=model_hash,
                                       text=s.text, num_tokens=s.num_tokens, finish_reason=s.finish_reason,
                                       stage=STAGE, seed=seed, sampling=record)
            for p, (s,) in zip(prompts, outputs)]
    events.append_partition(EvalAnswerGenerated, model_dir.name, rows)
    journal.clear()
    return {"answers": len(rows), "cut_at_max_tokens": sum(r.finish_reason == "length" for r in rows),
            "mean_chars": sum(len(r.text) for r in rows) / len(rows)}
