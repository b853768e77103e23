"""The seed stage: OASST export -> IFT examples, ranked groups, a split by tree, seed prompts.

Outputs (all content-hashed in summary.json):
  <out>/ift.parquet            first-turn (prompt, top-ranked reply) pairs, train split, capped
  <out>/ranked_groups.parquet  one row per ranked reply of root prompts with >= 2 of them
  <out>/heldout_ranked.parquet one row per ranked reply of the eval split, at every depth of the trees
                               where >= 2 siblings are ranked, with the conversation before it
  <out>/summary.json           counts, dropped-by-reason, split sizes, input and output hashes
  <events>/prompts/iteration=0 the seed and held-out evaluation prompts as PromptAdded events
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ..errors import InputError
from ..hashing import combine, row_id, sha256_file
from ..inputs.conversations import (
    Filters,
    RankedSiblings,
    RootPrompt,
    apply_filters,
    check_structure,
    counts,
    ranked_siblings,
    root_prompts,
)
from ..inputs.eval_prompts import eval_prompt_files, read_eval_prompts
from ..inputs.oasst import ReadLimits, read_messages, source_files
from ..log.eventlog import EventLog
from ..log.events import PromptAdded
from ..params import DataParams
from ..storage import write_json, write_parquet

STAGE = "seed"

IFT_SCHEMA = pa.schema([
    ("example_id", pa.string()), ("tree_id", pa.string()), ("prompt_id", pa.string()),
    ("prompt", pa.string()), ("response_id", pa.string()), ("response", pa.string()),
])
GROUPS_SCHEMA = pa.schema([
    ("prompt_id", pa.string()), ("tree_id", pa.string()), ("split", pa.string()), ("prompt", pa.string()),
    ("reply_id", pa.string()), ("reply", pa.string()), ("rank", pa.int64()),
])
TURN = pa.struct([("role", pa.string()), ("content", pa.string())])
HELDOUT_SCHEMA = pa.schema([
    ("group_id", pa.string()), ("tree_id", pa.string()), ("depth", pa.int64()), ("conversation", pa.list_(TURN)),
    ("reply_id", pa.string()), ("reply", pa.string()), ("rank", pa.int64()),
])
CHAT_ROLES = {"prompter": "user", "assistant": "assistant"}


def filters_from(params: DataParams) -> Filters:
    return Filters(params.language, params.drop_deleted, params.drop_failed_review, params.drop_synthetic)


def seed_prompt_id(root: RootPrompt) -> str:
    return PromptAdded.compute_id(dict(iteration=0, source="seed", origin_id=root.message.message_id,
                                       text=root.message.text, model_hash=None))


def split_by_tree(tree_ids: list[str], eval_fraction: float, split_seed: int) -> dict[str, str]:
    """Deterministic split: trees ordered by a seeded hash, the first share goes to eval."""
    order = sorted(tree_ids, key=lambda t: row_id("split", split_seed, t))
    n_eval = round(len(order) * eval_fraction)
    return {tree: ("eval" if i < n_eval else "train") for i, tree in enumerate(order)}


def heldout_rows(groups: list[RankedSiblings], split: dict[str, str], order: dict[str, str]) -> list[dict]:
    """The eval split's ranked sibling groups, one row per reply, trees in the split's seeded order.
    group_id is the id of the user message the siblings answer."""
    held = sorted((g for g in groups if split[g.tree_id] == "eval"),
                  key=lambda g: (order[g.tree_id], g.depth, g.conversation[-1].message_id))
    return [dict(group_id=g.conversation[-1].message_id, tree_id=g.tree_id, depth=g.depth,
                 conversation=[{"role": CHAT_ROLES[m.role], "content": m.text} for m in g.conversation],
                 reply_id=reply.message_id, reply=reply.text, rank=reply.rank)
            for g in held for reply in g.ranked]


@dataclass(frozen=True)
class SeedData:
    ift: pa.Table
    groups: pa.Table
    heldout: pa.Table
    prompts: list[PromptAdded]
    summary: dict


def build(params: DataParams) -> SeedData:
    """Read, check, filter and split the seed; raises InputError on bad input."""
    source = Path(params.source)
    messages = read_messages(source, ReadLimits.of(params))
    complete, incomplete = check_structure(messages, source)
    raw_counts = counts(messages)
    kept, dropped = apply_filters(complete, filters_from(params))
    if incomplete:
        dropped["incomplete_tree"] = incomplete
    if not kept:
        raise InputError(source, None, f"no messages left after the filters (dropped: {dict(dropped)})",
                         "check data.language and the drop_* filters in params.yaml")
    roots = root_prompts(kept)
    split = split_by_tree([r.tree_id for r in roots], params.eval_fraction, params.split_seed)
    order = {tree: row_id("order", params.split_seed, tree) for tree in split}

    ift_roots = sorted((r for r in roots if r.ranked and split[r.tree_id] == "train"), key=lambda r: order[r.tree_id])
    ift_rows = [dict(example_id=row_id("ift", seed_prompt_id(r), r.ranked[0].message_id), tree_id=r.tree_id,
                     prompt_id=seed_prompt_id(r), prompt=r.message.text, response_id=r.ranked[0].message_id,
                     response=r.ranked[0].text) for r in ift_roots[: params.ift_max]]
    group_rows = [dict(prompt_id=seed_prompt_id(r), tree_id=r.tree_id, split=split[r.tree_id], prompt=r.message.text,
                       reply_id=reply.message_id, reply=reply.text, rank=reply.rank)
                  for r in roots if len(r.ranked) >= 2 for reply in r.ranked]
    if not ift_rows:
        raise InputError(source, None, "no IFT examples: no train-split root prompt has a ranked assistant reply",
                         "use data with ranked replies, or lower data.eval_fraction")
    if not group_rows:
        raise InputError(source, None, "no ranked groups: no root prompt has 2 or more ranked assistant replies",
                         "the judge needs human-ranked replies to learn from")

    heldout = heldout_rows(ranked_siblings(kept), split, order)

    prompts = [PromptAdded.create(iteration=0, source="seed", text=r.message.text, model_hash=None,
                                  origin_id=r.message.message_id, split=split[r.tree_id], stage=STAGE,
                                  seed=None, sampling=None) for r in roots]
    prompts += [PromptAdded.create(iteration=0, source="eval", text=p.text, model_hash=None, origin_id=p.origin_id,
                                   split="eval", stage=STAGE, seed=None, sampling=None)
                for p in read_eval_prompts(params.eval_prompts, ReadLimits.of(params))]
    summary = {
        "before_filters": raw_counts,
        "after_filters": counts(kept),
        "dropped": dict(sorted(dropped.items())),
        "trees_by_split": {s: sum(1 for v in split.values() if v == s) for s in ("train", "eval")},
        "ift_examples": len(ift_rows),
        "ranked_groups_by_split": {s: len({r["prompt_id"] for r in group_rows if r["split"] == s})
                                   for s in ("train", "eval")},
        "heldout_groups_by_depth": {str(d): len({r["group_id"] for r in heldout if r["depth"] == d})
                                    for d in sorted({r["depth"] for r in heldout})},
        "eval_prompts": sum(1 for p in prompts if p.source == "eval"),
        "inputs": {str(p): sha256_file(p) for p in source_files(source) + eval_prompt_files(params.eval_prompts)},
    }
    return SeedData(pa.Table.from_pylist(ift_rows, schema=IFT_SCHEMA),
                    pa.Table.from_pylist(group_rows, schema=GROUPS_SCHEMA),
                    pa.Table.from_pylist(heldout, schema=HELDOUT_SCHEMA), prompts, summary)


def run(params: DataParams, out_dir: Path | str, events_root: Path | str) -> dict:
    """Build everything first, then write: bad input leaves no output behind."""
    data = build(params)
    out_dir = Path(out_dir)
    outputs = {"ift.parquet": data.ift, "ranked_groups.parquet": data.groups, "heldout_ranked.parquet": data.heldout}
    hashes = {name: sha256_file(write_parquet(table, out_dir / name)) for name, table in outputs.items()}
    EventLog(events_root).append(data.prompts)
    summary = dict(data.summary, outputs=hashes, hash=combine(hashes))
    write_json(summary, out_dir / "summary.json")
    return summary
