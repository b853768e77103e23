"""Stage `eft`: judge-training data from the SFT baseline's own judgements of human-ranked replies.

The SFT baseline judges every reply of up to `eft.max_groups` train-split ranked groups.
Each reply gets one whole-point score N (`points`): the `Score: N` its justification closes
with (the text method: the integer the judge wrote), else its mean score rounded. A group is
kept when these order its replies as the humans ranked them (strictly: every pair of replies
with different human ranks is scored in that order). Each reply of a kept group becomes one
example: the judge prompt -> the model's own justification ending in `Score: N`, the same N,
so a kept group never teaches a tied or inverted pair of labels.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..engine.backend import open_generator
from ..errors import SrlmError
from ..judges.judge import points, target
from ..judges.runs import judge_resumably, make_judge, sampling_record
from ..log.eventlog import EventLog
from ..log.events import ReplyJudged
from ..log.lineage import staging
from ..params import Params
from ..seeds import stage_seed
from ..storage import write_json, write_parquet

log = logging.getLogger(__name__)
STAGE = "eft"
SCHEMA = pa.schema([("group_id", pa.string()), ("reply_id", pa.string()), ("human_rank", pa.int64()),
                    ("score", pa.float64()), ("prompt", pa.string()), ("completion", pa.string())])


def group_verdict(replies: list[dict]) -> str | None:
    """None when the judge agrees with the human order; otherwise why the group is dropped. Judged on
    each reply's `points`, the label its EFT target states."""
    if any(r["points"] is None for r in replies):
        return "unparsed"
    for a, b in itertools.combinations(replies, 2):
        if a["human_rank"] == b["human_rank"]:
            continue
        better, worse = (a, b) if a["human_rank"] < b["human_rank"] else (b, a)
        if better["points"] == worse["points"]:
            return "tie"
        if better["points"] < worse["points"]:
            return "disagrees"
    return None


def judged_reply(reply: dict, samples: list) -> dict:
    """A reply with its mean score, the justification its example would carry and that example's label.
    The justification is the first sample that gave a score (under the text method, one that wrote its
    `Score: N`), so the label is an integer the judge wrote whenever one did."""
    valid = [j.score for j in samples if j.score is not None]
    score = sum(valid) / len(valid) if valid else None
    justification = next((j.raw_output for j in samples if j.score is not None), samples[0].raw_output)
    return {**reply, "human_rank": reply["rank"], "score": score, "justification": justification,
            "points": points(justification, score)}


def run(params: Params, *, judge_dir: Path, groups_path: Path, events_root: Path, out_dir: Path) -> dict:
    cfg, jcfg = params.eft, params.judge
    groups = pq.read_table(groups_path).to_pylist()
    train = [g for g in groups if g["split"] == "train"]
    group_ids = list(dict.fromkeys(g["prompt_id"] for g in train))[: cfg.max_groups]
    if not group_ids:
        raise SrlmError(f"{groups_path}: no train-split ranked groups to build EFT data from")
    replies = [g for g in train if g["prompt_id"] in set(group_ids)]
    gen = open_generator(params.generation, judge_dir)
    model_hash = gen.model_hash
    judge = make_judge(gen, jcfg, samples=cfg.samples)
    seed = stage_seed(params.seed, "eft")
    rows_per_batch = jcfg.batch_size * jcfg.samples
    record = sampling_record(judge, jcfg)
    results, journal = judge_resumably(judge, [(r["prompt"], r["reply"]) for r in replies], stage="eft",
                                       model_hash=model_hash, record=record, seed=seed,
                                       batch_size=max(1, rows_per_batch // cfg.samples),
                                       label=f"EFT: judging {len(replies)} human replies")
    events = [ReplyJudged.create(group_id=r["prompt_id"], reply_id=r["reply_id"], human_rank=r["rank"],
                                 split=r["split"], iteration=0, model_hash=model_hash, sample_index=i,
                                 template_hash=judge.template.hash, raw_output=j.raw_output, score=j.score,
                                 method=jcfg.method, stage=STAGE, seed=seed, sampling=record,
                                 **judge.guard_columns(r["reply"]))
              for r, samples in zip(replies, results) for i, j in enumerate(samples)]
    EventLog(events_root).append(events)
    scored = [judged_reply(r, samples) for r, samples in zip(replies, results)]
    by_group = {gid: [s for s in scored if s["prompt_id"] == gid] for gid in group_ids}
    verdicts = {gid: group_verdict(rs) for gid, rs in by_group.items()}
    kept_groups = [gid for gid in group_ids if verdicts[gid] is None]
    chosen = [s for gid in kept_groups for s in by_group[gid]]
    fallback = None
    if len(chosen) < cfg.min_examples:
        fallback = cfg.fallback
        message = (f"only {len(chosen)} EFT examples from {len(kept_groups)} of {len(group_ids)} groups whose "
                   f"judged order matches the human ranking (eft.min_examples is {cfg.min_examples})")
        if fallback == "fail":
            raise SrlmError(f"{message}; judge more groups (eft.max_groups), lower eft.min_examples, or choose "
                            f"eft.fallback: ift_only | unfiltered")
        log.warning("%s: falling back to %s (eft.fallback)", message, fallback)
        chosen = [] if fallback == "ift_only" else [s for s in scored if s["points"] is not None]
    chosen = chosen[: cfg.max_examples]
    examples = [{"group_id": s["prompt_id"], "reply_id": s["reply_id"], "human_rank": s["human_rank"],
                 "score": float(s["points"]),   # the label the completion states, as agreement used it
                 "prompt": judge.user_message(s["prompt"], s["reply"]),
                 "completion": target(s["justification"], s["score"])} for s in chosen]
    dropped = Counter(v for v in verdicts.values() if v is not None)
    valid_scores = sum(e.score is not None for e in events)
    summary = {"judge_model": model_hash, "method": jcfg.method, "template_sha256": judge.template.hash,
               "judged_groups": len(group_ids), "judged_replies": len(replies), "judgements": len(events),
               "parse_rate": valid_scores / len(events), "kept_groups": len(kept_groups),
               "dropped_groups": dict(sorted(dropped.items())), "fallback": fallback, "examples": len(examples)}
    with staging(out_dir) as tmp:
        write_parquet(pa.Table.from_pylist(examples, schema=SCHEMA), tmp / "train.parquet")
        write_json(summary, tmp / "summary.json")
    journal.clear()
    return summary
