"""`srlm diff`: counts, prompt overlap, distributions and changed rows between two partitions."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from srlm_core.cli import app
from srlm_core.errors import SrlmError
from srlm_core.log.eventlog import EventLog
from srlm_core.log.events import (
    CandidateGenerated,
    GuardChecked,
    InstructionAnswerChecked,
    PairBuilt,
    PromptAdded,
    ReplyLogprobComputed,
)
from srlm_core.reporting.diff import diff

runner = CliRunner()


def add_iteration(log: EventLog, iteration: int, scores: dict[str, tuple[float, float]],
                  rule: str = "best_vs_worst", tolerance: float | None = None) -> None:
    """One pair per prompt name; chosen answers are 10 characters long per iteration, rejected ones 5."""
    prompts, candidates, pairs = [], [], []
    for name, (chosen, rejected) in scores.items():
        prompt = PromptAdded.create(iteration=iteration, source="generated", text=f"prompt {name}",
                                    model_hash="g" * 64, origin_id=None, split=None, stage="prompts", seed=1,
                                    sampling=None)
        answers = [CandidateGenerated.create(prompt_id=prompt.prompt_id, iteration=iteration, model_hash="m" * 64,
                                             sample_index=i, text=text, num_tokens=len(text), finish_reason="stop",
                                             stage="candidates", seed=1, sampling=None)
                   for i, text in enumerate(("x" * 10 * iteration, "y" * 5))]
        pairs.append(PairBuilt.create(prompt_id=prompt.prompt_id, iteration=iteration,
                                      chosen_id=answers[0].candidate_id, rejected_id=answers[1].candidate_id,
                                      chosen_score=chosen, rejected_score=rejected,
                                      chosen_spread=0.0, rejected_spread=0.0, model_hash="m" * 64, stage="pairs",
                                      seed=1, sampling=None, rule=rule, tolerance=tolerance))
        prompts.append(prompt)
        candidates += answers
    for batch in (prompts, candidates, pairs):
        log.append(batch)


@pytest.fixture
def events(tmp_path):
    log = EventLog(tmp_path / "events")
    add_iteration(log, 1, {"p1": (5, 1), "p2": (4, 2), "p3": (3, 2)})
    add_iteration(log, 2, {"p2": (5, 2), "p3": (4, 3), "p4": (5, 1)}, rule="length_controlled", tolerance=0.5)
    return log.root


def test_pairs_across_iterations(events):
    result = diff("pairs@1", "pairs@2", events)
    assert (result["table"], result["a"]["rows"], result["b"]["rows"]) == ("pairs", 3, 3)
    assert result["overlap"] == {"key": "prompt text", "only_a": 1, "only_b": 1, "both": 2, "jaccard": 0.5}
    margin = result["scores"]["margin"]
    assert (margin["a"]["mean"], margin["a"]["min"], margin["b"]["max"]) == (pytest.approx(7 / 3), 1, 4)
    assert margin["delta_mean"] == pytest.approx(1 / 3)
    assert result["lengths"]["chosen"]["delta_mean"] == 10 and result["lengths"]["rejected"]["delta_mean"] == 0
    assert [row["key"] for row in result["added"]["examples"]] == ["prompt p4"]
    assert [row["key"] for row in result["removed"]["examples"]] == ["prompt p1"]
    assert result["removed"]["examples"][0]["margin"] == 4
    assert result["labels"] == {"rule": {"a": {"best_vs_worst": 3}, "b": {"length_controlled": 3}},
                                "tolerance": {"a": {"null": 3}, "b": {"0.5": 3}}}
    assert "tolerance" not in result["scores"]   # a setting, not a measurement


def test_pairs_older_than_the_rule_column_diff_as_best_vs_worst(events, tmp_path):
    """A pairs file of schema version 2 (before rule and tolerance) reads as the paper's rule."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{k: bytes.fromhex(v) if k in PairBuilt.ID_COLUMNS else v for k, v in row.items()}
            for row in EventLog(events).read(PairBuilt, 2).to_pylist()]
    old = tmp_path / "old" / "pairs" / "iteration=2"
    old.mkdir(parents=True)
    schema = PairBuilt.schema_at(2).with_metadata({"srlm.table": "pairs", "srlm.schema_version": "2"})
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), old / "part-old.parquet")
    result = diff(str(old), "pairs@2", events)
    assert result["labels"] == {"rule": {"a": {"best_vs_worst": 3}, "b": {"length_controlled": 3}},
                                "tolerance": {"a": {"null": 3}, "b": {"0.5": 3}}}


def test_folders_of_two_runs(events, tmp_path):
    other = EventLog(tmp_path / "other" / "events")
    add_iteration(other, 1, {"p1": (5, 1), "p9": (2, 1)})
    result = diff(str(events / "pairs" / "iteration=1"), str(other.root / "pairs"), events_root=tmp_path / "none")
    assert result["overlap"] == {"key": "prompt text", "only_a": 2, "only_b": 1, "both": 1, "jaccard": 0.25}
    # Copied out of its event log, a partition has no prompts table to join: prompt ids are the key
    # (equal here for p1, whose prompt row is the same content in the same iteration).
    loose = shutil.copytree(other.root / "pairs" / "iteration=1", tmp_path / "loose")
    result = diff(str(loose), "pairs@1", events, examples=0)
    assert result["overlap"]["key"] == "prompt_id" and "chosen" not in result["lengths"]
    assert result["overlap"]["both"] == 1 and result["added"] == {"rows": 2, "examples": []}


def test_errors_name_the_fix(events):
    with pytest.raises(SrlmError, match=r"pairs@1 \(pairs\) with candidates@2 \(candidates\).*same table"):
        diff("pairs@1", "candidates@2", events)
    with pytest.raises(SrlmError, match="iteration=1, iteration=2"):
        diff("pairs@1", "pairs@7", events)
    with pytest.raises(SrlmError, match="unknown table 'pair'"):
        diff("pair@1", "pairs@2", events)


def test_cli_json_and_text(events):
    result = runner.invoke(app, ["diff", "pairs@1", "pairs@2", "--events", str(events), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["overlap"]["both"] == 2 and data["added"]["rows"] == 1
    assert set(data["scores"]["chosen_score"]["a"]) == {"count", "nulls", "mean", "std", "min", "p25", "median",
                                                        "p75", "max"}
    text = runner.invoke(app, ["diff", "pairs@1", "pairs@2", "--events", str(events)]).output
    assert "1 only in A, 1 only in B, 2 in both" in text and "prompt p4" in text
    assert "margin" in text and "chosen_score" in text
    assert "rule: A best_vs_worst 3; B length_controlled 3" in text


def test_pointwise_scores_of_two_models_compare_by_prompt(tmp_path):
    """`srlm diff answer_scores@M1 answer_scores@SFT`: the fixed judge's scores of two models' answers."""
    from test_h2h import _matchup_log

    _matchup_log(tmp_path, [4.0, 3.0, 2.0], [3.0, 3.0, 1.0])
    d = diff("answer_scores@M1", "answer_scores@SFT", tmp_path / "events")
    assert d["overlap"]["both"] == 3 and (d["a"]["rows"], d["b"]["rows"]) == (6, 6)
    assert d["scores"]["score"]["delta_mean"] == pytest.approx(-2 / 3)


def test_reply_logprobs_of_two_models_compare_by_group(tmp_path):
    """`srlm diff reply_logprobs@M1 reply_logprobs@M2`: two models' log-probs of the held-out replies,
    groups matched by group_id; a reply over max_length (null log-prob) counts as a null."""
    log = EventLog(tmp_path / "events")
    values = {"M1": {("g1", "r1"): -10.0, ("g1", "r2"): -20.0, ("g2", "r3"): -30.0, ("g2", "r4"): None},
              "M2": {("g2", "r3"): -24.0, ("g2", "r4"): None, ("g3", "r5"): -6.0}}
    for model, rows in values.items():
        log.append_partition(ReplyLogprobComputed, model, [ReplyLogprobComputed.create(
            model=model, group_id=group, reply_id=reply, model_hash=model * 32, tokens=None if lp is None else 5,
            logprob=lp, stage="logprobs", seed=None, sampling=None) for (group, reply), lp in rows.items()])
    result = diff("reply_logprobs@M1", "reply_logprobs@M2", log.root)
    assert (result["table"], result["a"]["rows"], result["b"]["rows"]) == ("reply_logprobs", 4, 3)
    assert result["overlap"] == {"key": "group_id", "only_a": 1, "only_b": 1, "both": 1, "jaccard": 1 / 3}
    logprob = result["scores"]["logprob"]
    assert (logprob["a"]["count"], logprob["a"]["nulls"], logprob["a"]["mean"]) == (3, 1, -20.0)
    assert logprob["delta_mean"] == pytest.approx(5.0)
    assert set(result["scores"]) == {"tokens", "logprob"} and result["lengths"] == {}
    assert [row["key"] for row in result["added"]["examples"]] == ["g3"]
    assert sorted(row["key"] for row in result["removed"]["examples"]) == ["g1", "g1"]
    text = runner.invoke(app, ["diff", "reply_logprobs@M1", "reply_logprobs@M2", "--events", str(log.root)]).output
    assert "by group_id: 1 only in A, 1 only in B, 1 in both" in text and "logprob" in text


def test_guard_checks_of_two_iterations_match_by_guard(tmp_path):
    """`srlm diff guard_checks@1 guard_checks@2`: each iteration's checks, paired by the guard's name."""
    log = EventLog(tmp_path / "events")
    for iteration, growth in ((1, 1.1), (2, 1.7)):
        log.append([GuardChecked.create(iteration=iteration, model=f"M{iteration + 1}", parent=f"M{iteration}",
                                        guard=guard, value=value, threshold=1.5, outcome=outcome, reason="r",
                                        model_hash="m" * 64, stage="guards", seed=None, sampling=None)
                    for guard, value, outcome in (("length_growth", growth, "ok" if growth < 1.5 else "warn"),
                                                  ("top_share", 0.0, "ok"))])
    result = diff("guard_checks@1", "guard_checks@2", log.root)
    assert result["overlap"] == {"key": "guard", "only_a": 0, "only_b": 0, "both": 2, "jaccard": 1.0}
    # each guard's value against its own: 1.1 -> 1.7 length growth, 0 -> 0 top share (never their mix)
    guards = ("length_growth", "top_share")
    assert set(result["scores"]) == {f"{c}[{g}]" for c in ("value", "threshold") for g in guards}
    assert result["scores"]["value[length_growth]"]["delta_mean"] == pytest.approx(0.6)
    assert result["scores"]["value[top_share]"]["delta_mean"] == 0.0
    text = runner.invoke(app, ["diff", "guard_checks@1", "guard_checks@2", "--events", str(log.root)]).output
    assert "by guard: 0 only in A, 0 only in B, 2 in both" in text


def test_instruction_answers_of_two_models_match_by_prompt(tmp_path):
    """Checked answers carry their prompt, so two models' answers pair up by it (not by row id)."""
    log = EventLog(tmp_path / "events")
    for model, followed in (("M1", {"a": 0, "b": 1}), ("M2", {"b": 2, "c": 1})):
        log.append([InstructionAnswerChecked.create(
            model=model, origin_id=name, prompt=f"prompt {name}", model_hash=model * 32, text="x" * (10 * n + 1),
            num_tokens=n + 1, finish_reason="stop", instructions=2, followed=n, checks="[]", stage="instructions",
            seed=1, sampling=None) for name, n in followed.items()])
    result = diff("instruction_answers@M1", "instruction_answers@M2", log.root)
    assert result["overlap"] == {"key": "prompt text", "only_a": 1, "only_b": 1, "both": 1, "jaccard": 1 / 3}
    assert result["scores"]["followed"]["delta_mean"] == pytest.approx(1.0)
    assert [row["key"] for row in result["added"]["examples"]] == ["prompt c"]
