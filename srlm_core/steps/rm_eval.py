"""Stage `rm_eval@<model>`: the model judges every reply of the held-out (eval-split) ranked
groups, k samples each as in training (and, with the probability method, `text_parse_samples`
more with the paper's text method, for its parse rate); the judgements go to the event log
(`rm_judgements`, partition model=<name>) and the agreement metrics to a DVC metrics file."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ..engine.backend import open_generator
from ..errors import SrlmError
from ..judges.runs import judge_resumably, make_judge, sampling_record
from ..log.eventlog import EventLog
from ..log.events import RewardModelJudged
from ..params import Params
from ..reporting import rm_metrics
from ..seeds import stage_seed
from ..storage import write_json

STAGE = "rm_eval"


def run(params: Params, *, model_dir: Path, groups_path: Path, events_root: Path, metrics_dir: Path) -> dict:
    cfg, jcfg = params.evaluation, params.judge
    rows = [g for g in pq.read_table(groups_path).to_pylist() if g["split"] == "eval"]
    group_ids = list(dict.fromkeys(r["prompt_id"] for r in rows))[: cfg.rm_max_groups]
    replies = [r for r in rows if r["prompt_id"] in set(group_ids)]
    if not replies:
        raise SrlmError(f"{groups_path}: no eval-split ranked groups to evaluate on; raise data.eval_fraction")
    gen = open_generator(params.generation, model_dir)
    items = [(r["prompt"], r["reply"]) for r in replies]
    runs = [("rm_eval", make_judge(gen, jcfg))]
    if cfg.text_parse_samples and jcfg.method == "probability" and model_dir.name in cfg.text_parse_models:
        runs.append(("rm_eval_text", make_judge(gen, jcfg.model_copy(update={"method": "text"}),
                                                samples=cfg.text_parse_samples)))
    events, journals, judged = [], [], {}
    for key, judge in runs:
        seed = stage_seed(params.seed, key)
        record = sampling_record(judge, jcfg)
        results, journal = judge_resumably(judge, items, stage=f"{key}@{model_dir.name}", model_hash=gen.model_hash,
                                           record=record, seed=seed, batch_size=jcfg.batch_size,
                                           label=f"{model_dir.name}: judging {len(replies)} held-out replies x "
                                                 f"{judge.samples} ({judge.method})")
        events += [RewardModelJudged.create(model=model_dir.name, group_id=r["prompt_id"], reply_id=r["reply_id"],
                                            human_rank=r["rank"], model_hash=gen.model_hash, sample_index=i,
                                            template_hash=judge.template.hash, raw_output=j.raw_output, score=j.score,
                                            method=judge.method, stage=STAGE, seed=seed, sampling=record,
                                            **judge.guard_columns(r["reply"]))
                   for r, samples in zip(replies, results) for i, j in enumerate(samples)]
        journals.append(journal)
        judged[key] = [{"group_id": r["prompt_id"], "reply_id": r["reply_id"], "human_rank": r["rank"],
                        "samples": [j.score for j in samples]} for r, samples in zip(replies, results)]
    EventLog(events_root).append(events)
    seed = stage_seed(params.seed, "rm_eval")
    metrics = {"model": model_dir.name, "method": jcfg.method, "samples": jcfg.samples,
               **rm_metrics.compute(judged["rm_eval"], resamples=cfg.bootstrap, seed=seed)}
    if "rm_eval_text" in judged:
        metrics.update(rm_metrics.parse_rate(judged["rm_eval_text"], resamples=cfg.bootstrap, seed=seed))
    write_json(metrics, metrics_dir / "rm_eval.json")
    for journal in journals:
        journal.clear()
    return metrics
