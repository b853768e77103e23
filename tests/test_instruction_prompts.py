"""The prompt file of the verifiable-instruction evaluation: the bundled one, and bad records refused."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import REPO, write_jsonl

from srlm_core.errors import InputError
from srlm_core.inputs.instruction_prompts import read_instruction_prompts
from srlm_core.params import InstructionsParams
from srlm_core.reporting.instructions import KINDS

GOOD = {"id": "a", "prompt": "Say hi in lowercase.", "instructions": [{"kind": "all_lowercase"}]}


def test_bundled_file_covers_every_kind():
    prompts = read_instruction_prompts(REPO / InstructionsParams().prompts)
    assert len(prompts) == InstructionsParams().max_prompts == 40
    kinds = Counter(i.kind for p in prompts for i in p.instructions)
    assert set(kinds) == set(KINDS) and min(kinds.values()) >= 3
    assert all(1 <= len(p.instructions) <= 3 for p in prompts)


def test_a_record_reads_as_written(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [GOOD, {"id": "b", "prompt": "Two lines.", "instructions": [
        {"kind": "word_count_max", "args": {"max": 9}}, {"kind": "keyword_required", "args": {"keyword": "x"}}]}])
    first, second = read_instruction_prompts(path)
    assert (first.id, first.text, first.instructions[0].kind, first.instructions[0].args) == (
        "a", "Say hi in lowercase.", "all_lowercase", {})
    assert [(i.kind, i.args) for i in second.instructions] == [("word_count_max", {"max": 9}),
                                                               ("keyword_required", {"keyword": "x"})]


@pytest.mark.parametrize("record, where, message", [
    (["not", "an", "object"], "line 2", "expected a JSON object"),
    ({"id": "b", "prompt": "x"}, "line 2", "missing ['instructions']"),
    ({**GOOD, "id": "b", "extra": 1}, "line 2", "unknown ['extra']"),
    ({**GOOD, "id": ""}, "line 2", "'id' must be a non-empty string"),
    ({**GOOD, "id": "b", "prompt": "  "}, "line 2", "'prompt' must be a non-empty string"),
    ({**GOOD, "id": "b", "instructions": []}, "line 2", "non-empty list"),
    ({**GOOD, "id": "b", "instructions": ["all_lowercase"]}, "line 2, instruction 1", "each instruction must be"),
    ({**GOOD, "id": "b", "instructions": [{"kind": "all_lowercase"}, {"kind": "word_count_max", "args": {"max": -1}}]},
     "line 2, instruction 2", "whole number above 0"),
    ({**GOOD, "id": "b", "instructions": [{"kind": "bullets", "args": {}}]}, "line 2, instruction 1",
     "unknown instruction kind 'bullets'"),
    (GOOD, "record 2", "duplicate id 'a'"),
])
def test_bad_records_name_file_line_and_problem(tmp_path, record, where, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, record])
    with pytest.raises(InputError) as info:
        read_instruction_prompts(path)
    assert str(info.value).startswith(f"{path}, {where}: ") and message in str(info.value)


def test_empty_or_missing_file(tmp_path):
    with pytest.raises(InputError, match="holds no prompts"):
        read_instruction_prompts(write_jsonl(tmp_path / "empty.jsonl", []))
    with pytest.raises(InputError, match="not found"):
        read_instruction_prompts(tmp_path / "absent.jsonl")
