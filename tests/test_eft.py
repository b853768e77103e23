"""EFT selection: agreement with the human ranking is checked on the same whole-point scores the
targets state, so a kept group never teaches tied or inverted labels."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from srlm_core.hashing import sha256_text
from srlm_core.journal import Journal
from srlm_core.judges.judge import Judgement
from srlm_core.params import parse_params
from srlm_core.steps import eft
from srlm_core.steps.eft import group_verdict, points, target
from srlm_core.steps.seed import GROUPS_SCHEMA
from srlm_core.storage import write_parquet


def replies(*pairs):
    return [{"human_rank": rank, "points": label} for rank, label in pairs]


def test_group_kept_only_when_judge_orders_like_humans():
    assert group_verdict(replies((0, 4), (1, 3), (2, 1))) is None
    assert group_verdict(replies((0, 4), (1, 5))) == "disagrees"
    assert group_verdict(replies((0, 3), (1, 3))) == "tie"
    assert group_verdict(replies((0, None), (1, 3))) == "unparsed"
    assert group_verdict(replies((0, 4), (0, 2), (1, 1))) is None   # equal human ranks need no order


def test_label_is_the_stated_score_else_the_rounded_one():
    assert points("Relevant and useful. Score: 2", 4.0) == 2   # the integer the judge wrote
    assert points("Relevant and useful. Score:", 3.6) == 4
    assert points("Relevant.", None) is None


def test_eft_target_ends_in_its_label():
    assert target("Relevant and useful. Score:", 3.6) == "Relevant and useful. Score: 4"
    assert target("Relevant.", 2.2) == "Relevant.\nScore: 2"
    assert target("Fine. Score: 3 and more text", 3.0) == "Fine. Score: 3"


def groups_file(tmp_path, groups: dict[str, list[str]]):
    """Train-split ranked groups: group name -> reply texts, best first (rank = position); a group's
    prompt_id is a row id (64 hex digits) as the seed stage writes it."""
    rows = [{"prompt_id": sha256_text(name), "tree_id": name, "split": "train", "prompt": f"Question {name}?",
             "reply_id": f"{name}-{rank}", "reply": reply, "rank": rank}
            for name, texts in groups.items() for rank, reply in enumerate(texts)]
    return write_parquet(pa.Table.from_pylist(rows, schema=GROUPS_SCHEMA), tmp_path / "ranked_groups.parquet")


def run_with_judgements(monkeypatch, tmp_path, model_dir, judged: dict[str, dict[str, list]], method: str,
                        samples: int):
    """eft.run with the judge's samples given: group -> {reply text: [(raw output, score), ...]}."""
    by_reply = {reply: samples for group in judged.values() for reply, samples in group.items()}

    def judge_resumably(judge, items, **_):
        return [[Judgement(raw, score) for raw, score in by_reply[reply]] for _, reply in items], Journal("eft", {})

    monkeypatch.setattr(eft, "judge_resumably", judge_resumably)
    params = parse_params({"eft": {"samples": samples, "min_examples": 1, "fallback": "fail"},
                           "judge": {"method": method, "max_new_tokens": 4, "max_prompt_tokens": 32,
                                     "max_response_tokens": 32}})
    groups = groups_file(tmp_path, {name: list(group) for name, group in judged.items()})
    summary = eft.run(params, judge_dir=model_dir, groups_path=groups, events_root=tmp_path / "events",
                      out_dir=tmp_path / "eft")
    return summary, pq.read_table(tmp_path / "eft" / "train.parquet").to_pylist()


def stated(completion: str) -> int:
    return int(re.findall(r"Score: (\d)", completion)[-1])


def assert_labels_follow_human_ranks(examples):
    for group in {e["group_id"] for e in examples}:
        ranked = sorted((e for e in examples if e["group_id"] == group), key=lambda e: e["human_rank"])
        labels = [stated(e["completion"]) for e in ranked]
        assert labels == sorted(labels, reverse=True) and len(set(labels)) == len(labels), (group, labels)
        assert [e["score"] for e in ranked] == labels


def test_rounded_tie_drops_a_group_whose_continuous_scores_agree(monkeypatch, tmp_path, tiny_srlm_model):
    """Probability method: 3.4 > 3.1, but both targets would say `Score: 3`."""
    judged = {"rounded-tie": {"best reply a": [("Good.", 3.4)], "worse reply a": [("Fine.", 3.1)]},
              "agrees": {"best reply b": [("Very good. Score:", 4.2)], "worse reply b": [("Weak.", 2.4)]}}
    summary, examples = run_with_judgements(monkeypatch, tmp_path, tiny_srlm_model, judged, "probability", 1)
    assert summary["kept_groups"] == 1 and summary["dropped_groups"] == {"tie": 1}
    assert [e["completion"] for e in examples] == ["Very good. Score: 4", "Weak.\nScore: 2"]
    assert_labels_follow_human_ranks(examples)


def test_text_method_agreement_uses_the_integers_the_judge_wrote(monkeypatch, tmp_path, tiny_srlm_model):
    """Text method, two samples: the mean (3.5 > 3) agrees, but the target of the better reply would be
    its first sample's `Score: 2`, below the worse reply's 3: dropped. A reply whose first sample wrote
    no score takes the one that did."""
    judged = {"inverted": {"best reply a": [("Short. Score: 2", 2.0), ("Great. Score: 5", 5.0)],
                           "worse reply a": [("Meh. Score: 3", 3.0), ("Meh. Score: 3", 3.0)]},
              "agrees": {"best reply b": [("rambling on", None), ("Clear. Score: 4", 4.0)],
                         "worse reply b": [("Weak. Score: 1", 1.0), ("Weak. Score: 2", 2.0)]}}
    summary, examples = run_with_judgements(monkeypatch, tmp_path, tiny_srlm_model, judged, "text", 2)
    assert summary["kept_groups"] == 1 and summary["dropped_groups"] == {"disagrees": 1}
    assert [e["completion"] for e in examples] == ["Clear. Score: 4", "Weak. Score: 1"]
    assert_labels_follow_human_ranks(examples)


@pytest.mark.parametrize("method", ["probability", "text"])
def test_every_kept_group_carries_strictly_ordered_labels(monkeypatch, tmp_path, tiny_srlm_model, method):
    """Many groups of scores near the rounding boundaries: whatever is kept is ordered as the humans ranked."""
    import random

    rng = random.Random(3)
    judged = {}
    for g in range(30):
        if method == "text":   # each reply: a sample with its stated score and one without any
            stated_scores = [rng.randint(1, 5) for _ in range(3)]
            judged[f"g{g}"] = {f"reply {g}-{k}": [(f"Text. Score: {n}", float(n)), ("No score.", None)]
                               for k, n in enumerate(stated_scores)}
        else:
            scores = sorted((round(rng.uniform(1, 4), 2) for _ in range(3)), reverse=True)
            judged[f"g{g}"] = {f"reply {g}-{k}": [("Because.", s)] for k, s in enumerate(scores)}
    summary, examples = run_with_judgements(monkeypatch, tmp_path, tiny_srlm_model, judged, method, 2)
    assert summary["kept_groups"] > 0
    assert_labels_follow_human_ranks(examples)
