"""The event log contract: validated, insert-only, all-or-nothing, atomic, deterministic."""

from __future__ import annotations

import dataclasses
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from srlm_core.log.eventlog import EventLog, EventLogError, tampered_files
from srlm_core.log.events import (
    CandidateGenerated,
    JudgementRecorded,
    PairBuilt,
    PromptAdded,
    sampling_json,
)


def prompt(text: str, iteration: int = 1) -> PromptAdded:
    return PromptAdded.create(iteration=iteration, source="generated", text=text, model_hash="m" * 64,
                              origin_id=None, split=None, stage="prompts", seed=7,
                              sampling=sampling_json({"temperature": 0.7}))


def test_append_and_read_round_trip(tmp_path):
    log = EventLog(tmp_path)
    events = [prompt("a"), prompt("b")]
    path = log.append(events)
    assert path.parent == tmp_path / "prompts" / "iteration=1"
    rows = log.read(PromptAdded).to_pylist()
    assert rows == [dataclasses.asdict(e) for e in events]


def test_same_rows_give_byte_identical_files(tmp_path):
    a = EventLog(tmp_path / "a").append([prompt("x"), prompt("y")])
    b = EventLog(tmp_path / "b").append([prompt("x"), prompt("y")])
    assert a.name == b.name and a.read_bytes() == b.read_bytes()


def test_ids_are_content_hashes():
    assert prompt("a").prompt_id == prompt("a").prompt_id != prompt("b").prompt_id
    assert prompt("a", iteration=1).prompt_id != prompt("a", iteration=2).prompt_id


def test_invalid_rows_fail_the_whole_batch(tmp_path):
    log = EventLog(tmp_path)
    bad_type = dataclasses.replace(prompt("b"), seed="seven")
    with pytest.raises(EventLogError, match="row 1: seed is str"):
        log.append([prompt("a"), bad_type])
    forged = dataclasses.replace(prompt("c"), text="changed after hashing")
    with pytest.raises(EventLogError, match="not the content hash"):
        log.append([forged])
    null = dataclasses.replace(prompt("d"), text=None)
    with pytest.raises(EventLogError, match="text is null"):
        log.append([null])
    assert log.files() == []


def test_duplicates_are_refused(tmp_path):
    log = EventLog(tmp_path)
    with pytest.raises(EventLogError, match="within the batch"):
        log.append([prompt("a"), prompt("a")])
    log.append([prompt("a")])
    with pytest.raises(EventLogError, match="already in the log"):
        log.append([prompt("b"), prompt("a")])
    assert len(log.files()) == 1


def test_mixed_batches_are_refused(tmp_path):
    with pytest.raises(EventLogError, match="one event type and one iteration"):
        EventLog(tmp_path).append([prompt("a", 1), prompt("b", 2)])


def test_a_killed_write_leaves_nothing_readable(tmp_path, monkeypatch):
    def crash(*args):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        EventLog(tmp_path).append([prompt("a")])
    assert list((tmp_path / "prompts" / "iteration=1").iterdir()) == []


def test_read_checks_the_schema(tmp_path):
    folder = tmp_path / "prompts" / "iteration=1"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"prompt_id": ["x"]}), folder / ("part-" + "0" * 64 + ".parquet"))
    with pytest.raises(EventLogError, match="schema does not match"):
        EventLog(tmp_path).read(PromptAdded)


def test_every_table_round_trips(tmp_path):
    log = EventLog(tmp_path)
    p = prompt("q")
    c = CandidateGenerated.create(prompt_id=p.prompt_id, iteration=1, model_hash="m" * 64, sample_index=0,
                                  text="answer", num_tokens=3, finish_reason="stop", stage="candidates",
                                  seed=1, sampling=None)
    j = JudgementRecorded.create(candidate_id=c.candidate_id, prompt_id=p.prompt_id, iteration=1,
                                 model_hash="m" * 64, sample_index=0, template_hash="t" * 64,
                                 raw_output="fine. Score: 4", score=4.0, method="text", stage="judge",
                                 seed=1, sampling=None)
    unparsed = dataclasses.replace(j, raw_output="rambling", score=None)
    unparsed = JudgementRecorded.create(**{k: v for k, v in dataclasses.asdict(unparsed).items()
                                           if k != "judgement_id"})
    pair = PairBuilt.create(prompt_id=p.prompt_id, iteration=1, chosen_id=c.candidate_id, rejected_id="r" * 64,
                            chosen_score=4.0, rejected_score=1, chosen_spread=0.0, rejected_spread=0.5, model_hash="m" * 64, stage="pairs", seed=None,
                            sampling=None)
    for batch in ([p], [c], [j, unparsed], [pair]):
        log.append(batch)
    assert log.read(JudgementRecorded).column("score").to_pylist() == [4.0, None]
    assert log.read(PairBuilt).column("rejected_score").to_pylist() == [1.0]


def test_tampering_is_detected(tmp_path):
    path = EventLog(tmp_path).append([prompt("a")])
    assert tampered_files(tmp_path) == []
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    assert tampered_files(tmp_path) == [path]
