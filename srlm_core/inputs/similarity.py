"""ROUGE-L F1 between two short texts, on lower-cased word tokens.

Hand-written because the reference package (rouge-score) pulls in nltk and absl for a
dynamic programme of ten lines; the definition is the standard one (Lin, 2004).
"""

from __future__ import annotations

import re

WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(a: str, b: str) -> float:
    wa, wb = words(a), words(b)
    if not wa or not wb:
        return 0.0
    lcs = lcs_length(wa, wb)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(wa), lcs / len(wb)
    return 2 * precision * recall / (precision + recall)


def most_similar(text: str, others: list[str]) -> tuple[float, str | None]:
    """(best ROUGE-L F1, the text achieving it) over `others`."""
    best, match = 0.0, None
    for other in others:
        score = rouge_l(text, other)
        if score > best:
            best, match = score, other
    return best, match
