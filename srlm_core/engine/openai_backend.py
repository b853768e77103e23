"""A served engine behind the Generator interface (`generation.backend: openai`).

The stages send their prompts, as token ids rendered here with the model's own tokenizer and
chat template, to an OpenAI-compatible completions server that is already running (`srlm serve
MODEL` starts `vllm serve` for it), so a large model is loaded once and serves every stage that
needs it. Which server serves which model is checked, not assumed: each model is served under
the name `served_name` gives it (its folder and content hash), and a stage refuses to start
until one of `generation.openai.servers` lists that name.

Sampling follows the vLLM backend: chunk b of a stage is seeded from the stage's seed + b, each
prompt of it with its own seed drawn from that (the same seeds, so a vLLM server gives what the
in-process vLLM engine gives), `include_stop_str_in_output` like the other engines, and finished
chunks are journaled, so a killed stage does not ask again. Digit and choice probabilities come
from the top-20 log-probs of one greedy token; a prompt with none of the tokens among them is
scored exactly from the prompt log-probs of each token appended to it (`echo`).

Requests beyond the OpenAI API, which vLLM's server accepts: token-id prompts, `seed`,
`include_stop_str_in_output`, `return_token_ids` and `return_tokens_as_token_ids`.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from transformers import AutoTokenizer

from ..errors import SrlmError
from ..log.lineage import read_manifest
from ..params import GenerationParams
from . import runtime
from .backend import FromTokenProbs, Sample, Sampling, prompt_seeds, sample_in_chunks
from .http import headers, request_json
from .serving import TOP_LOGPROBS, served_name


class OpenAIGenerator(FromTokenProbs):
    def __init__(self, model_dir: Path | str, cfg: GenerationParams):
        model_dir = Path(model_dir)
        self.model_hash = read_manifest(model_dir)["hash"]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.cfg, self.dtype = cfg.openai, runtime.compute_dtype(cfg.dtype)
        self.headers = headers(os.environ.get(self.cfg.api_key_env))
        self.model = served_name(model_dir)
        self.url = self._find_server(model_dir)
        self.pool = ThreadPoolExecutor(max_workers=self.cfg.concurrency)

    def _call(self, url: str, body: dict | None, fix: str) -> dict:
        return request_json(url, body, headers=self.headers, timeout_s=self.cfg.timeout_s,
                            attempts=self.cfg.attempts, fix=fix)

    def _find_server(self, model_dir: Path) -> str:
        serving = {}
        for url in self.cfg.servers:
            listed = self._call(f"{url}/models", None, "start the server (`srlm serve MODEL`), or correct "
                                "generation.openai.servers")
            names = [m.get("id") for m in listed.get("data", [])]
            if self.model in names:
                return url
            serving[url] = names
        raise SrlmError(f"no server in generation.openai.servers serves {model_dir} as {self.model} (they serve: "
                        f"{serving}); start one with `srlm serve {model_dir.name} --port PORT` and list its URL "
                        "(http://HOST:PORT/v1) in generation.openai.servers")

    def info(self) -> dict:
        # The dtype the params ask for, which `srlm serve` passes on; the server does not report its own.
        return {"backend": "openai", "dtype": str(self.dtype).removeprefix("torch."), "served_model": self.model}

    def close(self) -> None:
        """The server keeps running (it serves the next stage); only the request threads stop."""
        self.pool.shutdown()

    def _completion(self, body: dict) -> dict:
        reply = self._call(f"{self.url}/completions", {"model": self.model, **body},
                           "check that the server is up, or raise generation.openai.timeout_s / attempts")
        if not isinstance(reply.get("choices"), list) or not reply["choices"]:
            raise SrlmError(f"{self.url}/completions: the reply is not an OpenAI completions response: "
                            f"{str(reply)[:300]}")
        return reply

    def _samples(self, prompt: Sequence[int], n: int, sampling: Sampling, seed: int,
                 stop_strings: Sequence[str], eos: frozenset) -> list[Sample]:
        # vLLM refuses n > 1 with greedy decoding; the n samples would be equal anyway.
        greedy = sampling.temperature == 0
        body = {"prompt": list(prompt), "n": 1 if greedy else n, "max_tokens": sampling.max_new_tokens,
                "seed": seed, "stop": list(stop_strings), "include_stop_str_in_output": True,
                "return_token_ids": True, "skip_special_tokens": True,
                **({"temperature": 0.0} if greedy else {"temperature": sampling.temperature, "top_p": sampling.top_p})}
        choices = sorted(self._completion(body)["choices"], key=lambda c: c.get("index", 0))
        return [self._sample(c, eos) for c in choices] * (n if greedy else 1)

    def _sample(self, choice: dict, eos: frozenset) -> Sample:
        text, reason = choice.get("text") or "", choice.get("finish_reason")
        tokens = choice.get("token_ids")
        if tokens is None:   # a server without return_token_ids: count by this tokenizer
            tokens = self.tokenizer(text, add_special_tokens=False).input_ids
        tokens = list(tokens)
        if tokens and tokens[-1] in eos and reason == "stop":   # as the vLLM backend: EOS is not counted
            tokens.pop()
        return Sample(text, len(tokens), "length" if reason == "length" else "stop")

    def sample(self, prompts, *, n, sampling, seed, batch_size, stop_strings=(), label="generating", journal=None):
        """n samples per prompt; chunk b's prompts are sent at once (up to `concurrency` in flight)."""
        eos = frozenset({self.tokenizer.eos_token_id, self.tokenizer.pad_token_id})

        def compute(todo):
            futures: list[list[Future]] = [
                [self.pool.submit(self._samples, prompt, n, sampling, prompt_seed, stop_strings, eos)
                 for prompt, prompt_seed in zip(batch, prompt_seeds(seed + index, len(batch)))]
                for index, batch in todo]
            for position, chunk in enumerate(futures):   # in order: a chunk is journaled once all its prompts are in
                yield position, [f.result() for f in chunk]

        return sample_in_chunks(prompts, n=n, batch_size=batch_size, journal=journal, label=label, compute=compute)

    def _token_probs(self, prompts, tokens) -> list[list[float]]:
        top = list(self.pool.map(lambda p: self._top(p, tokens), prompts))
        exact = {i: self.pool.map(lambda t, p=prompts[i]: self._appended(p, t), tokens)
                 for i, probs in enumerate(top) if not any(probs)}
        return [list(exact[i]) if i in exact else probs for i, probs in enumerate(top)]

    def _top(self, prompt, tokens) -> list[float]:
        """Next-token probabilities of `tokens` from the top-20 log-probs; a token not among them counts 0."""
        reply = self._completion({"prompt": list(prompt), "max_tokens": 1, "temperature": 0.0,
                                  "logprobs": TOP_LOGPROBS, "return_tokens_as_token_ids": True})
        top = reply["choices"][0]["logprobs"]["top_logprobs"][0]
        by_id = {_token_id(key): value for key, value in top.items()}
        return [math.exp(by_id[t]) if t in by_id else 0.0 for t in tokens]

    def _appended(self, prompt, token: int) -> float:
        """The probability of `token` after `prompt`, from the prompt log-probs with it appended."""
        reply = self._completion({"prompt": [*prompt, token], "max_tokens": 1, "temperature": 0.0,
                                  "echo": True, "logprobs": 0, "return_tokens_as_token_ids": True})
        return math.exp(reply["choices"][0]["logprobs"]["token_logprobs"][len(prompt)])



def _token_id(key: str) -> int:
    """A top-log-probs key as returned with return_tokens_as_token_ids: "token_id:123"."""
    try:
        return int(key.removeprefix("token_id:"))
    except ValueError:
        raise SrlmError(f"the server returned log-prob key {key!r}, not token_id:N: it ignores "
                        "return_tokens_as_token_ids (vLLM's server supports it)") from None
