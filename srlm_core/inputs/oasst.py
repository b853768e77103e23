"""Read OpenAssistant (oasst1) exports into validated, normalised messages.

Accepts the flat message export (one message a line: .jsonl, .jsonl.gz, .parquet), the
nested tree export (one tree a line: .jsonl, .jsonl.gz) and folders of such files. Both
formats of the same content give the same messages. Any bad record raises `InputError`
naming the file and line.

Reads are bounded (`ReadLimits`, from params `data.max_line_bytes` and
`data.max_decompressed_bytes`): only regular files are opened (a FIFO would block forever,
/dev/zero never ends), a line longer than the limit fails before it is held in memory, and
so does a file that decompresses past the limit (a gzip bomb). Blank lines are skipped by a
scan at C speed, so gigabytes of them cost seconds, not minutes.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import pyarrow.parquet as pq

from ..errors import InputError
from ..params import DataParams

SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
ROLES = ("prompter", "assistant")
MAX_RANK = 2**63 - 1  # stored as int64
BOM = b"\xef\xbb\xbf"
LONE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
BLOCK = 1 << 20
# A block translated through this table holds 1 where it holds a non-blank byte, so the next
# line with content is one bytes.find away: runs of blank lines are skipped at memchr speed
# (a regex search, or reading line by line, took minutes over gigabytes of them).
NON_BLANK = bytes(0 if chr(c) in " \t\r\n\v\f" else 1 for c in range(256))
NOT_REGULAR = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


@dataclass(frozen=True)
class ReadLimits:
    max_line_bytes: int
    max_decompressed_bytes: int

    @classmethod
    def of(cls, params: DataParams) -> "ReadLimits":
        return cls(params.max_line_bytes, params.max_decompressed_bytes)


DEFAULT_LIMITS = ReadLimits.of(DataParams())


def _size(n: int) -> str:
    return f"{n / 2**30:g} GiB" if n >= 2**30 else f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


def check_regular(path: Path) -> None:
    """Refuse anything but a regular file (links followed) before opening it: opening a FIFO
    blocks until a writer comes, and a device such as /dev/zero never ends."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(path, None, "not found") from None
    except OSError as exc:
        raise InputError(path, None, f"cannot read the file ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else NOT_REGULAR.get(stat.S_IFMT(mode), "a special file")
        raise InputError(path, None, f"is {kind}, not a regular file", "point it at a file on disk")


@dataclass(frozen=True)
class Message:
    message_id: str
    parent_id: str | None
    tree_id: str
    role: str
    text: str
    lang: str | None
    rank: int | None
    review_result: bool | None
    deleted: bool
    synthetic: bool
    where: str  # "file, line N" for error messages; not content


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(record: dict, name: str, kinds: tuple, path: Path, where: str, required: bool = True):
    if name not in record:
        if required:
            raise InputError(path, where, f"missing field '{name}'", "every message needs it; see oasst1's schema")
        return None
    value = record[name]
    if value is None and type(None) in kinds:
        return None
    if float in kinds and isinstance(value, float) and value.is_integer():
        value = int(value)  # Parquet writers may store a nullable int column as double
    ok = any(_is_int(value) if kind is int else isinstance(value, kind) for kind in kinds if kind is not float)
    if not ok:
        allowed = " or ".join("null" if k is type(None) else k.__name__ for k in kinds if k is not float)
        raise InputError(path, where, f"field '{name}' is {type(value).__name__} {value!r:.60}, expected {allowed}")
    return value


def _message(record: object, path: Path, where: str, tree_id: str | None = None,
             parent_id: str | None | bool = False) -> Message:
    """Validate one message record. `tree_id`/`parent_id` come from the nesting in tree files."""
    if not isinstance(record, dict):
        raise InputError(path, where, f"expected a JSON object, got {type(record).__name__}")
    message_id = _field(record, "message_id", (str,), path, where)
    if not message_id:
        raise InputError(path, where, "empty 'message_id'")
    if parent_id is False:
        parent_id = _field(record, "parent_id", (str, type(None)), path, where)
    if tree_id is None:
        tree_id = _field(record, "message_tree_id", (str,), path, where)
    role = _field(record, "role", (str,), path, where)
    if role not in ROLES:
        raise InputError(path, where, f"field 'role' is {role!r}, expected one of {', '.join(ROLES)}")
    rank = _field(record, "rank", (int, float, type(None)), path, where, required=False)
    if rank is not None and not 0 <= rank <= MAX_RANK:
        raise InputError(path, where, f"field 'rank' is {str(rank):.30}, expected 0 or more (0 = best) and below 2**63")
    return Message(
        message_id=message_id,
        parent_id=parent_id,
        tree_id=tree_id,
        role=role,
        text=_field(record, "text", (str,), path, where),
        lang=_field(record, "lang", (str, type(None)), path, where),
        rank=rank,
        review_result=_field(record, "review_result", (bool, type(None)), path, where, required=False),
        deleted=bool(_field(record, "deleted", (bool, type(None)), path, where, required=False)),
        synthetic=bool(_field(record, "synthetic", (bool, type(None)), path, where, required=False)),
        where=where,
    )


def _json_record(line: str, path: Path, number: int) -> object:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"line {number}", f"invalid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}",
                         "each line must be one complete JSON object") from None
    except RecursionError:
        raise InputError(path, f"line {number}", "JSON nested too deeply to read",
                         "each line must be one message or one message tree") from None
    if LONE_SURROGATE.search(line):
        try:  # json.loads turns an escaped lone surrogate ("\\ud800") into a str that cannot be stored
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(path, f"line {number}", "a string holds an unpaired UTF-16 surrogate escape "
                             "(\\ud800-\\udfff), which is not valid Unicode", "fix or drop that record") from None
    return record


def _blocks(handle: BinaryIO, path: Path, limits: ReadLimits) -> Iterator[bytes]:
    """The file's (decompressed) bytes in blocks, failing once they pass the limit."""
    total = 0
    while block := handle.read(BLOCK):
        total += len(block)
        if total > limits.max_decompressed_bytes:
            raise InputError(path, None, f"holds more than data.max_decompressed_bytes "
                             f"({_size(limits.max_decompressed_bytes)}) once decompressed",
                             "raise data.max_decompressed_bytes in params.yaml if the file is genuine")
        yield block


def _raw_lines(handle: BinaryIO, path: Path, limits: ReadLimits) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each line holding more than ASCII whitespace. A line is held in
    memory only up to the limit; runs of blank lines are skipped and counted (bytes.count)."""
    number, pending = 1, []   # pending: the pieces of a line that runs past the end of a block
    for block in _blocks(handle, path, limits):
        pos, mask = 0, block.translate(NON_BLANK)
        if pending:
            end = block.find(b"\n")
            if end == -1:
                pending.append(block)
                _check_length(sum(map(len, pending)), path, number, limits)
                continue
            pending.append(block[:end])
            yield number, _joined(pending, path, number, limits)
            number, pending, pos = number + 1, [], end + 1
        while (start := mask.find(1, pos)) != -1:
            number += block.count(b"\n", pos, start)
            end = block.find(b"\n", start)
            if end == -1:
                pending = [block[start:]]
                _check_length(len(pending[0]), path, number, limits)
                break
            _check_length(end - start, path, number, limits)
            yield number, block[start:end]
            number, pos = number + 1, end + 1
        else:
            number += block.count(b"\n", pos)
    if pending:
        yield number, _joined(pending, path, number, limits)


def _joined(pieces: list[bytes], path: Path, number: int, limits: ReadLimits) -> bytes:
    _check_length(sum(map(len, pieces)), path, number, limits)
    return b"".join(pieces)


def _check_length(length: int, path: Path, number: int, limits: ReadLimits) -> None:
    if length > limits.max_line_bytes:
        raise InputError(path, f"line {number}", f"longer than data.max_line_bytes ({_size(limits.max_line_bytes)})",
                         "each line is one message or one message tree; raise data.max_line_bytes in params.yaml "
                         "if the line is genuine")


def json_lines(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[tuple[int, object]]:
    """(line number, parsed object) for each non-blank line; a UTF-8 byte-order mark is skipped."""
    check_regular(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            for number, raw in _raw_lines(handle, path, limits):
                if number == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM):]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(path, f"line {number}", f"invalid UTF-8 at byte {exc.start}",
                                     "re-encode the file as UTF-8") from None
                if not line.strip():
                    continue
                yield number, _json_record(line, path, number)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(path, None, f"not a complete gzip file ({exc})", "re-download or re-compress it") from None
    except OSError as exc:  # unreadable: permissions, an I/O error
        raise InputError(path, None, f"cannot read the file ({exc.strerror or exc})") from None


def _tree_messages(tree: object, path: Path, line: int) -> Iterator[Message]:
    where = f"line {line}"
    if not isinstance(tree, dict):
        raise InputError(path, where, f"expected a JSON object, got {type(tree).__name__}")
    tree_id = _field(tree, "message_tree_id", (str,), path, where)
    root = _field(tree, "prompt", (dict,), path, where)
    stack = [(root, None, "prompt")]
    while stack:
        record, parent_id, trail = stack.pop()
        message = _message(record, path, f"{where} ({trail})", tree_id=tree_id, parent_id=parent_id)
        yield message
        replies = _field(record, "replies", (list, type(None)), path, f"{where} ({trail})", required=False) or []
        for index in reversed(range(len(replies))):
            stack.append((replies[index], message.message_id, f"{trail}.replies[{index}]"))


def _is_tree_record(record: object) -> bool:
    return isinstance(record, dict) and "prompt" in record and "role" not in record


def _parquet(path: Path, limits: ReadLimits):
    """The table, once its footer says it decompresses within the limit."""
    check_regular(path)
    try:
        meta = pq.ParquetFile(path).metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        table = pq.read_table(path) if size <= limits.max_decompressed_bytes else None
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(path, None, f"not a readable Parquet file ({exc})", "re-download or re-export it") from None
    if table is None:
        raise InputError(path, None, f"holds more than data.max_decompressed_bytes "
                         f"({_size(limits.max_decompressed_bytes)}) uncompressed ({_size(size)})",
                         "raise data.max_decompressed_bytes in params.yaml if the file is genuine")
    return table


def read_file(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[Message]:
    """Messages of one file, in file order; the format is detected from the first record."""
    if path.name.endswith(".parquet"):
        for index, record in enumerate(_parquet(path, limits).to_pylist(), start=1):
            yield _message(record, path, f"row {index}")
        return
    tree_format = None
    for number, record in json_lines(path, limits):
        if tree_format is None:
            tree_format = _is_tree_record(record)
        if isinstance(record, dict) and tree_format != _is_tree_record(record):
            raise InputError(path, f"line {number}", f"a {'flat message' if tree_format else 'message tree'} "
                             f"in a file of {'message trees' if tree_format else 'flat messages'} (format "
                             "detected from the first record)", "keep one format per file")
        if tree_format:
            yield from _tree_messages(record, path, number)
        else:
            yield _message(record, path, f"line {number}")


def source_files(source: Path | str) -> list[Path]:
    """The input files of `data.source`: the file itself, or every file with a known suffix under
    the folder (anything not a regular file among them is refused when read, not skipped)."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.name.endswith(SUFFIXES) and not p.is_dir())
        if not files:
            raise InputError(source, None, f"folder holds no {', '.join(SUFFIXES)} files")
        return files
    if not source.exists():
        raise InputError(source, None, "not found", "set data.source in params.yaml to an existing file or folder")
    if not source.name.endswith(SUFFIXES):
        raise InputError(source, None, f"unknown file type; expected one of {', '.join(SUFFIXES)}")
    return [source]


def read_messages(source: Path | str, limits: ReadLimits = DEFAULT_LIMITS) -> list[Message]:
    """All messages of a file or folder, checked for duplicates; never empty."""
    messages: list[Message] = []
    seen: dict[str, str] = {}
    for path in source_files(source):
        count = 0
        for message in read_file(path, limits):
            count += 1
            if message.message_id in seen:
                raise InputError(path, message.where, f"duplicate message_id {message.message_id!r} "
                                 f"(first seen at {seen[message.message_id]})", "keep one copy of each message")
            seen[message.message_id] = f"{path}, {message.where}"
            messages.append(message)
        if count == 0:
            raise InputError(path, None, "file holds no messages", "point data.source at a non-empty export")
    return messages
