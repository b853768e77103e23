"""Stage `candidates`: N sampled responses from Mt to each new prompt of iteration t."""

from __future__ import annotations

from pathlib import Path

from ..engine.backend import Sampling, open_generator
from ..engine.prompts import chat_prompt_ids
from ..errors import SrlmError
from ..journal import Journal
from ..log.eventlog import EventLog
from ..log.events import CandidateGenerated, PromptAdded, sampling_json
from ..params import Params
from ..seeds import stage_seed

STAGE = "candidates"


def run(params: Params, *, iteration: int, model_dir: Path, events_root: Path) -> dict:
    cfg = params.candidates
    events = EventLog(events_root)
    prompts = events.read(PromptAdded, iteration).sort_by("prompt_id").to_pylist()
    if not prompts:
        raise SrlmError(f"{events.partition(PromptAdded.TABLE, iteration)}: no prompts for iteration {iteration}; "
                        f"run the prompts stage first")
    gen = open_generator(params.generation, model_dir)
    tokenizer, model_hash = gen.tokenizer, gen.model_hash
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_new_tokens)
    record = sampling_json(sampling.record(n=cfg.n, **gen.info()))
    seed = stage_seed(params.seed, "candidates", iteration)
    ids = [chat_prompt_ids(tokenizer, p["text"]) for p in prompts]
    journal = Journal(f"candidates@{iteration}", {"model": model_hash, "sampling": record, "seed": seed,
                                                   "batch_size": cfg.batch_size, "prompts": ids})
    outputs = gen.sample(ids, n=cfg.n, sampling=sampling, seed=seed, batch_size=cfg.batch_size,
                     label=f"answering {len(prompts)} prompts x {cfg.n}", journal=journal)
    rows = [CandidateGenerated.create(prompt_id=p["prompt_id"], iteration=iteration, model_hash=model_hash,
                                      sample_index=i, text=s.text, num_tokens=s.num_tokens,
                                      finish_reason=s.finish_reason, stage=STAGE, seed=seed, sampling=record)
            for p, samples in zip(prompts, outputs) for i, s in enumerate(samples)]
    events.append(rows)
    journal.clear()
    return {"prompts": len(prompts), "candidates": len(rows),
            "cut_at_max_tokens": sum(r.finish_reason == "length" for r in rows)}
