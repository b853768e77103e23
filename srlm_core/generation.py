"""Batched sampling with transformers' generate: length-sorted batches under a token cap, left
padding, each prompt encoded once for its n samples, fixed seeds, progress."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Iterator, Sequence

import torch
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .journal import Journal


class NucleusFromTopK(LogitsProcessor):
    """Top-p (nucleus) filtering, the rule of transformers' TopPLogitsWarper (a token stays while the
    probability of the tokens ranked above it is below top_p), without sorting the whole vocabulary
    each step: the nucleus is found among the `k` most likely tokens, and only rows whose top k
    hold less than top_p of the probability are sorted in full. The profile in docs/benchmarks.md
    showed the full sort taking about a quarter of generation time."""

    def __init__(self, top_p: float, k: int = 256):
        self.top_p, self.k = top_p, k

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        k = min(self.k, scores.shape[-1])
        top, index = scores.topk(k, dim=-1)
        probs = torch.exp(top - torch.logsumexp(scores, dim=-1, keepdim=True))
        above = probs.cumsum(-1) - probs          # mass ranked strictly above each token
        keep = above < self.top_p
        keep[:, 0] = True
        remove = torch.ones_like(scores, dtype=torch.bool).scatter_(1, index, ~keep)
        short = probs.sum(-1) < self.top_p        # rows whose nucleus reaches past the top k
        if short.any():
            rows = scores[short]
            ranked, order = rows.sort(dim=-1, descending=True)
            p = ranked.softmax(-1)
            kept = (p.cumsum(-1) - p) < self.top_p
            kept[:, 0] = True
            remove[short] = torch.ones_like(rows, dtype=torch.bool).scatter_(1, order, ~kept)
        return scores.masked_fill(remove, -float("inf"))


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_new_tokens: int

    def generate_kwargs(self) -> dict:
        if self.temperature == 0:
            return {"do_sample": False, "max_new_tokens": self.max_new_tokens}
        nucleus = {"logits_processor": LogitsProcessorList([NucleusFromTopK(self.top_p)])} if self.top_p < 1 else {}
        return {"do_sample": True, "temperature": self.temperature, "top_p": 1.0, "top_k": 0,
                "max_new_tokens": self.max_new_tokens, **nucleus}

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


@torch.inference_mode()
def generate_batch(model, tokenizer, batch: Sequence[Sequence[int]], *, n: int, sampling: Sampling, seed: int,
                   stop_strings: Sequence[str] = (), encode_once: bool = True) -> list[list[Sample]]:
    """n samples for each prompt of one batch. With encode_once, each prompt is encoded once: its
    key/value cache (all but the last token) is computed for the batch and then repeated for the n
    samples; without it (the benchmarks' baseline), generate encodes every sample's prompt."""
    ids, mask = left_pad(batch, tokenizer.pad_token_id)
    ids, mask = ids.to(model.device), mask.to(model.device)
    extra = {"stop_strings": list(stop_strings), "tokenizer": tokenizer} if stop_strings else {}
    cache = DynamicCache(config=model.config)
    if encode_once and ids.shape[1] > 1:
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=pos[:, :-1], cache=cache,
              use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(n)
    torch.manual_seed(seed)
    out = model.generate(input_ids=ids.repeat_interleave(n, 0), attention_mask=mask.repeat_interleave(n, 0),
                         cache=cache, pad_token_id=tokenizer.pad_token_id, **sampling.generate_kwargs(), **extra)
    rows = decode_rows(tokenizer, out[:, ids.shape[1]:].cpu(), stop_strings)
    return [rows[i * n:(i + 1) * n] for i in range(len(batch))]


def sample(model, tokenizer, prompts: Sequence[Sequence[int]], *, n: int, sampling: Sampling, seed: int,
           batch_size: int, stop_strings: Sequence[str] = (), label: str = "generating",
           journal: Journal | None = None, max_batch_tokens: int = 32768,
           encode_once: bool = True) -> list[list[Sample]]:
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
                                      seed=seed + index, stop_strings=stop_strings, encode_once=encode_once)

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
