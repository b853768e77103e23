"""LLM-as-a-Judge with the additive 5-point prompt: the template, the judge prompts, the scores.

The template's text before the first placeholder (the rubric) is the same for every
candidate, so the generator may encode it once for all of them (`Generator.judge_batch`).
Two scoring methods:
  text         the paper's: parse the last `Score: N` of the generated text (N in 0-5),
               NULL when there is none;
  probability  generation stops at `Score:`, then `Score: ` is forced and the score is the
               expected value of the model's next-token probabilities over the digits 0-5
               (renormalised), so a small model always yields a number.
Only generated text is parsed, never the prompt, which contains the candidate.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Sequence

from ..engine.backend import Sampling, chunks, judge_batch_generic, progress
from ..engine.prompts import chat_wrapper, clip, fill, read_template
from ..errors import SrlmError
from ..hashing import sha256_bytes
from ..journal import Journal
from . import injection

SCORE = re.compile(r"Score:\s*(-?\d+(?:\.\d+)?)")
STOP = "Score:"


def parse_score(generated: str) -> float | None:
    """The last `Score: N` in the judge's own output, if N is a whole number from 0 to 5."""
    found = SCORE.findall(generated)
    if not found:
        return None
    value = float(found[-1])
    return value if value.is_integer() and 0 <= value <= 5 else None


def points(justification: str, score: float | None) -> int | None:
    """The whole-point score a judgement's training target states (EFT examples, judge pairs): the judge's
    own closing `Score: N` where the justification has one (text method), else `score` rounded. None:
    unscored."""
    stated = parse_score(justification.rstrip())
    if stated is not None:
        return int(stated)
    return None if score is None else int(round(score))


def target(justification: str, score: float | None) -> str:
    """The judge's own justification, closed by `Score: N`, N = points(justification, score): the text a
    judge is trained to write."""
    text = justification.rstrip()
    if parse_score(text) is not None:   # text method: the model already closed with Score: N
        return text[:list(SCORE.finditer(text))[-1].end()]
    label = points(text, score)
    if text.endswith(STOP):
        return f"{text} {label}"
    return f"{text}\nScore: {label}" if text else f"Score: {label}"


@dataclass(frozen=True)
class Template:
    text: str
    hash: str
    path: str

    @classmethod
    def load(cls, path: str) -> "Template":
        data = read_template(path, "judge template", "judge.template")
        text = data.decode("utf-8")
        for field in ("{prompt}", "{response}"):
            if text.count(field) != 1:
                raise SrlmError(f"{path}: the judge template must hold the {field} placeholder exactly once "
                                f"(it holds it {text.count(field)} times)")
        if text.index("{prompt}") > text.index("{response}"):
            raise SrlmError(f"{path}: {{prompt}} must come before {{response}} so the rubric can be shared")
        return cls(text, sha256_bytes(data), path)

    def fill(self, prompt: str, response: str) -> str:
        return fill(self.text, {"prompt": prompt, "response": response})

    def split(self, tokenizer, prompt: str, response: str) -> tuple[str, str]:
        """(shared prefix, per-candidate suffix) of the chat-formatted judge prompt.

        The cut is just before the first placeholder, with the whitespace before it moved
        into the suffix, so that prefix + suffix tokenizes as the whole prompt does.
        """
        head, tail = chat_wrapper(tokenizer)
        cut = self.text.index("{prompt}")
        while cut > 0 and self.text[cut - 1] in " \t":
            cut -= 1
        shared = self.text[:cut]
        rest = fill(self.text[cut:], {"prompt": prompt, "response": response})
        return head + shared, rest + tail


@dataclass(frozen=True)
class Judgement:
    raw_output: str
    score: float | None


class Judge:
    """Judges with any Generator: builds each judge prompt (the rubric, shared by every candidate,
    then the candidate's part), asks the generator to judge batches of them (`judge_batch`: the
    transformers engine encodes the rubric once and reads the digit probabilities from its own
    generation cache; vLLM's prefix caching shares the rubric), and parses the scores. `fast`
    off sends every sample the whole prompt through `sample` (the reference the fast path is
    tested against)."""

    def __init__(self, generator, template: Template, *, method: str, samples: int, sampling: Sampling,
                 max_prompt_tokens: int, max_response_tokens: int, injection: str = "neutralise", fast: bool = True):
        self.gen, self.tok, self.template = generator, generator.tokenizer, template
        self.neutralise = injection == "neutralise"
        self.fast = fast
        self.stops = ([STOP] if method == "probability" else [f"{STOP} {d}" for d in range(6)]) if fast else []
        self.method, self.samples, self.sampling = method, samples, sampling
        self.max_prompt_tokens, self.max_response_tokens = max_prompt_tokens, max_response_tokens
        self.digits = [self._single_token(str(d)) for d in range(6)]
        prefix, _ = template.split(self.tok, "", "")
        self.prefix_ids = self._encode(prefix)

    def _encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False).input_ids

    def _single_token(self, text: str) -> int:
        ids = self._encode(text)
        if len(ids) != 1:
            raise SrlmError(f"judge.method probability needs '{text}' to be one token in this tokenizer "
                            f"(it is {len(ids)}); use judge.method: text")
        return ids[0]

    def seen_response(self, response: str) -> str:
        """The response as the judge reads it: without judge-directed sentences (judge.injection:
        neutralise), cut to max_response_tokens."""
        if self.neutralise:
            response = injection.neutralise(response)[0]
        return clip(self.tok, response, self.max_response_tokens)

    def seen_prompt(self, prompt: str) -> str:
        """The question as the judge reads it: cut to max_prompt_tokens."""
        return clip(self.tok, prompt, self.max_prompt_tokens)

    def _parts(self, prompt: str, response: str) -> tuple[str, str]:
        return self.template.split(self.tok, self.seen_prompt(prompt), self.seen_response(response))

    def guard_columns(self, response: str) -> dict:
        """The judgement row's record of judge-directed text in `response`: how many sentences
        held it, and whether they were cut before judging."""
        found = len(injection.spans(response))
        return {"injection_spans": found, "neutralised": self.neutralise and found > 0}

    def user_message(self, prompt: str, response: str) -> str:
        """The judge prompt's user message (the filled template, before chat formatting): EFT trains on it."""
        return self.template.fill(self.seen_prompt(prompt), self.seen_response(response))

    def prompt_text(self, prompt: str, response: str) -> str:
        """The full judge prompt (chat-formatted), as the model sees it."""
        return "".join(self._parts(prompt, response))

    def suffix_ids(self, prompt: str, response: str) -> list[int]:
        return self._encode(self._parts(prompt, response)[1])

    def judge(self, items: Sequence[tuple[str, str]], *, seed: int, batch_size: int, label: str = "judging",
              journal: Journal | None = None) -> list[list[Judgement]]:
        """`samples` judgements for each (prompt, response). Batch b is seeded with seed + b; a batch
        found in `journal` is not judged again."""
        suffixes = [self.suffix_ids(p, r) for p, r in items]
        out: list[list[Judgement]] = []
        with progress(label) as bar:
            task = bar.add_task(label, total=len(items), rate="")
            for index, batch in chunks(suffixes, batch_size):
                def judge(index=index, batch=batch) -> list[list[Judgement]]:
                    return self._judge_batch(batch, seed + index)

                if journal is None:
                    out += judge()
                else:
                    out += journal.chunk(index, judge, lambda new: [[[j.raw_output, j.score] for j in r] for r in new],
                                         lambda done: [[Judgement(*j) for j in r] for r in done])
                bar.update(task, completed=len(out),
                           rate=f"{len(out) / max(bar.tasks[task].elapsed or 1e-9, 1e-9):.2f} candidates/s")
        if journal:
            journal.report(len(range(0, len(items), batch_size)))
        return out

    def _judge_batch(self, suffixes: Sequence[list[int]], seed: int) -> list[list[Judgement]]:
        judge_batch = self.gen.judge_batch if self.fast else functools.partial(judge_batch_generic, self.gen)
        rows = judge_batch(self.prefix_ids, suffixes, n=self.samples, sampling=self.sampling, seed=seed,
                           stop_strings=self.stops, digits=self.digits,
                           score_tail=None if self.method == "text" else score_tail)
        if self.method == "text":
            return [[Judgement(t, parse_score(t)) for t, _ in row] for row in rows]
        return [[Judgement(t, score) for t, score in row] for row in rows]


def score_tail(text: str) -> str:
    """What is forced after a justification before the digit is read: `Score: ` completed, or added."""
    return " " if text.rstrip().endswith(STOP) else "\nScore: "
