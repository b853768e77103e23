"""Held-out prompts: MT-Bench, Arena-Hard and plain JSONL."""

from __future__ import annotations

import pytest
from conftest import SEED_EVAL, SHARED, write_jsonl

from srlm_core.errors import InputError
from srlm_core.inputs.eval_prompts import read_eval_prompts


def test_all_accepted_formats(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [
        {"question_id": 81, "category": "writing", "turns": ["First turn.", "Second turn."]},
        {"uid": "abc", "category": "arena-hard-v0.1", "prompt": "Arena prompt."},
        {"uid": "def", "turns": [{"content": "Arena turns prompt."}]},
        {"prompt": "Plain prompt."},
    ])
    prompts = read_eval_prompts(path)
    assert [(p.origin_id, p.text) for p in prompts] == [
        ("81", "First turn."), ("abc", "Arena prompt."), ("def", "Arena turns prompt."), ("line-4", "Plain prompt.")]


def test_bundled_file():
    assert len(read_eval_prompts(SEED_EVAL)) == 16


@pytest.mark.parametrize("name,count", [("mt_bench_questions.jsonl", 80), ("arena_hard_v0.1_questions.jsonl", 500)])
def test_real_benchmark_files(name, count):
    path = SHARED / "eval" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    prompts = read_eval_prompts(path)
    assert len(prompts) == count and all(p.text.strip() for p in prompts)


@pytest.mark.parametrize("record,message", [
    ({"turns": []}, "non-empty list"), ({"prompt": 3}, "no prompt found"), ({"prompt": "  "}, "empty"),
    ({"turns": [{"text": "x"}]}, "content"),
])
def test_bad_records(tmp_path, record, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "ok"}, record])
    with pytest.raises(InputError, match=message) as info:
        read_eval_prompts(path)
    assert "line 2" in str(info.value)


def test_a_folder_reads_each_file_by_name(tmp_path):
    write_jsonl(tmp_path / "b_arena.jsonl", [{"uid": "x1", "prompt": "Arena prompt."}])
    write_jsonl(tmp_path / "a_mt.jsonl", [{"question_id": 81, "turns": ["MT first.", "MT second."]}])
    (tmp_path / "README.md").write_text("ignored")
    assert [(p.origin_id, p.text) for p in read_eval_prompts(tmp_path)] == [("81", "MT first."), ("x1", "Arena prompt.")]
    write_jsonl(tmp_path / "c_again.jsonl", [{"uid": "x1", "prompt": "Same id."}])
    with pytest.raises(InputError, match="duplicate id 'x1' \\(also in") as info:
        read_eval_prompts(tmp_path)
    assert "c_again.jsonl" in str(info.value)


def test_real_benchmarks_together():
    folder = SHARED / "eval"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    assert len(read_eval_prompts(folder)) == 580


def test_duplicate_ids(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"uid": "a", "prompt": "x"}, {"uid": "a", "prompt": "y"}])
    with pytest.raises(InputError, match="duplicate id"):
        read_eval_prompts(path)
