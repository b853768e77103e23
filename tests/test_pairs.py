"""AIFT selection in SQL: best vs worst, ties, too few judged, margins, positive-only, the log."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from srlm_core.eventlog import EventLog
from srlm_core.events import CandidateGenerated, JudgementRecorded, PairBuilt, PairSkipped, PromptAdded
from srlm_core.pairs import run
from srlm_core.params import parse_params

JUDGE = "j" * 64


def add_prompt(log: EventLog, name: str, scores: list[list[float | None]]) -> str:
    """A prompt with one candidate per entry of `scores`, each judged once per listed score."""
    prompt = PromptAdded.create(iteration=1, source="generated", text=f"prompt {name}", model_hash="g" * 64,
                                origin_id=name, split=None, stage="prompts", seed=1, sampling=None)
    candidates = [CandidateGenerated.create(prompt_id=prompt.prompt_id, iteration=1, model_hash=JUDGE, sample_index=i,
                                            text=f"{name} answer {i}", num_tokens=3, finish_reason="stop",
                                            stage="candidates", seed=1, sampling=None)
                  for i in range(len(scores))]
    judgements = [JudgementRecorded.create(candidate_id=c.candidate_id, prompt_id=prompt.prompt_id, iteration=1,
                                           model_hash=JUDGE, sample_index=k, template_hash="t" * 64,
                                           raw_output=f"raw {s}", score=s, method="text", stage="judge", seed=1,
                                           sampling=None)
                  for c, samples in zip(candidates, scores) for k, s in enumerate(samples)]
    log.append([prompt])
    log.append(candidates)
    log.append(judgements)
    return prompt.prompt_id


@pytest.fixture
def log(tmp_path):
    log = EventLog(tmp_path / "events")
    ids = {
        "clear": add_prompt(log, "clear", [[5, 4, 5], [1, 2, None], [3, 3, 3], [2, 2, 2]]),
        "tie": add_prompt(log, "tie", [[3, 3], [3, 3], [3, None], [3, 3]]),
        "few": add_prompt(log, "few", [[4, 4], [None, None], [None], [None, None]]),
        "close": add_prompt(log, "close", [[3, 3, 4], [3, 3, 3], [3, 3, 3], [3, 3, 3]]),
    }
    return log, ids


def test_pairs_and_skips(tmp_path, log):
    log, ids = log
    summary = run(parse_params({"pairs": {"min_margin": 0.5}}), iteration=1, events_root=log.root,
                  out_dir=tmp_path / "aift")
    pairs = log.read(PairBuilt, 1).to_pylist()
    assert [p["prompt_id"] for p in pairs] == [ids["clear"]]
    pair = pairs[0]
    assert pair["chosen_score"] == pytest.approx(14 / 3) and pair["rejected_score"] == 1.5   # NULL sample ignored
    assert pair["chosen_spread"] == pytest.approx(0.4714, abs=1e-4) and pair["model_hash"] == JUDGE
    skipped = {s["prompt_id"]: s["reason"] for s in log.read(PairSkipped, 1).to_pylist()}
    assert skipped == {ids["tie"]: "tie", ids["few"]: "too_few_judged", ids["close"]: "below_margin"}
    assert summary["pairs"] == 1 and summary["skipped"] == {"tie": 1, "too_few_judged": 1, "below_margin": 1}
    train = pq.read_table(tmp_path / "aift" / "train.parquet").to_pylist()
    assert train[0]["chosen"] == "clear answer 0" and train[0]["rejected"] == "clear answer 1"
    scores = pq.read_table(tmp_path / "aift" / "candidate_scores.parquet").to_pylist()
    assert len(scores) == 16 and {s["samples"] for s in scores} >= {1, 2, 3}
    unscored = [s for s in scores if s["valid_samples"] == 0]
    assert len(unscored) == 3 and all(s["score"] is None for s in unscored)


def test_without_margin_a_small_gap_is_a_pair(tmp_path, log):
    log, ids = log
    summary = run(parse_params({}), iteration=1, events_root=log.root, out_dir=tmp_path / "aift")
    assert summary["pairs"] == 2 and summary["skipped"] == {"tie": 1, "too_few_judged": 1}


def test_positive_only_writes_sft_data(tmp_path, log):
    log, ids = log
    summary = run(parse_params({"pairs": {"positive_only": True}}), iteration=1, events_root=log.root,
                  out_dir=tmp_path / "aift")
    train = pq.read_table(tmp_path / "aift" / "train.parquet")
    assert summary["mode"] == "sft" and train.column_names == ["prompt_id", "prompt", "completion", "score"]
    assert "clear answer 0" in train.column("completion").to_pylist()


def test_rerun_is_byte_identical(tmp_path, log):
    log, _ = log
    run(parse_params({}), iteration=1, events_root=log.root, out_dir=tmp_path / "a")
    first = {p.name: p.read_bytes() for p in log.files("pairs")}
    for table in ("pairs", "skipped_pairs"):
        for path in log.files(table):
            path.unlink()
    run(parse_params({}), iteration=1, events_root=log.root, out_dir=tmp_path / "b")
    assert {p.name: p.read_bytes() for p in log.files("pairs")} == first
    assert (tmp_path / "a" / "train.parquet").read_bytes() == (tmp_path / "b" / "train.parquet").read_bytes()
