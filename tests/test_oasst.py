"""Reading OASST exports: formats agree, and every kind of bad input fails clearly."""

from __future__ import annotations

import gzip
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SEED, message, small_tree, write_jsonl

from srlm_core.errors import InputError
from srlm_core.inputs import oasst
from srlm_core.inputs.conversations import check_structure
from srlm_core.inputs.oasst import read_messages


def to_trees(records: list[dict]) -> list[dict]:
    """The nested export of flat records (one tree a line, replies nested)."""
    nodes = {r["message_id"]: dict(r, replies=[]) for r in records}
    trees = []
    for record in records:
        node = nodes[record["message_id"]]
        if record["parent_id"] is None:
            trees.append({"message_tree_id": record["message_tree_id"], "tree_state": "ready_for_export",
                          "prompt": node})
        else:
            nodes[record["parent_id"]]["replies"].append(node)
    return trees


def key(messages):
    return sorted((m.message_id, m.parent_id, m.tree_id, m.role, m.text, m.rank) for m in messages)


def test_all_formats_give_the_same_messages(tmp_path):
    records = [json.loads(line) for line in SEED.read_text(encoding="utf-8").splitlines()]
    flat = write_jsonl(tmp_path / "flat.jsonl", records)
    with gzip.open(tmp_path / "flat.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(flat.read_text(encoding="utf-8"))
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "flat.parquet")
    trees = write_jsonl(tmp_path / "trees.jsonl", to_trees(records))
    with gzip.open(tmp_path / "trees.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(trees.read_text(encoding="utf-8"))
    folder = tmp_path / "folder"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", records[:100])
    write_jsonl(folder / "b.jsonl", records[100:])

    expected = key(read_messages(flat))
    assert len(expected) == len(records)
    for name in ("flat.jsonl.gz", "flat.parquet", "trees.jsonl", "trees.jsonl.gz", "folder"):
        assert key(read_messages(tmp_path / name)) == expected, name


def fails(path, *fragments):
    with pytest.raises(InputError) as info:
        messages = read_messages(path)
        check_structure(messages, path)
    text = str(info.value)
    assert str(path) in text
    for fragment in fragments:
        assert fragment in text, text
    return text


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(message("a", None, "a", role="prompter")) + "\n{not json\n")
    fails(path, "line 2", "invalid JSON")


def test_missing_field(tmp_path):
    record = message("a", None, "a", role="prompter")
    del record["text"]
    fails(write_jsonl(tmp_path / "m.jsonl", [record]), "line 1", "missing field 'text'")


def test_wrong_type(tmp_path):
    records = small_tree("t")
    records[2]["rank"] = "first"
    fails(write_jsonl(tmp_path / "w.jsonl", records), "line 3", "field 'rank'", "expected int")


def test_unknown_role(tmp_path):
    records = small_tree("t")
    records[1]["role"] = "bot"
    fails(write_jsonl(tmp_path / "r.jsonl", records), "line 2", "role")


def test_invalid_utf8(tmp_path):
    path = tmp_path / "u.jsonl"
    good = json.dumps(message("a", None, "a", role="prompter")).encode()
    path.write_bytes(good + b"\n" + good.replace(b"text of a", b"caf\xe9") + b"\n")
    fails(path, "line 2", "invalid UTF-8")


def test_duplicate_message_id(tmp_path):
    records = small_tree("t")
    records.append(dict(records[1]))
    fails(write_jsonl(tmp_path / "d.jsonl", records), "line 5", "duplicate message_id", "line 2")


def test_reply_whose_parent_is_missing(tmp_path):
    records = small_tree("t") + [message("orphan", "nowhere", "t-root")]
    fails(write_jsonl(tmp_path / "o.jsonl", records), "line 5", "not in the data")


def test_tree_without_its_root_is_skipped_and_counted(tmp_path):
    records = small_tree("t") + [message("x1", "cut-root", "cut-root"), message("x2", "x1", "cut-root")]
    path = write_jsonl(tmp_path / "cut.jsonl", records)
    kept, skipped = check_structure(read_messages(path), path)
    assert skipped == 2 and len(kept) == 4


def test_cycle_in_parent_links(tmp_path):
    records = small_tree("t") + [message("c1", "c2", "t-root"), message("c2", "c1", "t-root")]
    fails(write_jsonl(tmp_path / "c.jsonl", records), "cycle")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    fails(path, "holds no messages")


def test_truncated_gzip(tmp_path):
    data = gzip.compress(("".join(json.dumps(r) + "\n" for r in small_tree("t") * 50)).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    fails(path, "gzip")


def test_unknown_extension_and_empty_folder(tmp_path):
    other = tmp_path / "x.csv"
    other.write_text("a,b\n")
    fails(other, "unknown file type")
    empty = tmp_path / "nothing"
    empty.mkdir()
    fails(empty, "holds no")


def test_a_large_message_is_read(tmp_path):
    records = small_tree("t")
    records[1]["text"] = "word " * 2_000_000  # 10 MB in one message
    assert len(read_messages(write_jsonl(tmp_path / "big.jsonl", records))[1].text) == 10_000_000


def test_parquet_reads_nullable_int_stored_as_double(tmp_path):
    records = small_tree("t")
    table = pa.Table.from_pylist(records).set_column(
        6, "rank", pa.array([r["rank"] for r in records], pa.float64()))
    pq.write_table(table, tmp_path / "f.parquet")
    assert [m.rank for m in read_messages(tmp_path / "f.parquet")] == [None, 0, 1, 2]


def test_folder_with_duplicate_across_files(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", small_tree("t"))
    shutil.copy(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    fails(tmp_path, "duplicate message_id", "a.jsonl")


@pytest.mark.parametrize("block", [1, 7, 4096])
def test_lines_split_across_read_blocks_read_the_same(tmp_path, monkeypatch, block):
    """The bounded reader takes the file a block at a time (1 MiB); a line, a CRLF, a BOM or a
    run of blank lines cut by a block edge reads as if whole, with the same line numbers."""
    records = small_tree("t") + small_tree("u")
    text = "\ufeff" + "\r\n\n  \n".join(json.dumps(r) for r in records) + "\r\n\n"
    path = tmp_path / "messy.jsonl"
    path.write_bytes(text.encode("utf-8"))
    expected = read_messages(path)
    monkeypatch.setattr(oasst, "BLOCK", block)
    messages = read_messages(path)
    assert key(messages) == key(expected) and len(messages) == 8
    assert [m.where for m in messages] == [f"line {1 + 3 * i}" for i in range(8)]
    records[5]["role"] = "bot"
    path.write_text("\n\n".join(json.dumps(r) for r in records), encoding="utf-8")
    fails(path, "line 11: field 'role' is 'bot'")
