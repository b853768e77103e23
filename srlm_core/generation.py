"""Batched sampling with transformers' generate: left padding, fixed seeds, progress."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Iterator, Sequence

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .journal import Journal


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_new_tokens: int

    def generate_kwargs(self) -> dict:
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
    return Progress(TextColumn(f"[bold]{description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn())


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
def sample(model, tokenizer, prompts: Sequence[Sequence[int]], *, n: int, sampling: Sampling, seed: int,
           batch_size: int, stop_strings: Sequence[str] = (), label: str = "generating",
           journal: Journal | None = None) -> list[list[Sample]]:
    """n samples for each prompt (token ids). Batch b is seeded with seed + b, so a batch's output
    depends only on its own prompts and seed, and a batch found in `journal` is not generated again."""
    results: list[list[Sample]] = []
    extra = {"stop_strings": list(stop_strings), "tokenizer": tokenizer} if stop_strings else {}
    with progress(label) as bar:
        task = bar.add_task(label, total=len(prompts) * n, rate="")
        for index, batch in chunks(prompts, batch_size):
            def generate(index=index, batch=batch) -> list[list[Sample]]:
                ids, mask = left_pad(batch, tokenizer.pad_token_id)
                torch.manual_seed(seed + index)
                out = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                     num_return_sequences=n, pad_token_id=tokenizer.pad_token_id,
                                     **sampling.generate_kwargs(), **extra)
                rows = decode_rows(tokenizer, out[:, ids.shape[1]:].cpu(), stop_strings)
                return [rows[i * n:(i + 1) * n] for i in range(len(batch))]

            if journal is None:
                results += generate()
            else:
                results += journal.chunk(index, generate, lambda new: [[astuple(s) for s in r] for r in new],
                                         lambda done: [[Sample(*s) for s in r] for r in done])
            elapsed = bar.tasks[task].elapsed or 1e-9
            bar.update(task, completed=len(results) * n, rate=f"{sum(s.num_tokens for r in results for s in r) / elapsed:.0f} tok/s")
    if journal:
        journal.report(len(range(0, len(prompts), batch_size)))
    return results
