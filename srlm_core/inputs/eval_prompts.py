"""Held-out evaluation prompts from MT-Bench, Arena-Hard or plain JSONL files.

Accepted per line: MT-Bench (`question_id`, `turns: [str, ...]`, first turn taken),
Arena-Hard (`uid`, `prompt`, or `turns: [{"content": ...}]`), or any object with a
`prompt` string (id from `prompt_id`/`id`, else the line number). A folder is read file by
file (`*.jsonl`, `*.jsonl.gz`, by name), e.g. MT-Bench and Arena-Hard together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .oasst import DEFAULT_LIMITS, ReadLimits, json_lines

SUFFIXES = (".jsonl", ".jsonl.gz")
ID_KEYS = ("question_id", "uid", "prompt_id", "id")


@dataclass(frozen=True)
class EvalPrompt:
    origin_id: str
    text: str


def _first_turn(turns: object, path: Path, where: str) -> str:
    if not isinstance(turns, list) or not turns:
        raise InputError(path, where, "'turns' must be a non-empty list")
    first = turns[0]
    if isinstance(first, dict):
        first = first.get("content")
    if not isinstance(first, str):
        raise InputError(path, where, "the first turn must be a string or an object with a 'content' string")
    return first


def parse_record(record: object, path: Path, number: int) -> EvalPrompt:
    where = f"line {number}"
    if not isinstance(record, dict):
        raise InputError(path, where, f"expected a JSON object, got {type(record).__name__}")
    if "turns" in record:
        text = _first_turn(record["turns"], path, where)
    elif isinstance(record.get("prompt"), str):
        text = record["prompt"]
    elif record.get("prompt") is not None:
        raise InputError(path, where, f"no prompt found: field 'prompt' is {type(record['prompt']).__name__}, "
                         "expected a string")
    else:
        raise InputError(path, where, "no prompt found", "give a 'prompt' string or a 'turns' list")
    if not text.strip():
        raise InputError(path, where, "the prompt is empty", "write the prompt's text, or drop the line")
    origin = next((record[k] for k in ID_KEYS if k in record and record[k] is not None), f"line-{number}")
    return EvalPrompt(str(origin), text)


def eval_prompt_files(path: Path | str) -> list[Path]:
    """The file itself, or the folder's JSONL files by name."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith(SUFFIXES) and not p.is_dir())
        if not files:
            raise InputError(path, None, f"folder holds no {' or '.join(SUFFIXES)} files",
                             "point data.eval_prompts at a JSONL file or a folder of them")
        return files
    if not path.exists():
        raise InputError(path, None, "not found", "set data.eval_prompts in params.yaml to a JSONL file or folder")
    return [path]


def read_eval_prompts(path: Path | str, limits: ReadLimits = DEFAULT_LIMITS) -> list[EvalPrompt]:
    prompts: list[EvalPrompt] = []
    seen: dict[str, Path] = {}
    for file in eval_prompt_files(path):
        records = [parse_record(record, file, number) for number, record in json_lines(file, limits)]
        if not records:
            raise InputError(file, None, "file holds no prompts", "add one JSON object with a 'prompt' a line")
        for index, prompt in enumerate(records):
            if prompt.origin_id in seen:
                where = "" if seen[prompt.origin_id] == file else f" (also in {seen[prompt.origin_id]})"
                raise InputError(file, f"record {index + 1}", f"duplicate id {prompt.origin_id!r}{where}",
                                 "give every prompt its own id")
            seen[prompt.origin_id] = file
        prompts += records
    return prompts
