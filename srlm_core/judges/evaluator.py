"""The fixed evaluator of head-to-head games: which of two answers to one prompt is better.

local     a checkpoint under models/ (default M0, never trained) reads its verdict from the
          next-token probabilities after the forced opening `[[` of its reply: A when
          P(A) > P(B), B when lower, none when equal. Deterministic, no sampling.
endpoint  any OpenAI-compatible chat-completions server at temperature 0; the verdict is
          the last `[[A]]` or `[[B]]` of the reply, none when there is neither. Requests run
          `concurrency` at a time, each with `timeout_s` and up to `attempts` tries.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..engine.backend import Generator, chunks, open_generator, progress
from ..engine.http import headers, request_json
from ..engine.prompts import chat_prompt_ids, clip, fill, read_template
from ..errors import SrlmError
from ..hashing import sha256_bytes
from ..journal import Journal
from ..params import EvaluatorParams, GenerationParams

VERDICT = re.compile(r"\[\[([AB])\]\]")
PLACEHOLDERS = ("{prompt}", "{response_a}", "{response_b}")


@dataclass(frozen=True)
class PairwiseTemplate:
    text: str
    hash: str

    @classmethod
    def load(cls, path: str) -> "PairwiseTemplate":
        data = read_template(path, "evaluator template", "evaluation.evaluator.template")
        text = data.decode("utf-8")
        missing = [p for p in PLACEHOLDERS if p not in text]
        if missing:
            raise SrlmError(f"{path}: the evaluator template lacks {', '.join(missing)}; add them")
        return cls(text, sha256_bytes(data))

    def fill(self, prompt: str, response_a: str, response_b: str) -> str:
        return fill(self.text, {"prompt": prompt, "response_a": response_a, "response_b": response_b})


def parse_verdict(text: str) -> str | None:
    found = VERDICT.findall(text)
    return found[-1] if found else None


@dataclass(frozen=True)
class Verdict:
    raw: str
    choice: str | None   # "A", "B", or None when no verdict could be read
    p_a: float | None = None   # local evaluator: P(A) / (P(A) + P(B))


class LocalEvaluator:
    """A model under models/, through the generation interface (so `generation.backend`, `dtype`
    and `deterministic` apply to it as to every stage)."""

    def __init__(self, generator: Generator, name: str, cfg: EvaluatorParams, template: PairwiseTemplate):
        self.gen, self.tok, self.hash = generator, generator.tokenizer, generator.model_hash
        self.name, self.cfg, self.template = f"local:{name}", cfg, template
        self.choices = [self._single_token(c) for c in ("A", "B")]
        self.opening = self.tok("[[", add_special_tokens=False).input_ids

    def _single_token(self, text: str) -> int:
        ids = self.tok(text, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise SrlmError(f"the local evaluator needs '{text}' to be one token in its tokenizer; "
                            "use evaluation.evaluator.kind: endpoint")
        return ids[0]

    def _ids(self, prompt: str, a: str, b: str) -> list[int]:
        cut = lambda text, n: clip(self.tok, text, n)  # noqa: E731
        text = self.template.fill(cut(prompt, self.cfg.max_prompt_tokens), cut(a, self.cfg.max_response_tokens),
                                  cut(b, self.cfg.max_response_tokens))
        return chat_prompt_ids(self.tok, text) + self.opening

    def compare(self, items: Sequence[tuple[str, str, str]], label: str = "evaluating",
                journal: Journal | None = None) -> list[Verdict]:
        return compare_in_chunks(self._verdicts, [self._ids(*item) for item in items], self.cfg.batch_size,
                                 label, journal)

    def _verdicts(self, batch: Sequence[list[int]]) -> list[Verdict]:
        out = []
        for p_a, p_b in self.gen.choice_probs(batch, self.choices):
            choice = "A" if p_a > p_b else "B" if p_b > p_a else None
            out.append(Verdict(f"P(A)={p_a:.6f} P(B)={p_b:.6f}", choice, round(p_a, 6)))
        return out


class EndpointEvaluator:
    def __init__(self, cfg: EvaluatorParams, template: PairwiseTemplate, seed: int):
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise SrlmError(f"evaluation.evaluator: the API key variable {cfg.api_key_env} is not set; export it "
                            "(any value for a server without authentication)")
        self.url = f"{cfg.base_url.rstrip('/')}/chat/completions"
        self.headers = headers(key)
        self.cfg, self.template, self.seed = cfg, template, seed
        self.name = f"endpoint:{cfg.endpoint_model}"
        self.hash = sha256_bytes(f"{self.url}\n{cfg.endpoint_model}".encode())

    def _request(self, content: str) -> str:
        body = {"model": self.cfg.endpoint_model, "messages": [{"role": "user", "content": content}],
                "temperature": 0, "max_tokens": self.cfg.max_tokens, "seed": self.seed}
        reply = request_json(self.url, body, headers=self.headers, timeout_s=self.cfg.timeout_s,
                             attempts=self.cfg.attempts,
                             fix="check evaluation.evaluator.base_url, or raise timeout_s / attempts")
        try:
            return reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise SrlmError(f"{self.url}: the reply is not an OpenAI chat-completions response") from None

    def compare(self, items: Sequence[tuple[str, str, str]], label: str = "evaluating",
                journal: Journal | None = None) -> list[Verdict]:
        return compare_in_chunks(self._verdicts, list(items), self.cfg.batch_size, label, journal)

    def _verdicts(self, batch: Sequence[tuple[str, str, str]]) -> list[Verdict]:
        # Threads, not asyncio: each request blocks on the network, and map keeps the batch's order.
        with ThreadPoolExecutor(max_workers=min(self.cfg.concurrency, len(batch))) as pool:
            raws = list(pool.map(lambda item: self._request(self.template.fill(*item)), batch))
        return [Verdict(raw, parse_verdict(raw)) for raw in raws]


def compare_in_chunks(verdicts: Callable[[Sequence], list[Verdict]], rows: Sequence, batch_size: int, label: str,
                      journal: Journal | None) -> list[Verdict]:
    """Verdicts chunk by chunk; a chunk found in `journal` is not asked again (paid endpoint calls included)."""
    out: list[Verdict] = []
    with progress(label) as bar:
        task = bar.add_task(label, total=len(rows), rate="")
        for index, batch in chunks(rows, batch_size):
            if journal is None:
                out += verdicts(batch)
            else:
                out += journal.chunk(index, lambda batch=batch: verdicts(batch),
                                     lambda new: [[v.raw, v.choice, v.p_a] for v in new],
                                     lambda done: [Verdict(*v) for v in done])
            bar.update(task, completed=len(out))
    if journal:
        journal.report(len(range(0, len(rows), batch_size)))
    return out


def make_evaluator(cfg: EvaluatorParams, models_root: Path, seed: int,
                   generation: GenerationParams) -> LocalEvaluator | EndpointEvaluator:
    template = PairwiseTemplate.load(cfg.template)
    if cfg.kind == "local":
        return LocalEvaluator(open_generator(generation, models_root / cfg.model), cfg.model, cfg, template)
    return EndpointEvaluator(cfg, template, seed)
