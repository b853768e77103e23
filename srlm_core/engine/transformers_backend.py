"""Batched sampling with transformers' generate: length-sorted batches under a token cap, left
padding, each prompt encoded once for its n samples, fixed seeds, progress."""

from __future__ import annotations

import copy
from dataclasses import astuple
from pathlib import Path
from typing import Sequence

import torch
import transformers
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList, StaticCache

from ..errors import SrlmError
from ..journal import Journal
from ..params import GenerationParams
from . import runtime
from .backend import Sample, Sampling, progress


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


def generate_kwargs(sampling: Sampling) -> dict:
    """generate's arguments for `sampling`: the nucleus sampler inside the logits processor."""
    if sampling.temperature > 0 and sampling.top_p < 1:
        return {"do_sample": False, "max_new_tokens": sampling.max_new_tokens,
                "logits_processor": LogitsProcessorList([NucleusSampler(sampling.temperature, sampling.top_p)])}
    return stock_kwargs(sampling)


def stock_kwargs(sampling: Sampling) -> dict:
    """transformers' own decoding (greedy at temperature 0; the benchmarks' naive baseline; top_p = 1)."""
    if sampling.temperature == 0:
        return {"do_sample": False, "max_new_tokens": sampling.max_new_tokens}
    return {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0,
            "max_new_tokens": sampling.max_new_tokens}


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.tensor(row)
            mask[i, width - len(row):] = 1
    return ids, mask


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
        # Both forms: a stop string that is whitespace ("\n") only survives unstripped.
        stopped = length is not None or any(text.endswith(s) or text.rstrip().endswith(s) for s in stop_strings)
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
                         cache=cache, pad_token_id=tokenizer.pad_token_id, **generate_kwargs(sampling), **extra)
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


class TransformersGenerator:
    """The transformers engine. It judges a batch that shares the judge's rubric with that rubric's
    key/values computed once (per prefix, kept for the next batch), each candidate encoded once for
    its samples, and the digit probabilities read from the generation's own cache."""

    def __init__(self, model, tokenizer, model_hash: str, *, max_batch_tokens: int = 32768, encode_once: bool = True,
                 kv_cache: str = "auto"):
        self.model, self.tokenizer, self.model_hash = model, tokenizer, model_hash
        self.dtype, self.max_batch_tokens, self.encode_once = model.dtype, max_batch_tokens, encode_once
        self.static_cache = kv_cache == "static" or (kv_cache == "auto" and model.device.type == "cuda")
        self._prefix: tuple[tuple[int, ...], DynamicCache] | None = None

    @classmethod
    def open(cls, model_dir: Path | str, cfg: GenerationParams) -> "TransformersGenerator":
        model, tokenizer, model_hash = runtime.load(model_dir, dtype=runtime.compute_dtype(cfg.dtype))
        if cfg.deterministic and model.device.type == "cuda":
            # warn_only: an op without a deterministic kernel (another architecture's) warns instead of failing.
            torch.use_deterministic_algorithms(True, warn_only=True)
        return cls(model, tokenizer, model_hash, max_batch_tokens=cfg.max_batch_tokens, kv_cache=cfg.kv_cache)

    def info(self) -> dict:
        return {"backend": "transformers", "dtype": str(self.dtype).removeprefix("torch."),
                "kv_cache": "static" if self.static_cache else "dynamic",
                "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}

    def sample(self, prompts, *, n, sampling, seed, batch_size, stop_strings=(), label="generating", journal=None):
        return sample(self.model, self.tokenizer, prompts, n=n, sampling=sampling, seed=seed, batch_size=batch_size,
                      stop_strings=stop_strings, label=label, journal=journal,
                      max_batch_tokens=self.max_batch_tokens, encode_once=self.encode_once,
                      static_cache=self.static_cache)

    @torch.inference_mode()
    def expected_digit(self, prompts, digits):
        out = []
        for start in range(0, len(prompts), 8):
            ids, mask = left_pad(prompts[start:start + 8], self.tokenizer.pad_token_id)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device),
                                position_ids=pos.to(self.model.device)).logits[:, -1]
            probs = torch.softmax(logits.float(), -1)[:, list(digits)]
            probs = probs / probs.sum(-1, keepdim=True)
            out += [round(float(v), 6) for v in (probs * torch.arange(len(digits), dtype=probs.dtype,
                                                                      device=probs.device)).sum(-1).cpu()]
        return out

    @torch.inference_mode()
    def choice_probs(self, prompts, tokens):
        """One forward pass over all `prompts` (the caller batches)."""
        ids, mask = left_pad(prompts, self.tokenizer.pad_token_id)
        # Positions count real tokens only, so the result does not depend on the batch's padding.
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        device = self.model.device
        logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                            position_ids=pos.to(device)).logits[:, -1].float()
        return torch.softmax(logits[:, list(tokens)], -1).cpu().tolist()

    def judge_batch(self, prefix, suffixes, *, n, sampling, seed, stop_strings, score_tail, digits):
        cache = self._prefix_cache(prefix)
        torch.manual_seed(seed)
        return self._judge_batch(cache, list(prefix), suffixes, n, sampling, list(stop_strings), score_tail,
                                 list(digits))

    @torch.inference_mode()
    def _prefix_cache(self, prefix: Sequence[int]) -> DynamicCache:
        if self._prefix is not None and self._prefix[0] == tuple(prefix):
            return self._prefix[1]
        cache = DynamicCache(config=self.model.config)
        self.model(torch.tensor([list(prefix)], device=self.model.device), cache=cache, use_cache=True)
        if cache.get_seq_length() != len(prefix):
            # transformers < 5.20 ignores `cache=` silently; every score would then be wrong.
            raise SrlmError(f"transformers {transformers.__version__} did not fill the judge's rubric cache; "
                            "srlm's transformers engine needs transformers >= 5.20 (pip install -r requirements.lock)")
        self._prefix = (tuple(prefix), cache)
        return cache

    @torch.inference_mode()
    def _judge_batch(self, prefix_cache, prefix, suffixes, k, sampling, stops, score_tail, digits):
        pad, device = self.tokenizer.pad_token_id, self.model.device
        P, B, L = len(prefix), len(suffixes), max(map(len, suffixes))
        # Padding sits between the shared prefix and each suffix; the mask hides it.
        ids = torch.full((B, P + L), pad, dtype=torch.long)
        mask = torch.zeros((B, P + L), dtype=torch.long)
        ids[:, :P] = torch.tensor(prefix)
        mask[:, :P] = 1
        for i, s in enumerate(suffixes):
            ids[i, P + L - len(s):] = torch.tensor(s)
            mask[i, P + L - len(s):] = 1
        ids, mask = ids.to(device), mask.to(device)
        cache = copy.deepcopy(prefix_cache)
        cache.batch_repeat_interleave(B)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        # Encode each suffix once (all but its last token, which generate feeds itself) ...
        self.model(input_ids=ids[:, P:-1], attention_mask=mask[:, :-1], position_ids=pos[:, P:-1],
                   cache=cache, use_cache=True)
        # ... then share that encoding among the k samples.
        cache.batch_repeat_interleave(k)
        ids, mask = ids.repeat_interleave(k, 0), mask.repeat_interleave(k, 0)
        out = self.model.generate(input_ids=ids, attention_mask=mask, cache=cache, pad_token_id=pad,
                                  return_dict_in_generate=True, **generate_kwargs(sampling),
                                  **({"stop_strings": stops, "tokenizer": self.tokenizer} if stops else {}))
        generated = out.sequences[:, ids.shape[1]:]
        texts = [s.text for s in decode_rows(self.tokenizer, generated.cpu(), stops)]
        if score_tail is None:
            scores = [None] * len(texts)
        else:
            scores = self._expected_scores(out, mask, generated, texts, score_tail, digits)
        flat = list(zip(texts, scores))
        return [flat[i * k:(i + 1) * k] for i in range(B)]

    def _expected_scores(self, out, mask, generated, texts, score_tail, digits) -> list[float]:
        """Force score_tail(text) after each sample and read the digit probabilities: after the tail's
        last token, or, where the tail is empty (the sample already ends as the tail would, e.g. the
        meta-judge's `Better judgement:`), after the sample's own last token. A sample that stopped
        before the batch's last step has that token in the cache, not at seq's end: it is fed again
        and its cached copy masked, so the probabilities are read where the sample ended and not at
        a padding position."""
        pad, device = self.tokenizer.pad_token_id, self.model.device
        seq, cache = out.sequences, out.past_key_values   # the cache holds all but seq's last token
        live = (torch.cumsum((generated == pad).long(), 1) == 0).long()
        full_mask = torch.cat([mask, live], 1)
        cache_mask = full_mask[:, :-1].clone()
        tails = [self.tokenizer(score_tail(t), add_special_tokens=False).input_ids for t in texts]
        width = max(map(len, tails))
        x = torch.full((seq.shape[0], 1 + width), pad, dtype=torch.long, device=device)
        x_mask = torch.zeros_like(x)
        x[:, 0], x_mask[:, 0] = seq[:, -1], full_mask[:, -1]
        read = torch.full((seq.shape[0],), width, dtype=torch.long, device=device)
        last = mask.shape[1] + live.sum(1) - 1    # each sample's last real token in seq
        for i, tail in enumerate(tails):
            if tail:
                x[i, 1 + width - len(tail):] = torch.tensor(tail, device=device)
                x_mask[i, 1 + width - len(tail):] = 1
                continue
            read[i] = 0
            if last[i] < seq.shape[1] - 1:
                x[i, 0], x_mask[i, 0], cache_mask[i, last[i]] = seq[i, last[i]], 1, 0
        joint = torch.cat([cache_mask, x_mask], 1)
        pos = (joint.cumsum(-1) - 1).clamp(min=0)[:, -x.shape[1]:]
        logits = self.model(input_ids=x, attention_mask=joint, position_ids=pos, cache=cache).logits
        logits = logits[torch.arange(x.shape[0], device=device), read]
        probs = torch.softmax(logits.float(), -1)[:, digits]
        probs = probs / probs.sum(-1, keepdim=True)
        values = (probs * torch.arange(len(digits), device=device, dtype=probs.dtype)).sum(-1)
        return [round(float(v), 6) for v in values.cpu()]
