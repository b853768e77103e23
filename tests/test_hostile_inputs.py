"""Hostile and messy input: seed data, held-out prompts and params.yaml.

The small cases are files under tests/hostile/ (one defect each, on top of a valid
3-tree export); the big ones (10 MB, deep nesting, long reply chains) are generated in
tmp_path. Each bad input must give one SrlmError naming the file and the line (or the
param), exit 1 from the stage script without a traceback, and leave no output; a
skip documented in docs/data.md is counted instead.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, SEED_EVAL, message, small_tree, write_jsonl

from srlm_core.errors import InputError, SrlmError
from srlm_core.inputs.eval_prompts import read_eval_prompts
from srlm_core.inputs.oasst import ReadLimits
from srlm_core.params import DataParams, load_params
from srlm_core.steps.seed import build, run

HOSTILE = Path(__file__).parent / "hostile"

# file under hostile/seed -> fragments the error must hold (the file's path is always checked)
SEED_ERRORS = {
    "empty.jsonl": ["holds no messages"],
    "blank_lines.jsonl": ["holds no messages"],
    "truncated.jsonl.gz": ["not a complete gzip file"],
    "not_gzip.jsonl.gz": ["not a complete gzip file"],
    "invalid_json.jsonl": ["line 6", "invalid JSON"],
    "truncated_last_line.jsonl": ["line 12", "invalid JSON"],
    "not_an_object.jsonl": ["line 4", "expected a JSON object, got list"],
    "wrong_type_rank.jsonl": ["line 3", "field 'rank' is str 'first', expected int"],
    "wrong_type_text.jsonl": ["line 5", "field 'text' is int 42, expected str"],
    "negative_rank.jsonl": ["line 7", "field 'rank' is -1"],
    "huge_rank.jsonl": ["line 3", "field 'rank'", "below 2**63"],
    "nan_rank.jsonl": ["line 3", "field 'rank' is float nan"],
    "unknown_role.jsonl": ["line 4", "field 'role' is 'bot'"],
    "missing_text.jsonl": ["line 6", "missing field 'text'"],
    "missing_parent_id.jsonl": ["line 2", "missing field 'parent_id'"],
    "invalid_utf8.jsonl": ["line 7", "invalid UTF-8"],
    "lone_surrogate.jsonl": ["line 3", "unpaired UTF-16 surrogate"],
    "duplicate_id.jsonl": ["line 13", "duplicate message_id 'b-r0'", "line 6"],
    "orphan_reply.jsonl": ["line 13", "replies to no-such-message, which is not in the data"],
    "cycle.jsonl": ["line 13", "cycle through loop-1"],
    "self_parent.jsonl": ["line 13", "cycle through self"],
    "no_english.jsonl": ["no messages left after the filters", "'language': 12", "data.language"],
    "no_ranked_replies.jsonl": ["no IFT examples"],
    "one_reply_each.jsonl": ["no ranked groups"],
    "mixed_formats.jsonl": ["line 2", "a flat message in a file of message trees"],
    "tree_replies_not_a_list.jsonl": ["line 1 (prompt)", "field 'replies' is str"],
}
# accepted files under hostile/seed -> the drop counts in summary.json
SEED_ACCEPTED = {
    # skipped by design (docs/data.md): the root of tree cut-root is in another split
    "tree_without_root.jsonl": {"incomplete_tree": 2},
    # a UTF-8 byte-order mark, CRLF line ends and no final newline are read as usual
    "bom_crlf.jsonl": {},
}
EVAL_ERRORS = {
    "empty.jsonl": ["holds no prompts"],
    "truncated.jsonl.gz": ["not a complete gzip file"],
    "invalid_json.jsonl": ["line 2", "invalid JSON"],
    "invalid_utf8.jsonl": ["line 2", "invalid UTF-8"],
    "wrong_type.jsonl": ["line 2", "field 'prompt' is int"],
    "missing_prompt.jsonl": ["line 2", "no prompt found"],
    "empty_prompt.jsonl": ["line 2", "the prompt is empty"],
    "bad_turns.jsonl": ["line 2", "'turns' must be a non-empty list"],
    "duplicate_id.jsonl": ["record 2", "duplicate id 'q1'"],
    "lone_surrogate.jsonl": ["line 2", "unpaired UTF-16 surrogate"],
}
PARAMS_ERRORS = {
    "empty.yaml": ["empty", "write `{}`"],
    "only_comments.yaml": ["empty"],
    "not_a_mapping.yaml": ["expected a mapping of sections"],
    "invalid_yaml.yaml": ["line 3", "not valid YAML"],
    "tab_indent.yaml": ["line 2", "not valid YAML", "'\\t'"],
    "invalid_utf8.yaml": ["not UTF-8"],
    "duplicate_key.yaml": ["line 3", "duplicate key 'batch_size'"],
    "duplicate_section.yaml": ["line 3", "duplicate key 'dpo'"],
    "unknown_key.yaml": ["dpo.betta: unknown key"],
    "unknown_section.yaml": ["judges: unknown key"],
    "section_not_a_mapping.yaml": ["sft: Input should be a valid dictionary"],
    "negative_n.yaml": ["candidates.n: Input should be greater than 1 (got -4)"],
    "negative_num_prompts.yaml": ["prompts.num_prompts: Input should be greater than 0 (got -1)"],
    "negative_temperature.yaml": ["judge.temperature: Input should be greater than or equal to 0 (got -0.7)"],
    "nan_temperature.yaml": ["candidates.temperature: Input should be a finite number"],
    "zero_beta.yaml": ["dpo.beta: Input should be greater than 0 (got 0)"],
    "negative_beta.yaml": ["dpo.beta: Input should be greater than 0 (got -0.1)"],
    "infinite_learning_rate.yaml": ["sft.learning_rate: Input should be a finite number (got inf)"],
    "negative_seed.yaml": ["seed: Input should be greater than or equal to 0 (got -1)"],
    "negative_max_steps.yaml": ["dpo.max_steps: Input should be greater than or equal to -1 (got -5)"],
    "bool_for_int.yaml": ["data.ift_max: expected a number, not true/false"],
    "string_for_int.yaml": ["sft.batch_size: Input should be a valid integer", "'four'"],
    "alias_bomb.yaml": ["line 6", "refused", "more than 10,000 values"],
    "recursive_alias.yaml": ["line 1", "refused", "an alias refers to a node that contains it"],
    "huge_temperature.yaml": ["prompts.temperature: Input should be less than or equal to 2 (got '1e308')"],
    "tiny_temperature.yaml": ["candidates.temperature: Input should be 0 (greedy) or at least 0.01 (got 1e-40)"],
}


def test_the_corpus_is_complete():
    """Every file of the corpus has an expected outcome here, and every expectation a file."""
    listed = ({f"seed/{n}" for n in [*SEED_ERRORS, *SEED_ACCEPTED]} | {f"eval_prompts/{n}" for n in EVAL_ERRORS}
              | {f"params/{n}" for n in PARAMS_ERRORS})
    assert {p.relative_to(HOSTILE).as_posix() for p in HOSTILE.rglob("*") if p.is_file()} == listed


def data_params(source: Path | str, eval_prompts: Path | str = SEED_EVAL, **extra) -> DataParams:
    return DataParams(source=str(source), eval_prompts=str(eval_prompts), **extra)


def check_message(error: BaseException, path: Path, fragments: list[str]) -> None:
    text = str(error)
    assert str(path) in text, text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    assert "Traceback" not in text


@pytest.mark.parametrize("name", sorted(SEED_ERRORS))
def test_bad_seed_data_fails_clearly_and_writes_nothing(name, tmp_path):
    path = HOSTILE / "seed" / name
    with pytest.raises(InputError) as info:
        run(data_params(path), tmp_path / "processed", tmp_path / "events")
    check_message(info.value, path, SEED_ERRORS[name])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(SEED_ACCEPTED))
def test_skips_are_counted_and_messy_but_valid_files_are_read(name, tmp_path):
    summary = run(data_params(HOSTILE / "seed" / name), tmp_path / "processed", tmp_path / "events")
    assert summary["dropped"] == SEED_ACCEPTED[name]
    assert summary["before_filters"]["trees"] == 3 and summary["ift_examples"] == 2


@pytest.mark.parametrize("name", sorted(EVAL_ERRORS))
def test_bad_eval_prompts_fail_clearly(name, tmp_path):
    path = HOSTILE / "eval_prompts" / name
    with pytest.raises(InputError) as info:
        read_eval_prompts(path)
    check_message(info.value, path, EVAL_ERRORS[name])
    with pytest.raises(InputError):  # through the seed stage, which reads them after the seed data
        run(data_params(HOSTILE / "seed" / "bom_crlf.jsonl", path), tmp_path / "processed", tmp_path / "events")
    assert list(tmp_path.iterdir()) == []


def test_eval_prompts_folder_without_prompt_files(tmp_path):
    (tmp_path / "notes.txt").write_text("not prompts")
    with pytest.raises(InputError, match="folder holds no .jsonl"):
        read_eval_prompts(tmp_path)


@pytest.mark.parametrize("name", sorted(PARAMS_ERRORS))
def test_bad_params_fail_naming_the_key(name):
    path = HOSTILE / "params" / name
    with pytest.raises(SrlmError) as info:
        load_params(path)
    check_message(info.value, path, PARAMS_ERRORS[name])


def test_a_yaml_alias_bomb_fails_fast_with_a_short_message():
    """Nine levels of nine aliases (615 bytes): it used to hang, then end in a raw traceback, and
    at fewer levels the error quoted the expanded value, megabytes long."""
    start = time.perf_counter()
    with pytest.raises(SrlmError) as info:
        load_params(HOSTILE / "params" / "alias_bomb.yaml")
    assert time.perf_counter() - start < 2 and len(str(info.value)) < 300


def test_params_path_that_is_a_folder(tmp_path):
    with pytest.raises(SrlmError, match="cannot read it"):
        load_params(tmp_path)


def test_explicit_empty_mapping_means_all_defaults(tmp_path):
    (tmp_path / "params.yaml").write_text("{}\n")
    assert load_params(tmp_path / "params.yaml").dpo.beta == 0.1


# --- big inputs, generated at test time -------------------------------------------------

def good_tree_records() -> list[dict]:
    return small_tree("a") + small_tree("b") + small_tree("c")


def test_a_10mb_message_is_accepted_by_design(tmp_path):
    """No size limit on a message (docs/data.md): a 10 MB reply goes to IFT and the ranked
    groups unchanged; training cuts it to sft.max_length tokens. It must not be slow."""
    records = good_tree_records()
    big = "word " * 2_000_000
    for record in records:
        if record["rank"] == 0:
            record["text"] = big
    path = write_jsonl(tmp_path / "big.jsonl", records)
    start = time.perf_counter()
    summary = run(data_params(path), tmp_path / "processed", tmp_path / "events")
    assert time.perf_counter() - start < 20
    responses = pq.read_table(tmp_path / "processed" / "ift.parquet").column("response").to_pylist()
    assert summary["ift_examples"] == 2 and all(len(r) == 10_000_000 for r in responses)


def test_a_10mb_eval_prompt_is_accepted_by_design(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"prompt": "x" * 10_000_000}])
    assert len(read_eval_prompts(path)[0].text) == 10_000_000


def test_a_10mb_broken_line_names_its_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(message("a", None, "a", role="prompter")) + "\n"
                    + '{"message_id": "b", "text": "' + "x" * 10_000_000 + "\n")
    with pytest.raises(InputError, match="line 2.*invalid JSON"):
        build(data_params(path))


def test_json_nested_too_deeply(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(InputError, match="line 1: JSON nested too deeply"):
        build(data_params(path))


def test_a_long_reply_chain_is_checked_in_linear_time(tmp_path):
    """A 20,000-message conversation: the structure check used to walk every chain to its
    root (quadratic, about a minute here); it is now linear."""
    chain = [message(f"m{i}", f"m{i - 1}" if i else None, "m0", role="assistant" if i % 2 else "prompter",
                     rank=0 if i % 2 else None) for i in range(20_000)]
    path = write_jsonl(tmp_path / "chain.jsonl", good_tree_records() + chain)
    start = time.perf_counter()
    assert build(data_params(path)).summary["before_filters"]["messages"] == 20_012
    assert time.perf_counter() - start < 10


def test_parquet_cases(tmp_path):
    records = good_tree_records()
    good = tmp_path / "good.parquet"
    pq.write_table(pa.Table.from_pylist(records), good)
    data = good.read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    no_rows = tmp_path / "no_rows.parquet"
    pq.write_table(pa.Table.from_pylist(records).slice(0, 0), no_rows)
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(pa.Table.from_pylist(records).set_column(4, "text", pa.array(range(12))), wrong)
    for path, fragment in [(cut, "not a readable Parquet file"), (empty, "not a readable Parquet file"),
                           (no_rows, "holds no messages"), (wrong, "row 1: field 'text' is int 0")]:
        with pytest.raises(InputError) as info:
            build(data_params(path))
        check_message(info.value, path, [fragment])
    assert build(data_params(good)).summary["ift_examples"] == 2


# --- through the real stage script ------------------------------------------------------

def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def seed_stage(workdir: Path, params_text: str) -> subprocess.CompletedProcess:
    (workdir / "params.yaml").write_text(params_text, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(REPO / "stages" / "seed.py"), "--out", "processed",
                           "--events", "events"], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


def data_yaml(source: Path, eval_prompts: Path = SEED_EVAL) -> str:
    return f"data:\n  source: {json.dumps(str(source))}\n  eval_prompts: {json.dumps(str(eval_prompts))}\n"


@pytest.mark.parametrize("params_text,fragments", [
    (data_yaml(HOSTILE / "seed" / "invalid_json.jsonl"), ["invalid_json.jsonl, line 6", "invalid JSON"]),
    (data_yaml(HOSTILE / "seed" / "truncated.jsonl.gz"), ["truncated.jsonl.gz", "gzip"]),
    (data_yaml(HOSTILE / "seed" / "cycle.jsonl"), ["cycle.jsonl, line 13", "cycle"]),
    (data_yaml(HOSTILE / "seed" / "bom_crlf.jsonl", HOSTILE / "eval_prompts" / "duplicate_id.jsonl"),
     ["duplicate_id.jsonl, record 2", "duplicate id"]),
    (data_yaml(HOSTILE / "seed" / "bom_crlf.jsonl") + "dpo:\n  beta: 0\n", ["params.yaml", "dpo.beta"]),
    ((HOSTILE / "params" / "duplicate_key.yaml").read_text(), ["params.yaml, line 3", "duplicate key"]),
], ids=["invalid-json", "truncated-gzip", "cycle", "eval-duplicate-id", "zero-beta", "duplicate-key"])
def test_seed_stage_script_exits_1_and_writes_nothing(tmp_path, params_text, fragments):
    result = seed_stage(tmp_path, params_text)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert not (tmp_path / "processed").exists() and not (tmp_path / "events").exists()


def test_seed_stage_script_leaves_earlier_outputs_unchanged(tmp_path):
    assert seed_stage(tmp_path, data_yaml(HOSTILE / "seed" / "bom_crlf.jsonl")).returncode == 0
    before = tree_digest(tmp_path / "processed"), tree_digest(tmp_path / "events")
    assert before[0] and before[1]
    result = seed_stage(tmp_path, data_yaml(HOSTILE / "seed" / "orphan_reply.jsonl"))
    assert result.returncode == 1 and "orphan_reply.jsonl, line 13" in result.stderr
    assert (tree_digest(tmp_path / "processed"), tree_digest(tmp_path / "events")) == before


# --- input that never ends, or ends far away: bounded reads --------------------------------

MiB = 2**20


@contextlib.contextmanager
def fifo(path: Path):
    """A FIFO at `path`. Should a reader open it after all (and block until a writer comes), a
    writer comes after 10 s, so a regression fails the test instead of hanging it."""
    os.mkfifo(path)

    def unblock():
        with contextlib.suppress(OSError):   # ENXIO: nobody is reading, as it should be
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(10, unblock)
    timer.start()
    try:
        yield path
    finally:
        timer.cancel()


def write_gzip(path: Path, chunk: bytes, times: int, head: bytes = b"") -> Path:
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(head)
        for _ in range(times):
            handle.write(chunk)
    return path


@pytest.mark.parametrize("where", ["file", "in-folder"])
def test_a_fifo_as_seed_data_is_refused_without_opening_it(tmp_path, where):
    folder = tmp_path / "export"
    folder.mkdir()
    if where == "in-folder":
        write_jsonl(folder / "good.jsonl", good_tree_records())
    with fifo(folder / "pipe.jsonl") as path:
        with pytest.raises(InputError) as info:
            build(data_params(path if where == "file" else folder))
    check_message(info.value, path, ["is a FIFO (named pipe), not a regular file"])


def test_a_fifo_as_eval_prompts_is_refused(tmp_path):
    with fifo(tmp_path / "questions.jsonl") as path:
        with pytest.raises(InputError) as info:
            read_eval_prompts(path)
    check_message(info.value, path, ["is a FIFO (named pipe), not a regular file"])


@pytest.mark.parametrize("name", ["zero.jsonl", "zero.jsonl.gz", "zero.parquet"])
def test_dev_zero_linked_as_input_is_refused(tmp_path, name):
    """It used to be read until memory ran out (MemoryError traceback)."""
    path = tmp_path / name
    path.symlink_to("/dev/zero")
    with pytest.raises(InputError) as info:
        build(data_params(path))
    check_message(info.value, path, ["is a character device, not a regular file"])
    with pytest.raises(InputError, match="character device"):
        read_eval_prompts(path)


def test_a_line_past_the_limit_fails_before_it_is_held(tmp_path):
    """The default limit (64 MiB) on a 65 MiB line inside a 0.3 MB gzip: the line is never held
    whole (a 1.5 GiB line used to end in MemoryError); a 10 MB message is well within it."""
    path = write_gzip(tmp_path / "long.jsonl.gz", b"x" * MiB, 65, head=b'{"message_id": "')
    with pytest.raises(InputError) as info:
        build(data_params(path))
    check_message(info.value, path, ["line 1", "longer than data.max_line_bytes (64 MiB)"])
    small = write_jsonl(tmp_path / "small.jsonl", good_tree_records() + [{"text": "y" * 3000}])
    with pytest.raises(InputError) as info:
        build(data_params(small, max_line_bytes=2000))
    check_message(info.value, small, ["line 13", "longer than data.max_line_bytes (2000 bytes)"])


@pytest.mark.parametrize("content", ["blank-lines", "prompts"])
def test_a_file_decompressing_past_the_limit_fails(tmp_path, content):
    """A gzip bomb: 2 GiB of blank lines used to take minutes, read line by line. Blank runs are
    now skipped at memchr speed and the total is capped (here at 16 MiB, of 64 MiB inside)."""
    line = b'{"prompt": "' + b"Write a haiku about the sea. " * 100 + b'"}\n'
    chunk = b"\n" * MiB if content == "blank-lines" else line * (MiB // len(line))
    path = write_gzip(tmp_path / "bomb.jsonl.gz", chunk, 64)
    params = data_params(path, max_decompressed_bytes=16 * MiB)
    start = time.perf_counter()
    with pytest.raises(InputError) as info:
        if content == "blank-lines":
            build(params)
        else:   # prompts with no id are numbered by line, so none is a duplicate
            read_eval_prompts(path, ReadLimits.of(params))
    assert time.perf_counter() - start < 5
    check_message(info.value, path, ["more than data.max_decompressed_bytes (16 MiB) once decompressed"])


def test_blank_lines_are_skipped_quickly_and_counted(tmp_path):
    """64 MiB of blank lines before the data: read in well under the time line-by-line took, and
    the line numbers in errors still count them."""
    records = good_tree_records()
    del records[5]["role"]
    body = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    path = write_gzip(tmp_path / "spaced.jsonl.gz", b"\n" * MiB, 64, head=b"\r\n  \n")
    with gzip.open(path, "ab") as handle:
        handle.write(body)
    start = time.perf_counter()
    with pytest.raises(InputError) as info:
        build(data_params(path))
    assert time.perf_counter() - start < 5
    check_message(info.value, path, [f"line {3 + 64 * MiB + 5}", "missing field 'role'"])


def test_parquet_past_the_limit_fails_from_its_footer(tmp_path):
    path = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pylist(good_tree_records()), path)
    with pytest.raises(InputError) as info:
        build(data_params(path, max_decompressed_bytes=1000))
    check_message(info.value, path, ["more than data.max_decompressed_bytes (1000 bytes) uncompressed"])


@pytest.mark.parametrize("command", ["stage", "cli"])
def test_a_fifo_through_the_stage_script_and_the_cli_exits_1(tmp_path, command):
    """The real entry points, each in a subprocess with a timeout: both used to hang forever."""
    with fifo(tmp_path / "pipe.jsonl") as path:
        if command == "stage":
            result = seed_stage(tmp_path, data_yaml(path))
        else:
            result = subprocess.run([sys.executable, "-c", "from srlm_core.cli import main; main()", "data", "stats",
                                     str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{path}: is a FIFO (named pipe), not a regular file" in result.stderr
