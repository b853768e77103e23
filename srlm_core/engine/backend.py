"""The generation interface every stage uses, and the engine that `generation.backend` chooses.

Stages hand a Generator token-id prompts and get `Sample`s back; the judge asks it to judge a
batch that shares one prompt prefix (samples, and for probability scoring the expected digit
after each), and the head-to-head evaluator for next-token probabilities. Every engine
(`transformers_backend`, `vllm_backend`, and `openai_backend` for a served one) implements this
and returns these types, so the event rows they lead to have one schema; `info()` (engine and
dtype) goes into every row's sampling metadata.
"""

from __future__ import annotations

import random
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from ..journal import Journal
from ..params import GenerationParams


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_new_tokens: int

    def record(self, **extra) -> dict:
        """The sampling parameters as stored in event rows."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens, **extra}


@dataclass(frozen=True)
class Sample:
    text: str
    num_tokens: int
    finish_reason: str   # "stop": EOS or a stop string; "length": hit max_new_tokens


def progress(description: str) -> Progress:
    """A progress bar; none for an empty description (work nested inside another bar)."""
    return Progress(TextColumn(f"[bold]{description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), disable=not description)


def chunks(items: Sequence, size: int) -> Iterator[tuple[int, Sequence]]:
    for start in range(0, len(items), size):
        yield start // size, items[start:start + size]


def prompt_seeds(chunk_seed: int, count: int) -> list[int]:
    """One seed per prompt of a chunk, drawn from the chunk's seed: identical prompts in a chunk still
    get different samples, as they do with transformers' one generator (engines seeded per request)."""
    rng = random.Random(chunk_seed)
    return [rng.getrandbits(63) for _ in range(count)]


def sample_in_chunks(prompts: Sequence[Sequence[int]], *, n: int, batch_size: int, journal: Journal | None,
                     label: str, compute: Callable[[list[tuple[int, Sequence]]], Iterable[tuple[int, list]]]
                     ) -> list[list[Sample]]:
    """n samples per prompt, chunk by chunk (batch_size prompts each): a chunk found in `journal` is
    replayed, the others go to compute(todo), which yields (position in todo, that chunk's rows) as
    each finishes, in any order; each finished chunk is journaled at once."""
    done: dict[int, list[list[Sample]]] = {}
    todo: list[tuple[int, Sequence]] = []
    for index, batch in chunks(prompts, batch_size):
        stored = journal.get(index) if journal is not None else None
        if stored is None:
            todo.append((index, batch))
        else:
            done[index] = [[Sample(*s) for s in r] for r in stored]
    with progress(label) as bar:
        task = bar.add_task(label, total=len(prompts) * n, rate="")
        for position, rows in (compute(todo) if todo else ()):
            index = todo[position][0]
            if journal is not None:
                journal.put(index, [[astuple(s) for s in r] for r in rows])
            done[index] = rows
            elapsed = bar.tasks[task].elapsed or 1e-9
            bar.update(task, completed=sum(map(len, done.values())) * n,
                       rate=f"{sum(s.num_tokens for c in done.values() for r in c for s in r) / elapsed:.0f} tok/s")
    if journal:
        journal.report(len(range(0, len(prompts), batch_size)))
    return [row for index in sorted(done) for row in done[index]]


class Generator(Protocol):
    tokenizer: object
    model_hash: str

    def info(self) -> dict: ...

    def sample(self, prompts: Sequence[Sequence[int]], *, n: int, sampling: Sampling, seed: int, batch_size: int,
               stop_strings: Sequence[str] = (), label: str = "generating",
               journal: Journal | None = None) -> list[list[Sample]]: ...

    def expected_digit(self, prompts: Sequence[Sequence[int]], digits: Sequence[int]) -> list[float]:
        """For each prompt, the expected value of the next token over `digits` (token ids of 0..k),
        their probabilities renormalised to sum to 1."""
        ...

    def choice_probs(self, prompts: Sequence[Sequence[int]], tokens: Sequence[int]) -> list[list[float]]:
        """For each prompt, the next-token probabilities of `tokens`, renormalised over them."""
        ...

    def judge_batch(self, prefix: Sequence[int], suffixes: Sequence[Sequence[int]], *, n: int, sampling: Sampling,
                    seed: int, stop_strings: Sequence[str], score_tail: Callable[[str], str] | None,
                    digits: Sequence[int]) -> list[list[tuple[str, float | None]]]:
        """n samples for each prompt prefix + suffix, one batch seeded with `seed`; with `score_tail`,
        each sample's score: the expected digit (over `digits`) after the sample's text followed by
        score_tail(text). The prefix is the same for every prompt, so an engine may encode it once."""
        ...


def judge_batch_generic(gen: Generator, prefix, suffixes, *, n, sampling, seed, stop_strings, score_tail,
                        digits) -> list[list[tuple[str, float | None]]]:
    """`Generator.judge_batch` from `sample` and `expected_digit` alone: every sample sees the whole
    prompt (vLLM's prefix caching shares the prefix)."""
    prompts = [list(prefix) + list(s) for s in suffixes]
    samples = gen.sample(prompts, n=n, sampling=sampling, seed=seed, batch_size=len(prompts),
                         stop_strings=stop_strings, label="")
    texts = [[s.text for s in row] for row in samples]
    if score_tail is None:
        return [[(t, None) for t in row] for row in texts]
    encode = lambda text: gen.tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
    forced = [prompt + encode(t + score_tail(t)) for prompt, row in zip(prompts, texts) for t in row]
    scores = iter(gen.expected_digit(forced, digits))
    return [[(t, next(scores)) for t in row] for row in texts]


class FromTokenProbs:
    """expected_digit, choice_probs and judge_batch for an engine that gives the probabilities of a few
    candidate next tokens (`_token_probs`): vLLM in-process and served. judge_batch is judge_batch_generic:
    the engine's prefix caching shares the rubric."""

    def _token_probs(self, prompts: Sequence[Sequence[int]], tokens: Sequence[int]) -> list[list[float]]:
        raise NotImplementedError

    def expected_digit(self, prompts, digits):
        return [round(sum(k * q for k, q in enumerate(p)) / sum(p), 6) for p in self._token_probs(prompts, digits)]

    def choice_probs(self, prompts, tokens):
        return [[q / sum(p) for q in p] for p in self._token_probs(prompts, tokens)]

    def judge_batch(self, prefix, suffixes, **kwargs):
        return judge_batch_generic(self, prefix, suffixes, **kwargs)


def open_generator(cfg: GenerationParams, model_dir: Path | str) -> Generator:
    if cfg.backend == "openai":
        from .openai_backend import OpenAIGenerator
        return OpenAIGenerator(model_dir, cfg)
    if cfg.backend == "vllm":
        from .vllm_backend import (
            VllmGenerator,  # optional extra: imported only when asked for
        )
        return VllmGenerator(model_dir, cfg)
    from .transformers_backend import TransformersGenerator
    return TransformersGenerator.open(model_dir, cfg)
