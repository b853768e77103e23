"""vLLM as a generation peer, run inside `.venv-vllm` by bench/generation.py (vLLM's CPU build
pins other torch/transformers versions than srlm's main environment). Same prompts, sampling and
token budget; srlm's own VllmGenerator, so this is also what `generation.backend: vllm` gets.

    .venv-vllm/bin/python bench/peer_vllm.py --model models/M0 --prompts '["..."]' --out vllm.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from bench.common import median_seconds
    from srlm_core.engine.backend import Sampling
    from srlm_core.engine.prompts import chat_prompt_ids
    from srlm_core.engine.vllm_backend import VllmGenerator
    from srlm_core.params import GenerationParams

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--prompts", required=True, help="JSON list of prompt texts")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    gen = VllmGenerator(args.model, GenerationParams(backend="vllm"))
    startup = time.perf_counter() - start
    ids = [chat_prompt_ids(gen.tokenizer, p) for p in json.loads(args.prompts)]
    sampling = Sampling(0.7, 0.9, args.max_new_tokens)
    kept = {}
    run = lambda: kept.__setitem__("out", gen.sample(ids, n=args.n, sampling=sampling, seed=0,  # noqa: E731
                                                       batch_size=len(ids), label=""))
    seconds, times = median_seconds(run, args.repeats, warmup=1)
    tokens = sum(s.num_tokens for row in kept["out"] for s in row)
    import vllm
    args.out.write_text(json.dumps({"tok_s": tokens / seconds, "tokens": tokens, "times": times,
                                    "startup_s": startup, "version": vllm.__version__, **gen.info()}))
    gen.close()


if __name__ == "__main__":
    main()
