"""The seed stage: IFT, ranked groups, split by tree, prompts; bundled and real data."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest
from conftest import SEED, SEED_EVAL, small_tree, write_jsonl
from test_oasst import to_trees

from srlm_core.errors import InputError
from srlm_core.inputs.conversations import counts
from srlm_core.inputs.oasst import read_messages
from srlm_core.log.eventlog import EventLog
from srlm_core.log.events import PromptAdded
from srlm_core.params import DataParams
from srlm_core.steps.seed import build, run


def params(**overrides) -> DataParams:
    return DataParams(**{"source": str(SEED), "eval_prompts": str(SEED_EVAL), **overrides})


def test_bundled_seed_is_enough_for_the_default_run():
    data = build(params())
    groups = data.groups.to_pylist()
    sizes = Counter(r["prompt_id"] for r in groups)
    assert len(sizes) >= 40
    assert set(sizes.values()) <= {2, 3, 4}
    for prompt_id in sizes:
        ranks = sorted(r["rank"] for r in groups if r["prompt_id"] == prompt_id)
        assert ranks == list(range(len(ranks)))
    assert data.summary["dropped"] == {"deleted": 1, "failed_review": 1, "language": 3, "synthetic": 1}
    assert data.summary["eval_prompts"] >= 8


def test_split_is_by_tree_and_ift_is_train_only():
    data = build(params(eval_fraction=0.3))
    groups = data.groups.to_pylist()
    split_of = {}
    for row in groups:
        assert split_of.setdefault(row["tree_id"], row["split"]) == row["split"]
    assert Counter(split_of.values()) == {"train": 35, "eval": 15}
    ift_trees = set(data.ift.column("tree_id").to_pylist())
    assert ift_trees and all(split_of[t] == "train" for t in ift_trees)
    first = {r["prompt_id"]: r["reply_id"] for r in groups if r["rank"] == 0}
    for row in data.ift.to_pylist():
        assert first[row["prompt_id"]] == row["response_id"]


def test_ift_cap_and_determinism(tmp_path):
    capped = build(params(ift_max=5))
    assert capped.ift.num_rows == 5
    a = run(params(), tmp_path / "a", tmp_path / "ea")
    b = run(params(), tmp_path / "b", tmp_path / "eb")
    assert a["outputs"] == b["outputs"]
    assert [p.name for p in EventLog(tmp_path / "ea").files()] == [p.name for p in EventLog(tmp_path / "eb").files()]


def test_seed_writes_prompt_events(tmp_path):
    run(params(), tmp_path / "out", tmp_path / "events")
    rows = EventLog(tmp_path / "events").read(PromptAdded, 0).to_pylist()
    sources = Counter((r["source"], r["split"]) for r in rows)
    assert sources == {("seed", "train"): 40, ("seed", "eval"): 10, ("eval", "eval"): 16}
    assert all(r["model_hash"] is None and r["stage"] == "seed" for r in rows)
    ift = pq.read_table(tmp_path / "out" / "ift.parquet").to_pylist()
    ids = {r["prompt_id"] for r in rows}
    assert all(r["prompt_id"] in ids for r in ift)


def test_bad_input_leaves_no_output(tmp_path):
    records = small_tree("t")
    records[1]["rank"] = "x"
    bad = write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(InputError):
        run(params(source=str(bad)), tmp_path / "out", tmp_path / "events")
    assert not (tmp_path / "out").exists() and not (tmp_path / "events").exists()


def test_nothing_left_after_filters(tmp_path):
    path = write_jsonl(tmp_path / "de.jsonl", [dict(r, lang="de") for r in small_tree("t")])
    with pytest.raises(InputError, match="no messages left after the filters"):
        build(params(source=str(path)))


def test_no_ranked_groups(tmp_path):
    path = write_jsonl(tmp_path / "one.jsonl", small_tree("a", replies=1) + small_tree("b", replies=1))
    with pytest.raises(InputError, match="no ranked groups"):
        build(params(source=str(path), eval_fraction=0.0))


def test_real_oasst_counts(oasst_validation):
    messages = read_messages(oasst_validation)
    assert counts(messages) == {"messages": 2022, "trees": 188, "ift_examples": 187, "ranked_groups": 186}


def test_real_oasst_flat_and_nested_agree(oasst_validation, tmp_path):
    records = [json.loads(line) for line in oasst_validation.read_text(encoding="utf-8").splitlines()]
    known = {r["message_id"] for r in records}
    rooted = [r for r in records if r["parent_id"] is None or r["parent_id"] in known]
    trees = write_jsonl(tmp_path / "trees.jsonl", to_trees(rooted))
    flat = build(params(source=str(oasst_validation)))
    nested = build(params(source=str(trees)))
    assert flat.ift.equals(nested.ift)
    assert flat.groups.equals(nested.groups)
    assert flat.ift.num_rows > 100 and flat.groups.num_rows > 400


def deep_tree(tree: str) -> list[dict]:
    """A root with 2 ranked replies; under the best one a user follow-up with 3 ranked replies (one unranked
    beside them) and an assistant-only branch; a second follow-up with a single ranked reply."""
    from conftest import message

    return small_tree(tree, replies=2) + [
        message(f"{tree}-u1", f"{tree}-r0", f"{tree}-root", role="prompter", text=f"Follow-up to {tree}?"),
        *(message(f"{tree}-u1a{i}", f"{tree}-u1", f"{tree}-root", rank=rank, text=f"Deep answer {i}.")
          for i, rank in enumerate([1, 0, 2])),
        message(f"{tree}-u1ax", f"{tree}-u1", f"{tree}-root", rank=None),
        message(f"{tree}-u2", f"{tree}-r1", f"{tree}-root", role="prompter"),
        message(f"{tree}-u2a", f"{tree}-u2", f"{tree}-root", rank=0),
    ]


def test_heldout_groups_at_every_depth_with_their_conversation(tmp_path):
    source = write_jsonl(tmp_path / "seed.jsonl", [m for t in ("a", "b", "c", "d") for m in deep_tree(t)])
    data = build(params(source=str(source), eval_fraction=0.5))
    rows = data.heldout.to_pylist()
    eval_trees = {r["tree_id"] for r in data.groups.to_pylist() if r["split"] == "eval"}
    assert {r["tree_id"] for r in rows} == eval_trees and len(eval_trees) == 2
    tree = sorted(eval_trees)[0].removesuffix("-root")
    mine = [r for r in rows if r["tree_id"] == f"{tree}-root"]
    assert [(r["depth"], r["group_id"], r["reply_id"], r["rank"]) for r in mine] == [
        (1, f"{tree}-root", f"{tree}-r0", 0), (1, f"{tree}-root", f"{tree}-r1", 1),
        (3, f"{tree}-u1", f"{tree}-u1a1", 0), (3, f"{tree}-u1", f"{tree}-u1a0", 1),
        (3, f"{tree}-u1", f"{tree}-u1a2", 2)]
    assert mine[2]["conversation"] == [{"role": "user", "content": f"Question {tree}?"},
                                       {"role": "assistant", "content": f"Answer 0 to {tree}."},
                                       {"role": "user", "content": f"Follow-up to {tree}?"}]
    assert data.summary["heldout_groups_by_depth"] == {"1": 2, "3": 2}
    # the root groups of the held-out split are the eval rows of ranked_groups.parquet, reply for reply
    assert sorted((r["reply_id"], r["reply"], r["rank"]) for r in rows if r["depth"] == 1) == sorted(
        (r["reply_id"], r["reply"], r["rank"]) for r in data.groups.to_pylist() if r["split"] == "eval")


def test_bundled_and_real_heldout_groups(oasst_validation):
    assert build(params()).summary["heldout_groups_by_depth"] == {"1": 10}
    assert build(params(source=str(oasst_validation))).summary["heldout_groups_by_depth"] == {"1": 38, "3": 45}
