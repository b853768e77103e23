"""The event log contract: validated, insert-only, all-or-nothing, atomic, deterministic."""

from __future__ import annotations

import dataclasses
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from srlm_core.log.eventlog import EventLog, EventLogError, tampered_files
from srlm_core.log.events import (
    EVENT_TYPES,
    ID_TYPE,
    CandidateGenerated,
    JudgementRecorded,
    PairBuilt,
    PromptAdded,
    ReplyLogprobComputed,
    ids_from_hex,
    ids_to_hex,
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
    pair = PairBuilt.create(prompt_id=p.prompt_id, iteration=1, chosen_id=c.candidate_id, rejected_id="e" * 64,
                            chosen_score=4.0, rejected_score=1, chosen_spread=0.0, rejected_spread=0.5, model_hash="m" * 64, stage="pairs", seed=None,
                            sampling=None, rule="best_vs_worst", tolerance=None)
    for batch in ([p], [c], [j, unparsed], [pair]):
        log.append(batch)
    assert log.read(JudgementRecorded).column("score").to_pylist() == [4.0, None]
    assert log.read(PairBuilt).column("rejected_score").to_pylist() == [1.0]


def test_reply_logprobs_keep_the_dataset_ids_as_text_and_null_log_probs(tmp_path):
    """reply_logprobs: its own id is a row id (32 bytes), group_id and reply_id are dataset message ids
    (UUIDs in OASST), stored as text; a reply too long to score has null tokens and logprob."""
    log = EventLog(tmp_path)
    rows = [ReplyLogprobComputed.create(model="M1", group_id="6ab24d72-0181-4594-a9cd-deaf170242fb",
                                        reply_id=reply, model_hash="m" * 64, tokens=tokens, logprob=lp,
                                        stage="logprobs", seed=None, sampling=sampling_json({"dtype": "float32"}))
            for reply, tokens, lp in (("r-1", 12, -31.5), ("r-2", None, None))]
    path = log.append(rows)
    assert path.parent == tmp_path / "reply_logprobs" / "model=M1"
    schema = pq.read_schema(path)
    assert schema.field("logprob_id").type == ID_TYPE
    assert pa.types.is_string(schema.field("group_id").type) and pa.types.is_string(schema.field("reply_id").type)
    assert log.read(ReplyLogprobComputed, "M1").to_pylist() == [dataclasses.asdict(e) for e in rows]
    assert rows[0].logprob_id != ReplyLogprobComputed.compute_id({**dataclasses.asdict(rows[0]), "logprob": -31.0})


def test_tampering_is_detected(tmp_path):
    path = EventLog(tmp_path).append([prompt("a")])
    assert tampered_files(tmp_path) == []
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    assert tampered_files(tmp_path) == [path]


def one_of_each(iteration: int = 1) -> list[list]:
    p = prompt("q", iteration)
    c = CandidateGenerated.create(prompt_id=p.prompt_id, iteration=iteration, model_hash="m" * 64, sample_index=0,
                                  text="answer", num_tokens=3, finish_reason="stop", stage="candidates",
                                  seed=1, sampling=None)
    j = JudgementRecorded.create(candidate_id=c.candidate_id, prompt_id=p.prompt_id, iteration=iteration,
                                 model_hash="m" * 64, sample_index=0, template_hash="t" * 64,
                                 raw_output="fine. Score: 4", score=4.0, method="text", stage="judge",
                                 seed=1, sampling=None, injection_spans=0, neutralised=False)
    pair = PairBuilt.create(prompt_id=p.prompt_id, iteration=iteration, chosen_id=c.candidate_id,
                            rejected_id="e" * 64, chosen_score=4.0, rejected_score=1.0, chosen_spread=0.0,
                            rejected_spread=0.5, model_hash="m" * 64, stage="pairs", seed=None, sampling=None,
                            rule="length_controlled", tolerance=0.5)
    return [[p], [c], [j], [pair]]


def test_ids_are_stored_as_32_bytes_and_read_as_hex(tmp_path):
    log = EventLog(tmp_path)
    for batch in one_of_each():
        path = log.append(batch)
    schema = pq.read_schema(path)
    assert {n: schema.field(n).type for n in PairBuilt.ID_COLUMNS} == dict.fromkeys(PairBuilt.ID_COLUMNS, ID_TYPE)
    assert schema.metadata[b"srlm.schema_version"] == str(PairBuilt.SCHEMA_VERSION).encode()
    stored = pq.read_table(path).to_pylist()[0]
    row = log.read(PairBuilt).to_pylist()[0]
    assert stored["chosen_id"] == bytes.fromhex(row["chosen_id"]) and row["rejected_id"] == "e" * 64
    assert log.read(PairBuilt, hex_ids=False).to_pylist() == [stored]


def test_hex_conversion_round_trips_every_byte_and_slices():
    """Every byte value, in both digit positions, through whole and sliced (offset) chunks."""
    ids = [bytes((b + k) % 256 for k in range(32)) for b in range(256)]
    chunked = pa.chunked_array([pa.array(ids[:100], ID_TYPE), pa.array(ids[100:], ID_TYPE)])
    assert ids_to_hex(chunked).to_pylist() == [i.hex() for i in ids]
    assert ids_to_hex(pa.array(ids, ID_TYPE).slice(7, 50)).to_pylist() == [i.hex() for i in ids[7:57]]
    assert ids_from_hex(ids_to_hex(chunked)).to_pylist() == ids


def test_an_id_that_is_not_hex_is_refused(tmp_path):
    p = prompt("q")
    c = CandidateGenerated.create(prompt_id="P" * 64, iteration=1, model_hash="m" * 64, sample_index=0,
                                  text="answer", num_tokens=3, finish_reason="stop", stage="candidates",
                                  seed=1, sampling=None)
    with pytest.raises(EventLogError, match="prompt_id is not a row id"):
        EventLog(tmp_path).append([c])
    assert p.problems() == []


@pytest.mark.parametrize("kind", EVENT_TYPES, ids=lambda k: k.TABLE)
def test_added_columns_are_declared_consistently(kind):
    """Each added column came in a later version than 1 and no later than now; an upcast value is
    for an added, non-nullable column (a nullable one reads as null), and of the column's type."""
    columns = {name: (kind_type, nullable) for name, kind_type, nullable in kind.columns()}
    assert all(name in columns and 1 < since <= kind.SCHEMA_VERSION for name, since in kind.ADDED_COLUMNS.items())
    for name, value in kind.UPCAST_VALUES.items():
        assert name in kind.ADDED_COLUMNS and not columns[name][1] and isinstance(value, columns[name][0])


@pytest.mark.parametrize("version", [1, 2])
def test_older_version_files_read_as_the_same_data_written_now(tmp_path, version):
    """Upcasting: a file written at an older schema version (ids as hex strings before BINARY_IDS_SINCE;
    without the columns added since: the judgement tables' guard columns before 2, the pairs' rule and
    tolerance before 3) reads back equal to the same events written now, the added columns aside,
    which read as their UPCAST_VALUES entry (a pair's rule: best_vs_worst) or null."""
    new, old = EventLog(tmp_path / "new"), EventLog(tmp_path / "old")
    for batch in one_of_each():
        new.append(batch)
        kind = type(batch[0])
        if version > kind.SCHEMA_VERSION - 1:
            continue   # this table has no such older version
        binary = version >= kind.BINARY_IDS_SINCE
        rows = [{k: bytes.fromhex(v) if binary and k in kind.ID_COLUMNS else v
                 for k, v in dataclasses.asdict(e).items() if k in kind.schema_at(version).names} for e in batch]
        table = pa.Table.from_pylist(rows, schema=kind.schema_at(version))
        assert pa.types.is_string(table.schema.field(kind.ID_FIELD).type) != binary
        folder = old.partition(kind.TABLE, 1)
        folder.mkdir(parents=True)
        pq.write_table(table, folder / "part-old.parquet")
        added = [n for n, since in kind.ADDED_COLUMNS.items() if since > version]
        for hex_ids in (True, False):
            got, want = old.read(kind, hex_ids=hex_ids), new.read(kind, hex_ids=hex_ids)
            if added:
                assert got.select(added).to_pylist() == [{n: kind.UPCAST_VALUES.get(n) for n in added}] * len(batch)
                got, want = got.drop_columns(added), want.drop_columns(added)
            assert got.schema == want.schema
            assert got.drop_columns(["schema_version"]).equals(want.drop_columns(["schema_version"]))
        # an append next to the old file still sees its ids
        with pytest.raises(EventLogError, match="already in the log"):
            old.append(batch)
