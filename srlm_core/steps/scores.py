"""Stage `scores@<model>`: the fixed judge (evaluation.evaluator.model, M0 by default, never
trained, so the same judge for every model) scores each of the model's held-out answers with the
loop's additive 5-point prompt (judge.*) and the probability method, evaluation.scores.samples
samples at evaluation.scores.temperature (3 at 0.7 by default, as the loop's judge) with one seed
for every model; each sample goes to the event log (`answer_scores`, partition model=<name>) and
the mean score with its 95% interval over prompts to metrics/<model>/scores.json. A position-free
measure: the judge sees one answer at a time."""

from __future__ import annotations

from pathlib import Path

from ..engine.backend import open_generator
from ..errors import SrlmError
from ..judges.runs import judge_resumably, make_judge, sampling_record
from ..log.eventlog import EventLog
from ..log.events import AnswerScored, EvalAnswerGenerated, PromptAdded
from ..params import Params
from ..reporting import pointwise
from ..reporting.rm_metrics import reply_scores
from ..seeds import stage_seed
from ..storage import write_json

STAGE = "scores"


def run(params: Params, *, model: str, models_root: Path, events_root: Path, metrics_dir: Path) -> dict:
    events = EventLog(events_root)
    answers = sorted(events.read(EvalAnswerGenerated, model).to_pylist(), key=lambda r: r["prompt_id"])
    if not answers:
        raise SrlmError(f"{events.partition(EvalAnswerGenerated.TABLE, model)}: no answers from {model}; "
                        f"run `dvc repro answers@{model}` first")
    texts = {p["prompt_id"]: p["text"] for p in events.read(PromptAdded, 0).to_pylist()}
    missing = [a["answer_id"] for a in answers if a["prompt_id"] not in texts]
    if missing:
        raise SrlmError(f"{events.partition(EvalAnswerGenerated.TABLE, model)}: answer {missing[0]} is to a prompt "
                        f"not in {events.partition(PromptAdded.TABLE, 0)}; re-run `dvc repro answers@{model}`")
    judge_name = params.evaluation.evaluator.model
    gen = open_generator(params.generation, models_root / judge_name)
    # Always the probability method: every answer gets a number, so no prompt drops out of the pairing.
    scoring = params.evaluation.scores
    jcfg = params.judge.model_copy(update={"method": "probability", "samples": scoring.samples,
                                           "temperature": scoring.temperature})
    judge, seed = make_judge(gen, jcfg), stage_seed(params.seed, STAGE)
    record = sampling_record(judge, jcfg)
    results, journal = judge_resumably(judge, [(texts[a["prompt_id"]], a["text"]) for a in answers],
                                       stage=f"scores@{model}", model_hash=gen.model_hash, record=record, seed=seed,
                                       batch_size=jcfg.batch_size,
                                       label=f"{judge_name}: scoring {len(answers)} answers of {model} "
                                             f"x {judge.samples}")
    rows = [AnswerScored.create(model=model, prompt_id=a["prompt_id"], answer_id=a["answer_id"], judge=judge_name,
                                judge_hash=gen.model_hash, sample_index=i, template_hash=judge.template.hash,
                                raw_output=j.raw_output, score=j.score, method=judge.method, stage=STAGE, seed=seed,
                                sampling=record, **judge.guard_columns(a["text"]))
            for a, samples in zip(answers, results) for i, j in enumerate(samples)]
    events.append_partition(AnswerScored, model, rows)
    per_prompt = [reply_scores([j.score for j in samples]) for samples in results]
    metrics = {"model": model, "judge": f"local:{judge_name}", "method": judge.method, "samples": judge.samples,
               **pointwise.model_score(per_prompt, resamples=params.evaluation.bootstrap, seed=seed)}
    write_json(metrics, metrics_dir / "scores.json")
    journal.clear()
    return metrics
