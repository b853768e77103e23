"""Verifiable instructions in the style of IFEval: one small check per constraint kind.

Each check takes the answer and the instruction's arguments and says whether the answer
follows it. `KINDS` names every kind with the arguments it takes, so the prompt file's
loader (srlm_core/inputs/instruction_prompts.py) can refuse an unknown kind or a missing
argument before any model runs. An answer with no word in it follows no instruction: an
empty reply must not pass "at most 50 words" or "do not say X" (IFEval would count both).
Definitions are in docs/metrics.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable

WORD = re.compile(r"\w+(?:['’]\w+)*")
# A sentence ends at . ! or ? (a run of them, closing quotes or brackets allowed after) followed by
# whitespace or the end of the text.
SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")
# "1. " or "2) " opening a line numbers a list item: not a sentence of its own.
LIST_NUMBER = re.compile(r"^([ \t]*)\d+[.)](?=\s)", re.MULTILINE)
# markdown "* item" or "- item" on one line; "**bold**" and a rule ("* * *", "- - -") are not one
BULLET = re.compile(r"^[ \t]*[*-][ \t]+(?![*\- \t]*$)\S", re.MULTILINE)
TITLE = re.compile(r"<<[^<>\n]*\w[^<>\n]*>>")
JSON_FENCE = re.compile(r"^```(?:json|JSON)?\s*\n(.*)\n\s*```$", re.DOTALL)
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def words(text: str) -> list[str]:
    return WORD.findall(text)


def sentences(text: str) -> list[str]:
    return [s for s in SENTENCE_END.split(LIST_NUMBER.sub(r"\1", text)) if WORD.search(s)]


def _mentions(text: str, keyword: str) -> bool:
    """The keyword as a whole word or phrase, any case: "cat" is not found in "category"."""
    return re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", text, re.IGNORECASE) is not None


def word_count_min(text: str, min: int) -> bool:
    return len(words(text)) >= min


def word_count_max(text: str, max: int) -> bool:
    return len(words(text)) <= max


def sentence_count_min(text: str, min: int) -> bool:
    return len(sentences(text)) >= min


def sentence_count_max(text: str, max: int) -> bool:
    return len(sentences(text)) <= max


def keyword_required(text: str, keyword: str) -> bool:
    return _mentions(text, keyword)


def keyword_forbidden(text: str, keyword: str) -> bool:
    return not _mentions(text, keyword)


def all_lowercase(text: str) -> bool:
    return text == text.lower()


def all_uppercase(text: str) -> bool:
    return text == text.upper()


def no_commas(text: str) -> bool:
    return "," not in text


def bullet_count(text: str, count: int) -> bool:
    return len(BULLET.findall(text)) == count


def paragraph_count(text: str, count: int) -> bool:
    """Blank-line separated blocks; a block that is only a <<title>> heads the text, it is not a paragraph."""
    blocks = [p.strip() for p in PARAGRAPH_BREAK.split(text.strip())]
    return len([p for p in blocks if p and not TITLE.fullmatch(p)]) == count


def json_output(text: str) -> bool:
    """The whole answer is one JSON object or array, bare or in a ```json fence."""
    body = text.strip()
    fenced = JSON_FENCE.match(body)
    try:
        value = json.loads(fenced.group(1) if fenced else body)
    except (ValueError, RecursionError):   # not JSON; or nested deeper than the parser recurses
        return False
    return isinstance(value, (dict, list))


def title(text: str) -> bool:
    return TITLE.search(text) is not None


def ending_phrase(text: str, phrase: str) -> bool:
    return text.rstrip().endswith(phrase)


@dataclass(frozen=True)
class Kind:
    check: Callable[..., bool]
    args: dict[str, type]   # argument name -> int (a count, > 0) or str (non-empty)
    describes: str          # for the docs and error messages


KINDS: dict[str, Kind] = {
    "word_count_min": Kind(word_count_min, {"min": int}, "at least `min` words"),
    "word_count_max": Kind(word_count_max, {"max": int}, "at most `max` words"),
    "sentence_count_min": Kind(sentence_count_min, {"min": int}, "at least `min` sentences"),
    "sentence_count_max": Kind(sentence_count_max, {"max": int}, "at most `max` sentences"),
    "keyword_required": Kind(keyword_required, {"keyword": str}, "`keyword` appears (whole word, any case)"),
    "keyword_forbidden": Kind(keyword_forbidden, {"keyword": str}, "`keyword` does not appear (whole word, any case)"),
    "all_lowercase": Kind(all_lowercase, {}, "no capital letter"),
    "all_uppercase": Kind(all_uppercase, {}, "no small letter"),
    "no_commas": Kind(no_commas, {}, "no comma"),
    "bullet_count": Kind(bullet_count, {"count": int}, "exactly `count` markdown bullets (`* ` or `- ` lines)"),
    "paragraph_count": Kind(paragraph_count, {"count": int}, "exactly `count` paragraphs (blank-line separated; a <<title>> block is not one)"),
    "json_output": Kind(json_output, {}, "the whole answer is a JSON object or array (a ```json fence allowed)"),
    "title": Kind(title, {}, "a title in double angular brackets, <<like this>>"),
    "ending_phrase": Kind(ending_phrase, {"phrase": str}, "the answer ends with exactly `phrase`"),
}


def arg_problem(kind: str, args: object) -> str | None:
    """Why `args` do not fit instruction `kind` (None when they do)."""
    if kind not in KINDS:
        return f"unknown instruction kind {kind!r} (known: {', '.join(KINDS)})"
    if not isinstance(args, dict):
        return f"{kind}: 'args' must be an object, got {type(args).__name__}"
    wanted = KINDS[kind].args
    if set(args) != set(wanted):
        return f"{kind} takes args {sorted(wanted) or 'none'}, got {sorted(args) or 'none'}"
    for name, kind_type in wanted.items():
        value = args[name]
        if kind_type is int and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            return f"{kind}: '{name}' must be a whole number above 0, got {value!r}"
        if kind_type is str and (not isinstance(value, str) or not value.strip()):
            return f"{kind}: '{name}' must be a non-empty string, got {value!r}"
    return None


def follows(text: str, kind: str, args: dict) -> bool:
    """Whether `text` follows one instruction (checked with `arg_problem` when the prompts were read)."""
    return bool(words(text)) and KINDS[kind].check(text, **args)
