"""Stage `instructions@<model>`: the model answers prompts that carry verifiable instructions
(evaluation.instructions.prompts), code checks each answer, and no judge is involved. The
checked answers go to the event log (`instruction_answers`, partition model=<name>) and the
prompt- and instruction-level accuracies, with bootstrap intervals, to a DVC metrics file."""

from __future__ import annotations

import json
from pathlib import Path

from ..engine.backend import Sampling, open_generator
from ..engine.prompts import chat_prompt_ids
from ..inputs.instruction_prompts import read_instruction_prompts
from ..journal import Journal
from ..log.eventlog import EventLog
from ..log.events import InstructionAnswerChecked, sampling_json
from ..params import Params
from ..reporting.instruction_accuracy import summarise
from ..reporting.instructions import follows
from ..seeds import stage_seed
from ..storage import write_json

STAGE = "instructions"


def run(params: Params, *, model_dir: Path, events_root: Path, metrics_dir: Path) -> dict:
    cfg = params.evaluation.instructions
    prompts = read_instruction_prompts(cfg.prompts)[:cfg.max_prompts]   # a bad file fails before the model loads
    gen = open_generator(params.generation, model_dir)
    model_hash = gen.model_hash
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_new_tokens)
    record = sampling_json(sampling.record(n=1, **gen.info()))
    seed = stage_seed(params.seed, STAGE)
    ids = [chat_prompt_ids(gen.tokenizer, p.text) for p in prompts]
    journal = Journal(f"instructions@{model_dir.name}", {"model": model_hash, "sampling": record, "seed": seed,
                                                          "batch_size": cfg.batch_size, "prompts": ids})
    outputs = gen.sample(ids, n=1, sampling=sampling, seed=seed, batch_size=cfg.batch_size,
                         label=f"{model_dir.name}: answering {len(prompts)} prompts with verifiable instructions",
                         journal=journal)
    checked = [[(i.kind, follows(s.text, i.kind, i.args)) for i in p.instructions] for p, (s,) in zip(prompts, outputs)]
    rows = [InstructionAnswerChecked.create(
                model=model_dir.name, origin_id=p.id, prompt=p.text, model_hash=model_hash, text=s.text,
                num_tokens=s.num_tokens, finish_reason=s.finish_reason, instructions=len(found),
                followed=sum(ok for _, ok in found),
                checks=json.dumps([{"kind": i.kind, "args": i.args, "followed": ok}
                                   for i, (_, ok) in zip(p.instructions, found)], sort_keys=True),
                stage=STAGE, seed=seed, sampling=record)
            for p, (s,), found in zip(prompts, outputs, checked)]
    EventLog(events_root).append_partition(InstructionAnswerChecked, model_dir.name, rows)
    metrics = {"model": model_dir.name, **summarise(checked, resamples=params.evaluation.bootstrap, seed=seed),
               "answer_chars": round(sum(len(r.text) for r in rows) / len(rows), 6),
               "cut_at_max_tokens": sum(r.finish_reason == "length" for r in rows)}
    write_json(metrics, metrics_dir / "instructions.json")
    journal.clear()
    return metrics
