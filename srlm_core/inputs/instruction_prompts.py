"""Prompts with verifiable instructions (evaluation.instructions.prompts), validated on load.

One JSON object a line:
    {"id": "ifv-01", "prompt": "<the full text the model sees>",
     "instructions": [{"kind": "word_count_max", "args": {"max": 50}}, ...]}
Kinds and their arguments are those of srlm_core/reporting/instructions.py. A bad record
fails the whole file with its line number and the fix, before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..reporting.instructions import arg_problem
from .oasst import DEFAULT_LIMITS, ReadLimits, json_lines

FIELDS = {"id", "prompt", "instructions"}


@dataclass(frozen=True)
class Instruction:
    kind: str
    args: dict


@dataclass(frozen=True)
class InstructionPrompt:
    id: str
    text: str
    instructions: tuple[Instruction, ...]


def _instruction(item: object, path: Path, where: str) -> Instruction:
    if not isinstance(item, dict) or set(item) - {"kind", "args"} or not isinstance(item.get("kind"), str):
        raise InputError(path, where, f"each instruction must be {{\"kind\": str, \"args\": {{...}}}}, got {item!r}",
                         'e.g. {"kind": "word_count_max", "args": {"max": 50}}')
    args = item.get("args", {})
    problem = arg_problem(item["kind"], args)
    if problem:
        raise InputError(path, where, problem, "see the kinds in docs/metrics.md")
    return Instruction(item["kind"], dict(args))


def parse_record(record: object, path: Path, number: int) -> InstructionPrompt:
    where = f"line {number}"
    if not isinstance(record, dict):
        raise InputError(path, where, f"expected a JSON object, got {type(record).__name__}")
    if set(record) != FIELDS:
        missing, extra = sorted(FIELDS - set(record)), sorted(set(record) - FIELDS)
        raise InputError(path, where, f"fields must be id, prompt, instructions (missing {missing or 'none'}, "
                         f"unknown {extra or 'none'})")
    if not isinstance(record["id"], str) or not record["id"].strip():
        raise InputError(path, where, "'id' must be a non-empty string", "give every prompt an id such as ifv-01")
    if not isinstance(record["prompt"], str) or not record["prompt"].strip():
        raise InputError(path, where, "'prompt' must be a non-empty string", "write the text the model sees")
    items = record["instructions"]
    if not isinstance(items, list) or not items:
        raise InputError(path, where, "'instructions' must be a non-empty list",
                         "give each prompt at least one checkable instruction")
    instructions = tuple(_instruction(item, path, f"{where}, instruction {i + 1}") for i, item in enumerate(items))
    return InstructionPrompt(record["id"], record["prompt"], instructions)


def read_instruction_prompts(path: Path | str, limits: ReadLimits = DEFAULT_LIMITS) -> list[InstructionPrompt]:
    path = Path(path)
    prompts = [parse_record(record, path, number) for number, record in json_lines(path, limits)]
    if not prompts:
        raise InputError(path, None, "file holds no prompts",
                         "add one JSON object with id, prompt and instructions a line")
    seen: set[str] = set()
    for index, prompt in enumerate(prompts):
        if prompt.id in seen:
            raise InputError(path, f"record {index + 1}", f"duplicate id {prompt.id!r}", "give every prompt its own id")
        seen.add(prompt.id)
    return prompts
