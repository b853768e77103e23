"""Batched sampling with transformers' generate: length-sorted batches under a token cap, left
padding, each prompt encoded once for its n samples, fixed seeds, progress."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Iterator, Sequence

import torch
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList, StaticCache
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .journal import Journal


class NucleusSampler(LogitsProcessor):
    """Temperature and top-p (nucleus) sampling done inside the logits processor, so generate runs
    greedy and only takes the drawn token: the nucleus follows the rule of transformers'
    TopPLogitsWarper (a token stays while the probability of the tokens ranked above it is below
    top_p), is found among the `k` most likely tokens (rows whose top k hold less than top_p are
    sorted in full), and the draw is among the nucleus only. Sampling stock-fashion costs a sort of
    the whole vocabulary and a random number per vocabulary entry every step; the profiles in
    docs/benchmarks.md showed those taking a quarter and then a fifth of generation time. Same
    distribution as temperature + top_p in generate; draws come from torch's global generator."""

    def __init__(self, temperature: float, top_p: float, k: int = 256):
        self.temperature, self.top_p, self.k = temperature, top_p, k

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float() / self.temperature
        top, index = scores.topk(min(self.k, scores.shape[-1]), dim=-1)
        # Equal scores in token order: topk (on CUDA) returns ties in no fixed order, which would
        # change the nucleus and the draw from run to run.
        index, by_token = index.sort(-1)
        top, by_score = top.gather(1, by_token).sort(dim=-1, descending=True, stable=True)
        index = index.gather(1, by_score)
        probs = torch.exp(top - torch.logsumexp(scores, dim=-1, keepdim=True))
        choice = index.gather(1, torch.multinomial(self._nucleus(probs), 1))
        short = probs.sum(-1) < self.top_p        # rows whose nucleus reaches past the top k
        if short.any():
            ranked, order = scores[short].sort(dim=-1, descending=True, stable=True)
            choice[short] = order.gather(1, torch.multinomial(self._nucleus(ranked.softmax(-1)), 1))
        return torch.full_like(scores, -float("inf")).scatter_(1, choice, 0.0)

    def _nucleus(self, ranked: torch.Tensor) -> torch.Tensor:
        """Probabilities sorted in descending order -> the same with the tokens outside the nucleus zeroed."""
        keep = (ranked.cumsum(-1) - ranked) < self.top_p   # mass ranked strictly above each token
        keep[:, 0] = True
        return ranked * keep


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_new_tokens: int

    def generate_kwargs(self) -> dict:
        if self.temperature > 0 and self.top_p < 1:
            return {"do_sample": False, "max_new_tokens": self.max_new_tokens,
                    "logits_processor": LogitsProcessorList([NucleusSampler(self.temperature, self.top_p)])}
        return self.stock_kwargs()

    def stock_kwargs(self) -> dict:
        """transformers' own decoding (greedy at temperature 0; the benchmarks' naive baseline; top_p = 1)."""
        if self.temperature == 0:
            return {"do_sample": False, "max_new_tokens": self.max_new_tokens}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": 0,
                "max_new_tokens": self.max_new_tokens}

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


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.tensor(row)
            mask[i, width - len(row):] = 1
    return ids, mask


def chunks(items: Sequence, size: int) -> Iterator[tuple[int, Sequence]]:
    for start in range(0, len(items), size):
        yield start // size, items[start:start + size]


def plan_batches(prompts: Sequence[Sequence[int]], *, n: int, batch_size: int, max_new_tokens: int,
                 max_batch_tokens: int) -> list[list[int]]:
    """Prompt indices grouped into batches: sorted by length (little padding), at most batch_size
    prompts, and rows x (longest prompt + new tokens) within max_batch_tokens (bounded memory)."""
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    batches: list[list[int]] = []
    for i in order:
        current = batches[-1] if batches else None
        width = len(prompts[i]) + max_new_tokens   # sorted: the newest prompt is the batch's longest
        if current and len(current) < batch_size and (len(current) + 1) * n * width <= max_batch_tokens:
            current.append(i)
        else:
            batches.append([i])
    return batches


def decode_rows(tokenizer, generated: torch.Tensor, stop_strings: Sequence[str] = ()) -> list[Sample]:
    """Generated ids (rows x new tokens, padded with pad/EOS) -> text, token count, finish reason."""
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    out = []
    for row in generated.tolist():
        length = next((i for i, tok in enumerate(row) if tok in eos), None)
        tokens = row if length is None else row[:length]
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        stopped = length is not None or any(text.rstrip().endswith(s) for s in stop_strings)
        out.append(Sample(text, len(tokens), "stop" if stopped else "length"))
    return out


def kv_cache(model, prompts: torch.Tensor, mask: torch.Tensor, *, n: int, new_tokens: int, encode_once: bool,
             static: bool) -> DynamicCache | StaticCache:
    """The cache generate starts from. With encode_once, each prompt's key/values (all but its last
    token, which generate feeds itself) are computed once and repeated for its n samples. A static
    cache holds room for the whole sequence from the start (no concatenation per step; on CUDA,
    transformers compiles the decode step for it); its length is rounded up to 128 so that batches
    of similar length share one compiled shape."""
    cache = DynamicCache(config=model.config)
    if encode_once and prompts.shape[1] > 1:
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        model(input_ids=prompts[:, :-1], attention_mask=mask[:, :-1], position_ids=pos[:, :-1], cache=cache,
              use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(n)
    if not static:
        return cache
    fixed = StaticCache(config=model.config, max_cache_len=-(-(prompts.shape[1] + new_tokens) // 128) * 128)
    for to, done in zip(fixed.layers, cache.layers):
        if done.is_initialized:
            to.update(done.keys, done.values)
    return fixed


@torch.inference_mode()
def generate_batch(model, tokenizer, batch: Sequence[Sequence[int]], *, n: int, sampling: Sampling, seed: int,
                   stop_strings: Sequence[str] = (), encode_once: bool = True,
                   static_cache: bool = False) -> list[list[Sample]]:
    """n samples for each prompt of one batch, from the cache `kv_cache` builds (encode_once off is
    the benchmarks' baseline: generate encodes every sample's prompt)."""
    ids, mask = left_pad(batch, tokenizer.pad_token_id)
    ids, mask = ids.to(model.device), mask.to(model.device)
    extra = {"stop_strings": list(stop_strings), "tokenizer": tokenizer} if stop_strings else {}
    cache = kv_cache(model, ids, mask, n=n, new_tokens=sampling.max_new_tokens, encode_once=encode_once,
                     static=static_cache)
    torch.manual_seed(seed)
    out = model.generate(input_ids=ids.repeat_interleave(n, 0), attention_mask=mask.repeat_interleave(n, 0),
                         cache=cache, pad_token_id=tokenizer.pad_token_id, **sampling.generate_kwargs(), **extra)
    rows = decode_rows(tokenizer, out[:, ids.shape[1]:].cpu(), stop_strings)
    return [rows[i * n:(i + 1) * n] for i in range(len(batch))]


def sample(model, tokenizer, prompts: Sequence[Sequence[int]], *, n: int, sampling: Sampling, seed: int,
           batch_size: int, stop_strings: Sequence[str] = (), label: str = "generating",
           journal: Journal | None = None, max_batch_tokens: int = 32768,
           encode_once: bool = True, static_cache: bool = False) -> list[list[Sample]]:
    """n samples for each prompt (token ids), in the prompts' order. Batches come from plan_batches;
    batch b is seeded with seed + b, so its output depends only on its own prompts and seed, and a
    batch found in `journal` is not generated again."""
    batches = plan_batches(prompts, n=n, batch_size=batch_size, max_new_tokens=sampling.max_new_tokens,
                           max_batch_tokens=max_batch_tokens)
    results: list[list[Sample] | None] = [None] * len(prompts)
    done = tokens = 0
    with progress(label) as bar:
        task = bar.add_task(label, total=len(prompts) * n, rate="")
        for index, members in enumerate(batches):
            def generate(index=index, members=members) -> list[list[Sample]]:
                return generate_batch(model, tokenizer, [prompts[i] for i in members], n=n, sampling=sampling,
                                      seed=seed + index, stop_strings=stop_strings, encode_once=encode_once,
                                      static_cache=static_cache)

            if journal is None:
                outputs = generate()
            else:
                outputs = journal.chunk(index, generate, lambda new: [[astuple(s) for s in r] for r in new],
                                        lambda old: [[Sample(*s) for s in r] for r in old])
            for i, samples in zip(members, outputs):
                results[i] = samples
            done += len(members) * n
            tokens += sum(s.num_tokens for r in outputs for s in r)
            bar.update(task, completed=done, rate=f"{tokens / (bar.tasks[task].elapsed or 1e-9):.0f} tok/s")
    if journal:
        journal.report(len(batches))
    return results
