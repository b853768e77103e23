"""The pin of the tiny pipeline's outputs (tests/pinned.py): exact for ids, texts and every other
value but floats, which may differ in their last bits between machines of one processor family."""

from __future__ import annotations

import math

import pinned
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = {"judgement_id": [b"\x01" * 32, b"\x02" * 32, b"\x03" * 32],
        "candidate_id": [b"\x04" * 32, b"\x05" * 32, b"\x06" * 32], "text": ["a", "b", "c"],
        "score": [2.5123456789, 1.25, 4.0], "probs": [[0.1, 0.9], [0.5, 0.5], [0.25, 0.75]], "samples": [3, 3, 3]}


def write(repo, **changes) -> dict:
    folder = repo / "data" / "events" / "judgements" / "iteration=1"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({**ROWS, **changes}), folder / "part-0.parquet")
    return pinned.outputs(repo)["events"]["judgements/iteration=1"]


def test_floats_one_ulp_apart_keep_the_pin_and_other_changes_break_it(tmp_path):
    pin = write(tmp_path)
    assert pinned.same(pin, write(tmp_path))
    float32_ulp = [v * (1 + 2**-23) for v in ROWS["score"]]   # the judge computes in float32
    # a judgement's id covers its score, so it moves with it
    assert pinned.same(pin, write(tmp_path, score=float32_ulp, judgement_id=[b"\x07" * 32, b"\x08" * 32, b"\x09" * 32]))
    assert not pinned.same(pin, write(tmp_path, candidate_id=[b"\x04" * 32, b"\x06" * 32, b"\x05" * 32]))
    assert not pinned.same(pin, write(tmp_path, score=[2.5133456789, 1.25, 4.0]))     # one score 1e-3 off
    assert not pinned.same(pin, write(tmp_path, score=[1.25, 2.5123456789, 4.0]))     # two rows' scores swapped
    assert not pinned.same(pin, write(tmp_path, probs=[[0.9, 0.1], [0.5, 0.5], [0.25, 0.75]]))
    assert not pinned.same(pin, write(tmp_path, text=["a", "b", "d"]))
    assert not pinned.same(pin, write(tmp_path, samples=[3, 3, 2]))


def test_ids_over_floats_are_found_from_the_event_schemas():
    ids = pinned.float_derived_ids()
    assert {"judgement_id", "pair_id", "score_id", "meta_judgement_id"} <= ids
    assert not {"prompt_id", "candidate_id", "answer_id", "group_id", "reply_id"} & ids
    assert pinned.refers_to("first_judgement_id", ids) and not pinned.refers_to("chosen_id", ids)


def test_a_pin_written_as_a_bare_digest_compares_exactly(tmp_path):
    write(tmp_path)
    legacy = {"events": {"judgements/iteration=1": pinned.table_digest(pinned.table_files(tmp_path)["judgements/iteration=1"])}}
    assert pinned.changed_tables(tmp_path, legacy, {"events": {"judgements/iteration=1": write(tmp_path)}}) == []
    found = {"events": {"judgements/iteration=1": write(tmp_path, score=[math.nextafter(v, 0) for v in ROWS["score"]])}}
    assert pinned.changed_tables(tmp_path, legacy, found) == ["judgements/iteration=1"]
    assert pinned.changed_tables(tmp_path, {"events": {**legacy["events"], "pairs/iteration=1": "00"}},
                                 {"events": {}}) == ["judgements/iteration=1", "pairs/iteration=1"]
