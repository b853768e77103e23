"""The meta-judge (Meta-Rewarding, Wu et al. 2024): the model compares two of its own judgements of one response.

The template (`meta.template`) shows the rubric (the judge template's text before the line holding
{prompt}), the question and the response as the judge read them, and two judgements, each as a judge
is trained to write it (its justification closed by `Score: N`). The model writes a short reason;
generation stops at `Better judgement:`, which is forced when the reason runs out without it, and the
verdict is read from the next-token probabilities of ` A` and ` B`, renormalised: p_first = P(A). So
every comparison has a verdict whatever the model writes, as the judge's probability method always
has a score. The text before the first per-comparison placeholder (instructions and rubric) is the
same for every comparison, so the engine encodes it once: `Generator.judge_batch`, whose expected
"digit" over the two verdict tokens (A = 0, B = 1) is P(B).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..engine.backend import Sampling, chunks, progress
from ..engine.prompts import chat_wrapper, fill, read_template
from ..errors import SrlmError
from ..hashing import sha256_bytes
from ..journal import Journal

STOP = "Better judgement:"
VERDICTS = (" A", " B")
SHARED = "rubric"
PER_COMPARISON = ("prompt", "response", "judgement_a", "judgement_b")


def rubric(judge_template: str) -> str:
    """The rubric part of a judge template: its text before the line that holds {prompt}."""
    line_start = judge_template.rfind("\n", 0, judge_template.index("{prompt}"))
    text = judge_template[:max(line_start, 0)].strip()
    if not text:
        raise SrlmError("the judge template has no rubric before the line holding {prompt}, so the meta-judge "
                        "has nothing to check judgements against")
    return text


@dataclass(frozen=True)
class MetaTemplate:
    text: str
    hash: str
    path: str

    @classmethod
    def load(cls, path: str) -> "MetaTemplate":
        data = read_template(path, "meta-judge template", "meta.template")
        text = data.decode("utf-8")
        for name in (SHARED, *PER_COMPARISON):
            if text.count("{" + name + "}") != 1:
                raise SrlmError(f"{path}: the meta-judge template must hold the {{{name}}} placeholder exactly once "
                                f"(it holds it {text.count('{' + name + '}')} times)")
        return cls(text, sha256_bytes(data), path)

    def cut(self) -> int:
        """Where the per-comparison part starts: before the first such placeholder and the spaces before it
        (moved into the suffix, so that prefix + suffix tokenizes as the whole prompt does)."""
        cut = min(self.text.index("{" + name + "}") for name in PER_COMPARISON)
        while cut > 0 and self.text[cut - 1] in " \t":
            cut -= 1
        return cut

    def fill(self, rubric_text: str, prompt: str, response: str, judgement_a: str, judgement_b: str) -> str:
        return fill(self.text, {SHARED: rubric_text, "prompt": prompt, "response": response,
                                "judgement_a": judgement_a, "judgement_b": judgement_b})


@dataclass(frozen=True)
class Comparison:
    """What one meta-judgement shows: the question and response as the judge read them, two judgement texts."""
    prompt: str
    response: str
    first: str    # shown as Judgement A
    second: str   # shown as Judgement B


@dataclass(frozen=True)
class Verdict:
    raw_output: str   # the reason written before the verdict
    p_first: float    # P(A) / (P(A) + P(B))


def verdict_tail(text: str) -> str:
    """What is forced after the reason before the verdict token is read: nothing when it ends `Better judgement:`."""
    return "" if text.rstrip().endswith(STOP) else f"\n{STOP}"


class MetaJudge:
    def __init__(self, generator, template: MetaTemplate, rubric_text: str, sampling: Sampling):
        self.gen, self.tok, self.template = generator, generator.tokenizer, template
        self.rubric, self.sampling = rubric_text, sampling
        self.verdicts = [self._single_token(v) for v in VERDICTS]
        head, self.chat_tail = chat_wrapper(self.tok)
        self.cut = template.cut()
        self.prefix_ids = self._encode(head + fill(template.text[:self.cut], {SHARED: rubric_text}))

    def _encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False).input_ids

    def _single_token(self, text: str) -> int:
        ids = self._encode(text)
        if len(ids) != 1:
            raise SrlmError(f"the meta-judge reads its verdict as one token, and '{text}' is {len(ids)} tokens in "
                            "this tokenizer")
        return ids[0]

    def _suffix(self, c: Comparison) -> str:
        return fill(self.template.text[self.cut:], {SHARED: self.rubric, "prompt": c.prompt, "response": c.response,
                                                    "judgement_a": c.first, "judgement_b": c.second}) + self.chat_tail

    def prompt_text(self, c: Comparison) -> str:
        """The whole meta-judge prompt (chat-formatted), as the model sees it."""
        head, _ = chat_wrapper(self.tok)
        return head + fill(self.template.text[:self.cut], {SHARED: self.rubric}) + self._suffix(c)

    def suffix_ids(self, c: Comparison) -> list[int]:
        return self._encode(self._suffix(c))

    def compare(self, items: Sequence[Comparison], *, seed: int, batch_size: int, label: str = "meta-judging",
                journal: Journal | None = None) -> list[Verdict]:
        """One verdict per comparison. Batch b is seeded with seed + b; a batch found in `journal` is not redone."""
        suffixes = [self.suffix_ids(c) for c in items]
        out: list[Verdict] = []
        with progress(label) as bar:
            task = bar.add_task(label, total=len(items), rate="")
            for index, batch in chunks(suffixes, batch_size):
                def compute(index=index, batch=batch) -> list[Verdict]:
                    return self._batch(batch, seed + index)

                if journal is None:
                    out += compute()
                else:
                    out += journal.chunk(index, compute, lambda new: [[v.raw_output, v.p_first] for v in new],
                                         lambda done: [Verdict(*v) for v in done])
                bar.update(task, completed=len(out))
        if journal:
            journal.report(len(range(0, len(items), batch_size)))
        return out

    def _batch(self, suffixes: Sequence[list[int]], seed: int) -> list[Verdict]:
        rows = self.gen.judge_batch(self.prefix_ids, suffixes, n=1, sampling=self.sampling, seed=seed,
                                    stop_strings=[STOP], score_tail=verdict_tail, digits=self.verdicts)
        # the expected "digit" over (A, B) is P(B)
        return [Verdict(text, round(1.0 - p_second, 6)) for ((text, p_second),) in rows]
