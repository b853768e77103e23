"""LLM-as-a-Judge with the additive 5-point prompt: template, cached prompt encoding, scoring.

The template's text before the first placeholder (the rubric) is the same for every
candidate, so it is encoded once and its key/value cache reused for each batch. Two
scoring methods:
  text         the paper's: parse the last `Score: N` of the generated text (N in 0-5),
               NULL when there is none;
  probability  generation stops at `Score:`, then `Score: ` is forced and the score is the
               expected value of the model's next-token probabilities over the digits 0-5
               (renormalised), so a small model always yields a number.
Only generated text is parsed, never the prompt, which contains the candidate.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from typing import Sequence

import torch
import transformers
from transformers import DynamicCache

from . import injection
from .errors import SrlmError
from .generation import Sampling, chunks, decode_rows, progress
from .hashing import sha256_bytes
from .journal import Journal
from .prompt_template import fill, read_template

SCORE = re.compile(r"Score:\s*(-?\d+(?:\.\d+)?)")
STOP = "Score:"


def parse_score(generated: str) -> float | None:
    """The last `Score: N` in the judge's own output, if N is a whole number from 0 to 5."""
    found = SCORE.findall(generated)
    if not found:
        return None
    value = float(found[-1])
    return value if value.is_integer() and 0 <= value <= 5 else None


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


@dataclass(frozen=True)
class Judgement:
    raw_output: str
    score: float | None


class Judge:
    """Judges with any Generator. With the transformers engine (and `fast`), the rubric's cache is
    shared, each candidate is encoded once for its samples and the digit probabilities are read from
    the generation's own cache; otherwise every sample sees the whole prompt through `generator`
    (vLLM's prefix caching shares the rubric there)."""

    def __init__(self, generator, template: Template, *, method: str, samples: int, sampling: Sampling,
                 max_prompt_tokens: int, max_response_tokens: int, injection: str = "neutralise", fast: bool = True):
        self.gen, self.tok, self.template = generator, generator.tokenizer, template
        self.neutralise = injection == "neutralise"
        self.model = getattr(generator, "model", None) if fast else None
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

    def _parts(self, prompt: str, response: str) -> tuple[str, str]:
        return self.template.split(self.tok, clip(self.tok, prompt, self.max_prompt_tokens),
                                   self.seen_response(response))

    def guard_columns(self, response: str) -> dict:
        """The judgement row's record of judge-directed text in `response`: how many sentences
        held it, and whether they were cut before judging."""
        found = len(injection.spans(response))
        return {"injection_spans": found, "neutralised": self.neutralise and found > 0}

    def user_message(self, prompt: str, response: str) -> str:
        """The judge prompt's user message (the filled template, before chat formatting): EFT trains on it."""
        return self.template.fill(clip(self.tok, prompt, self.max_prompt_tokens), self.seen_response(response))

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
        prefix_cache = self._prefix_cache() if self.model is not None else None
        out: list[list[Judgement]] = []
        with progress(label) as bar:
            task = bar.add_task(label, total=len(items), rate="")
            for index, batch in chunks(suffixes, batch_size):
                def judge(index=index, batch=batch) -> list[list[Judgement]]:
                    if prefix_cache is None:
                        return self._judge_generic(batch, seed + index)
                    torch.manual_seed(seed + index)
                    return self._judge_batch(prefix_cache, batch)

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

    def _judge_generic(self, suffixes: Sequence[list[int]], seed: int) -> list[list[Judgement]]:
        prompts = [self.prefix_ids + s for s in suffixes]
        samples = self.gen.sample(prompts, n=self.samples, sampling=self.sampling, seed=seed, batch_size=len(prompts),
                                  stop_strings=self.stops, label="")
        texts = [[s.text for s in row] for row in samples]
        if self.method == "text":
            return [[Judgement(t, parse_score(t)) for t in row] for row in texts]
        forced = [prompt + self._encode(t + (" " if t.rstrip().endswith(STOP) else "\nScore: "))
                  for prompt, row in zip(prompts, texts) for t in row]
        scores = iter(self.gen.expected_digit(forced, self.digits))
        return [[Judgement(t, next(scores)) for t in row] for row in texts]

    @torch.inference_mode()
    def _prefix_cache(self) -> DynamicCache:
        cache = DynamicCache(config=self.model.config)
        self.model(torch.tensor([self.prefix_ids], device=self.model.device), cache=cache, use_cache=True)
        if cache.get_seq_length() != len(self.prefix_ids):
            # transformers < 5.20 ignores `cache=` silently; every score would then be wrong.
            raise SrlmError(f"transformers {transformers.__version__} did not fill the judge's rubric cache; "
                            "srlm's transformers engine needs transformers >= 5.20 (pip install -r requirements.lock)")
        return cache

    @torch.inference_mode()
    def _judge_batch(self, prefix_cache: DynamicCache, suffixes: Sequence[list[int]]) -> list[list[Judgement]]:
        pad, device, k = self.tok.pad_token_id, self.model.device, self.samples
        P, B, L = len(self.prefix_ids), len(suffixes), max(map(len, suffixes))
        # Padding sits between the shared prefix and each suffix; the mask hides it.
        ids = torch.full((B, P + L), pad, dtype=torch.long)
        mask = torch.zeros((B, P + L), dtype=torch.long)
        ids[:, :P] = torch.tensor(self.prefix_ids)
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
        # ... then share that encoding among the k judge samples.
        cache.batch_repeat_interleave(k)
        ids, mask = ids.repeat_interleave(k, 0), mask.repeat_interleave(k, 0)
        out = self.model.generate(input_ids=ids, attention_mask=mask, cache=cache, pad_token_id=pad,
                                  return_dict_in_generate=True, **self.sampling.generate_kwargs(),
                                  **({"stop_strings": self.stops, "tokenizer": self.tok} if self.stops else {}))
        generated = out.sequences[:, ids.shape[1]:]
        texts = [s.text for s in decode_rows(self.tok, generated.cpu(), self.stops)]
        if self.method == "text":
            scores = [parse_score(t) for t in texts]
        else:
            scores = self._expected_scores(out, ids, mask, generated, texts)
        flat = [Judgement(t, s) for t, s in zip(texts, scores)]
        return [flat[i * k:(i + 1) * k] for i in range(B)]

    def _expected_scores(self, out, ids, mask, generated, texts) -> list[float]:
        """Force `Score: ` after each justification and read the digit probabilities."""
        pad, device = self.tok.pad_token_id, self.model.device
        seq, cache = out.sequences, out.past_key_values   # the cache holds all but seq's last token
        live = (torch.cumsum((generated == pad).long(), 1) == 0).long()
        full_mask = torch.cat([mask, live], 1)
        tails = [self._encode(" ") if t.rstrip().endswith(STOP) else self._encode("\nScore: ") for t in texts]
        width = max(map(len, tails))
        x = torch.full((seq.shape[0], 1 + width), pad, dtype=torch.long, device=device)
        x_mask = torch.zeros_like(x)
        x[:, 0], x_mask[:, 0] = seq[:, -1], full_mask[:, -1]
        for i, tail in enumerate(tails):
            x[i, 1 + width - len(tail):] = torch.tensor(tail, device=device)
            x_mask[i, 1 + width - len(tail):] = 1
        joint = torch.cat([full_mask[:, :-1], x_mask], 1)
        pos = (joint.cumsum(-1) - 1).clamp(min=0)[:, -x.shape[1]:]
        logits = self.model(input_ids=x, attention_mask=joint, position_ids=pos, cache=cache).logits[:, -1]
        probs = torch.softmax(logits.float(), -1)[:, self.digits]
        probs = probs / probs.sum(-1, keepdim=True)
        values = (probs * torch.arange(6, device=device, dtype=probs.dtype)).sum(-1)
        return [round(float(v), 6) for v in values.cpu()]
