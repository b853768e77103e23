"""Stage `judge`: Mt judges every candidate of iteration t `judge.samples` times, then records each
candidate's score (the mean of its valid samples; judges/candidate_scores.py)."""

from __future__ import annotations

from pathlib import Path

from ..engine.backend import open_generator
from ..errors import SrlmError
from ..judges.candidate_scores import record as record_scores
from ..judges.runs import judge_resumably, make_judge, sampling_record
from ..log.eventlog import EventLog
from ..log.events import (
    CandidateGenerated,
    JudgementRecorded,
    PromptAdded,
)
from ..params import Params
from ..seeds import stage_seed

STAGE = "judge"


def run(params: Params, *, iteration: int, model_dir: Path, events_root: Path) -> dict:
    cfg = params.judge
    events = EventLog(events_root)
    prompts = {r["prompt_id"]: r["text"] for r in events.read(PromptAdded, iteration).to_pylist()}
    candidates = events.read(CandidateGenerated, iteration).sort_by("candidate_id").to_pylist()
    if not candidates:
        raise SrlmError(f"{events.partition(CandidateGenerated.TABLE, iteration)}: no candidates; "
                        f"run the candidates stage first")
    gen = open_generator(params.generation, model_dir)
    model_hash = gen.model_hash
    judge = make_judge(gen, cfg)
    seed = stage_seed(params.seed, "judge", iteration)
    record = sampling_record(judge, cfg)
    results, journal = judge_resumably(judge, [(prompts[c["prompt_id"]], c["text"]) for c in candidates],
                                       stage=f"judge@{iteration}", model_hash=model_hash, record=record, seed=seed,
                                       batch_size=cfg.batch_size,
                                       label=f"judging {len(candidates)} candidates x {cfg.samples}")
    guard = {c["candidate_id"]: judge.guard_columns(c["text"]) for c in candidates}
    rows = [JudgementRecorded.create(candidate_id=c["candidate_id"], prompt_id=c["prompt_id"], iteration=iteration,
                                     model_hash=model_hash, sample_index=i, template_hash=judge.template.hash,
                                     raw_output=j.raw_output, score=j.score, method=cfg.method, stage=STAGE,
                                     seed=seed, sampling=record, **guard[c["candidate_id"]])
            for c, samples in zip(candidates, results) for i, j in enumerate(samples)]
    events.append(rows)
    record_scores(events, iteration, model_hash, STAGE)
    journal.clear()
    valid = [r.score for r in rows if r.score is not None]
    return {"judgements": len(rows), "parsed": len(valid), "parse_rate": len(valid) / len(rows),
            "mean_score": sum(valid) / len(valid) if valid else None}
