"""Prompt templates (judge, evaluator): reading one, and filling its `{name}` placeholders.

Filling is one pass over the template, so a value that contains placeholder text (a
self-written question holding `{response}`, an answer holding `{prompt}`) stays literal
and every placeholder of the template receives its own value.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Mapping

from ..errors import SrlmError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]   # the repository root: params name srlm_core/templates/...


def read_template(path: str, what: str, param: str) -> bytes:
    """A prompt template's bytes: the path as given, else relative to the package (the shipped ones)."""
    file = Path(path)
    if not file.is_absolute() and not file.exists():
        file = PACKAGE_ROOT / path
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise SrlmError(f"{path}: {what} not found (params.yaml {param})") from None


def fill(text: str, values: Mapping[str, str]) -> str:
    """`text` with every `{name}` of `values` replaced by its value, in one pass."""
    pattern = re.compile("|".join(re.escape("{" + name + "}") for name in values))
    return pattern.sub(lambda match: values[match.group(0)[1:-1]], text)


@functools.lru_cache(maxsize=8)
def chat_wrapper(tokenizer) -> tuple[str, str]:
    """The chat template's text before and after a single user message (rendered once per tokenizer)."""
    marker = "\x00srlm\x00"
    text = tokenizer.apply_chat_template([{"role": "user", "content": marker}], tokenize=False,
                                         add_generation_prompt=True)
    head, tail = text.split(marker)
    return head, tail


def chat_prompt_ids(tokenizer, content: str) -> list[int]:
    head, tail = chat_wrapper(tokenizer)
    return tokenizer(head + content + tail, add_special_tokens=False).input_ids


def clip(tokenizer, text: str, max_tokens: int) -> str:
    ids = tokenizer(text, add_special_tokens=False).input_ids
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])
