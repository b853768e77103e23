"""One generation interface for every stage, two engines chosen by `generation.backend`.

Stages ask a Generator for samples (token-id prompts in, `Sample`s out) and, for the judge's
probability scoring, for the expected digit after a prompt; both engines return the same
types, so the event rows they lead to have one schema. `info()` (engine and dtype) goes into
every row's sampling metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import torch

from . import runtime
from .generation import Sample, Sampling, left_pad, sample
from .journal import Journal
from .params import GenerationParams


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


class TransformersGenerator:
    def __init__(self, model, tokenizer, model_hash: str, *, max_batch_tokens: int = 32768, encode_once: bool = True,
                 kv_cache: str = "auto"):
        self.model, self.tokenizer, self.model_hash = model, tokenizer, model_hash
        self.dtype, self.max_batch_tokens, self.encode_once = model.dtype, max_batch_tokens, encode_once
        self.static_cache = kv_cache == "static" or (kv_cache == "auto" and model.device.type == "cuda")

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


def open_generator(cfg: GenerationParams, model_dir: Path | str) -> Generator:
    if cfg.backend == "vllm":
        from .vllm_backend import VllmGenerator   # optional extra: imported only when asked for
        return VllmGenerator(model_dir, cfg)
    model, tokenizer, model_hash = runtime.load(model_dir, dtype=runtime.compute_dtype(cfg.dtype))
    if cfg.deterministic and model.device.type == "cuda":
        # warn_only: an op without a deterministic kernel (another architecture's) warns instead of failing the stage.
        torch.use_deterministic_algorithms(True, warn_only=True)
    return TransformersGenerator(model, tokenizer, model_hash, max_batch_tokens=cfg.max_batch_tokens,
                                 kv_cache=cfg.kv_cache)
