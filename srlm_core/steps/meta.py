"""Stage `meta`: Mt meta-judges its own judgements of iteration t; the best vs the worst judgement of a
candidate becomes a judge-training pair (Meta-Rewarding, Wu et al. 2024; docs/meta-judge.md).

For up to `meta.candidates` candidates (drawn by meta.select among those with two or more distinct scored
judgements), every pair of their judgements is compared in both orders (MetaJudgementRecorded). Each
judgement's win rate is its mean position-debiased preference over the others; the highest vs the lowest
gives a JudgePairBuilt (prompt: the judge prompt the model saw; chosen / rejected: the two judgement
texts), or a JudgePairSkipped when they tie or are closer than meta.min_win_margin. The pairs are also
written as DPO data to `<out>/train.parquet` (in draw order), with `<out>/summary.json`.
With meta.enabled false no model is loaded and every output is written empty.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pyarrow as pa

from ..engine.backend import Sampling, open_generator
from ..errors import SrlmError
from ..hashing import sha256_file
from ..journal import Journal
from ..judges.meta import Comparison, MetaJudge, MetaTemplate, rubric
from ..judges.meta_pairs import distinct, draw, orders, pick, spread, win_rates
from ..judges.runs import make_judge
from ..log.eventlog import EventLog
from ..log.events import (
    CandidateGenerated,
    JudgementRecorded,
    JudgePairBuilt,
    JudgePairSkipped,
    MetaJudgementRecorded,
    PromptAdded,
    sampling_json,
)
from ..log.lineage import staging
from ..params import Params
from ..seeds import stage_seed
from ..storage import write_json, write_parquet

STAGE = "meta"
TRAIN_SCHEMA = pa.schema([("candidate_id", pa.string()), ("prompt", pa.string()), ("chosen", pa.string()),
                          ("rejected", pa.string()), ("chosen_win_rate", pa.float64()),
                          ("rejected_win_rate", pa.float64())])
JUDGEMENT_COLUMNS = ["judgement_id", "candidate_id", "sample_index", "raw_output", "score", "model_hash",
                     "template_hash"]


def write_outputs(events: EventLog, iteration: int, out_dir: Path, metas: list, built: list, skipped: list,
                  summary: dict) -> dict:
    events.append_partition(MetaJudgementRecorded, iteration, metas)
    events.append_partition(JudgePairBuilt, iteration, built)
    events.append_partition(JudgePairSkipped, iteration, skipped)
    train = pa.Table.from_pylist([{name: getattr(p, name) for name in TRAIN_SCHEMA.names} for p in built],
                                 schema=TRAIN_SCHEMA)
    with staging(out_dir) as tmp:
        write_parquet(train, tmp / "train.parquet")
        summary = {**summary, "judge_pairs": len(built), "train_sha256": sha256_file(tmp / "train.parquet")}
        write_json(summary, tmp / "summary.json")
    return summary


def by_candidate(judgements: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for j in judgements:
        out.setdefault(j["candidate_id"], []).append(j)
    return out


@dataclasses.dataclass(frozen=True)
class Plan:
    """The comparisons the stage makes for an iteration: the drawn candidates, each one's distinct scored
    judgements in the order shown (`shown`), and every ordered pair of them (`pairs`, both orders), with
    what the meta-judge sees for each (`comparisons`, in `pairs` order)."""

    judge: object                 # the judge (judges/judge.py) whose prompts the model saw
    meta_judge: MetaJudge
    prompts: dict[str, str]
    candidates: dict[str, dict]
    grouped: dict[str, list[dict]]
    eligible: dict[str, float]
    shown: dict[str, list]
    seed: int
    drawn: list[str]
    pairs: list[tuple[str, int, int]]
    comparisons: list[Comparison]


def plan(params: Params, events: EventLog, iteration: int, gen, model_dir: Path,
         template_root: Path = Path(".")) -> Plan:
    """The stage's plan for `iteration`, with `gen` (Mt, opened from `model_dir`) as meta-judge;
    `template_root`: where meta.template's path is relative to (the repository the run is in)."""
    cfg = params.meta
    judgements = events.read(JudgementRecorded, iteration, columns=JUDGEMENT_COLUMNS).to_pylist()
    if not judgements:
        raise SrlmError(f"{events.partition(JudgementRecorded.TABLE, iteration)}: no judgements; run the judge "
                        "stage first")
    judge = make_judge(gen, params.judge)
    for column, mine, what in (("model_hash", gen.model_hash, f"the model {model_dir}"),
                               ("template_hash", judge.template.hash, f"judge.template {params.judge.template}")):
        if {j[column] for j in judgements} != {mine}:
            raise SrlmError(f"{events.partition(JudgementRecorded.TABLE, iteration)}: the judgements were not all "
                            f"made with {what}; re-run the judge stage")
    prompts = {r["prompt_id"]: r["text"] for r in events.read(PromptAdded, iteration).to_pylist()}
    candidates = {r["candidate_id"]: r for r in events.read(CandidateGenerated, iteration).to_pylist()}
    grouped = by_candidate(judgements)
    shown = {cid: distinct(rows) for cid, rows in grouped.items()}
    eligible = {cid: spread([r["score"] for r in rows]) for cid, rows in grouped.items() if len(shown[cid]) > 1}
    seed = stage_seed(params.seed, STAGE, iteration)
    drawn = draw(eligible, cfg.candidates, cfg.select, seed)
    meta_judge = MetaJudge(gen, MetaTemplate.load(str(template_root / cfg.template)), rubric(judge.template.text),
                           Sampling(cfg.temperature, cfg.top_p, cfg.max_new_tokens))
    pairs = [(cid, i, j) for cid in drawn for i, j in orders(len(shown[cid]))]
    seen = {cid: (judge.seen_prompt(prompts[candidates[cid]["prompt_id"]]),
                  judge.seen_response(candidates[cid]["text"])) for cid in drawn}
    comparisons = [Comparison(*seen[cid], shown[cid][i].text, shown[cid][j].text) for cid, i, j in pairs]
    return Plan(judge, meta_judge, prompts, candidates, grouped, eligible, shown, seed, drawn, pairs, comparisons)


def run(params: Params, *, iteration: int, model_dir: Path, events_root: Path, out_dir: Path) -> dict:
    cfg = params.meta
    events = EventLog(events_root)
    if not cfg.enabled:
        return write_outputs(events, iteration, out_dir, [], [], [], {"iteration": iteration, "enabled": False})
    gen = open_generator(params.generation, model_dir)
    p = plan(params, events, iteration, gen, model_dir)
    judge, meta_judge, prompts, candidates, shown, seed, drawn = (p.judge, p.meta_judge, p.prompts, p.candidates,
                                                                  p.shown, p.seed, p.drawn)
    comparisons = p.comparisons
    jcfg = params.judge
    record = sampling_json(meta_judge.sampling.record(max_prompt_tokens=jcfg.max_prompt_tokens,
                                                      max_response_tokens=jcfg.max_response_tokens,
                                                      injection=jcfg.injection, **gen.info()))
    journal = Journal(f"meta@{iteration}", {"model": gen.model_hash, "template": meta_judge.template.hash,
                                            "rubric": meta_judge.rubric, "sampling": record, "seed": seed,
                                            "batch_size": cfg.batch_size,
                                            "items": [dataclasses.astuple(c) for c in comparisons]})
    verdicts = meta_judge.compare(comparisons, seed=seed, batch_size=cfg.batch_size, journal=journal,
                                  label=f"meta-judging {len(drawn)} candidates: {len(p.pairs)} comparisons")

    common = dict(iteration=iteration, model_hash=gen.model_hash, template_hash=meta_judge.template.hash,
                  stage=STAGE, seed=seed, sampling=record)
    metas, p_first = [], {cid: {} for cid in drawn}
    for (cid, i, j), verdict in zip(p.pairs, verdicts):
        p_first[cid][i, j] = verdict.p_first
        metas.append(MetaJudgementRecorded.create(
            candidate_id=cid, prompt_id=candidates[cid]["prompt_id"], first_judgement_id=shown[cid][i].judgement_id,
            second_judgement_id=shown[cid][j].judgement_id, raw_output=verdict.raw_output, p_first=verdict.p_first,
            **common))
    built, skipped = [], []
    for cid in drawn:
        options, prompt_id = shown[cid], candidates[cid]["prompt_id"]
        rates = win_rates(len(options), p_first[cid])
        best, worst, reason = pick(rates, cfg.min_win_margin)
        if reason is not None:
            skipped.append(JudgePairSkipped.create(candidate_id=cid, prompt_id=prompt_id, reason=reason,
                                                   judgements=len(options), top_win_rate=rates[best],
                                                   bottom_win_rate=rates[worst], **common))
            continue
        built.append(JudgePairBuilt.create(
            candidate_id=cid, prompt_id=prompt_id, chosen_judgement_id=options[best].judgement_id,
            rejected_judgement_id=options[worst].judgement_id, chosen_win_rate=rates[best],
            rejected_win_rate=rates[worst], chosen_points=options[best].points, rejected_points=options[worst].points,
            judgements=len(options), prompt=judge.user_message(prompts[prompt_id], candidates[cid]["text"]),
            chosen=options[best].text, rejected=options[worst].text, **common))
    firsts = [v.p_first for v in verdicts]
    summary = {"iteration": iteration, "enabled": True, "model": gen.model_hash,
               "template_sha256": meta_judge.template.hash, "candidates": len(p.grouped), "eligible": len(p.eligible),
               "drawn": len(drawn), "comparisons": len(p.pairs), "skipped": dict(Counter(s.reason for s in skipped)),
               # share of verdicts for Judgement A, and its mean probability: 0.5 is a meta-judge without position bias
               "first_position_rate": sum(p > 0.5 for p in firsts) / len(firsts) if firsts else None,
               "mean_p_first": sum(firsts) / len(firsts) if firsts else None}
    summary = write_outputs(events, iteration, out_dir, metas, built, skipped, summary)
    journal.clear()
    return summary
