"""Generation throughput, every engine on the same prompts, sampling and token budget, in one run.

Engines: the naive loop (one prompt, one sample at a time, fp32 `generate` with its own top-p
sampling), srlm's transformers engine (`generation.sample`: length-sorted batches, each prompt
encoded once, the draw among the nucleus only) in fp32 and bf16,
vLLM (when `.venv-vllm` exists: `make test-vllm` builds it) and llama.cpp one request at a time
(when `make bench-peers` has built llama-cpp-python). Also the limit: the model's own decode-step
matmuls timed alone at the batch's row count give the fastest a decode step could be; our
throughput is reported as a share of that.

    python bench/generation.py --out bench/results/generation.json [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, median_seconds, table, write_result  # noqa: E402
from srlm_core.engine import runtime  # noqa: E402
from srlm_core.engine.backend import Sampling  # noqa: E402
from srlm_core.engine.prompts import chat_prompt_ids  # noqa: E402
from srlm_core.engine.transformers_backend import sample, stock_kwargs  # noqa: E402

PROMPTS = ROOT / "data" / "seed" / "eval_prompts.jsonl"
TARGETS = {"naive": 15.0, "vllm": 1.5, "llama.cpp": 4.0, "limit": 0.40}


def eval_prompts(count: int) -> list[str]:
    lines = PROMPTS.read_text().splitlines()
    return [json.loads(line)["prompt"] for line in lines[:count]]


def tokens_of(outputs) -> int:
    return sum(s.num_tokens for row in outputs for s in row)


def ours(model, tok, ids, n, sampling, repeats, static_cache=False) -> dict:
    result = {}
    seconds, times = median_seconds(lambda: result.setdefault("out", sample(
        model, tok, ids, n=n, sampling=sampling, seed=0, batch_size=len(ids), label="",
        static_cache=static_cache)), repeats)
    tokens = tokens_of(result["out"])   # same seed, same tokens every repeat
    return {"tok_s": tokens / seconds, "tokens": tokens, "times": times, "rows": len(ids) * n}


@torch.inference_mode()
def naive(model, tok, ids, n, sampling, sequences) -> dict:
    """One prompt, one sample per `generate` call, over the first `sequences` (prompt, sample) pairs:
    a rate, so measuring a subset costs no accuracy worth the minutes."""
    pairs = [(p, s) for p in ids for s in range(n)][:sequences]
    tokens = 0

    def run():
        nonlocal tokens
        tokens = 0
        for prompt, s in pairs:
            torch.manual_seed(s)
            out = model.generate(input_ids=torch.tensor([prompt]), pad_token_id=tok.pad_token_id,
                                 **stock_kwargs(sampling))
            tokens += out.shape[1] - len(prompt)
    seconds, times = median_seconds(run, 1)
    return {"tok_s": tokens / seconds, "tokens": tokens, "times": times, "sequences": len(pairs)}


@torch.inference_mode()
def decode_limit(model, rows: int, context: int, repeats: int = 5) -> dict:
    """The decode step's matmuls alone (every Linear and the LM head at `rows` rows) plus its
    attention score/value products over `context` cached positions: their FLOPs over their time."""
    dtype = model.dtype
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    cfg = model.config
    heads, head_dim = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    xs = {k: torch.randn(rows, k, dtype=dtype) for k, _ in shapes}
    ws = [torch.randn(n, k, dtype=dtype) for k, n in shapes]   # nn.Linear's (out, in) layout
    q = torch.randn(rows * heads, 1, head_dim, dtype=dtype)
    kv = torch.randn(rows * heads, context, head_dim, dtype=dtype)
    layers = cfg.num_hidden_layers

    def step():
        for (k, _), w in zip(shapes, ws):
            torch.nn.functional.linear(xs[k], w)
        for _ in range(layers):
            torch.bmm(torch.bmm(q, kv.transpose(1, 2)), kv)
    flops = 2 * rows * sum(k * n for k, n in shapes) + layers * 4 * rows * heads * context * head_dim
    seconds, _ = median_seconds(step, repeats, warmup=1)
    return {"rows": rows, "context": context, "gflop_s": flops / seconds / 1e9, "step_s": seconds,
            "tok_s": rows / seconds, "flops_per_token": flops / rows}


CATEGORIES = {"matmuls (Linear, LM head)": ("aten::mm", "aten::addmm", "aten::matmul", "aten::linear"),
              "attention": ("aten::_scaled_dot_product", "aten::scaled_dot_product", "aten::bmm", "aten::baddbmm"),
              "sampling (softmax, top-p sort, draw)": ("aten::sort", "aten::softmax", "aten::_softmax", "aten::multinomial",
                                                       "aten::cumsum", "aten::topk", "aten::scatter")}


@torch.inference_mode()
def profile(model, tok, ids, n, sampling) -> dict:
    """Where one batch's time goes: operator self time by category, and the rest of the wall time
    (Python, generate's bookkeeping) outside any operator."""
    import time

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from srlm_core.engine.transformers_backend import generate_batch
    short = Sampling(sampling.temperature, sampling.top_p, min(32, sampling.max_new_tokens))
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        generate_batch(model, tok, ids, n=n, sampling=short, seed=0)
        wall = time.perf_counter() - start
    shares = dict.fromkeys([*CATEGORIES, "other operators"], 0.0)
    others = {}
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue
        name = next((c for c, keys in CATEGORIES.items() if event.key.startswith(keys)), "other operators")
        shares[name] += event.self_cpu_time_total / 1e6
        if name == "other operators":
            others[event.key] = event.self_cpu_time_total / 1e6
    shares["outside operators (Python, generate's bookkeeping)"] = max(0.0, wall - sum(shares.values()))
    top = dict(sorted(others.items(), key=lambda kv: -kv[1])[:5])
    return {"wall_s": wall, "new_tokens": short.max_new_tokens, "seconds": shares, "top_other_operators": top}


def vllm_peer(model_dir: Path, prompts: list[str], n: int, sampling: Sampling, repeats: int) -> dict | None:
    python = ROOT / ".venv-vllm" / "bin" / "python"
    if not python.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "vllm.json"
        cmd = [str(python), str(ROOT / "bench" / "peer_vllm.py"), "--model", str(model_dir), "--n", str(n),
               "--max-new-tokens", str(sampling.max_new_tokens), "--repeats", str(repeats), "--out", str(out),
               "--prompts", json.dumps(prompts)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
        return json.loads(out.read_text())


def llamacpp_peer(prompts: list[str], n: int, sampling: Sampling, repeats: int) -> dict | None:
    """One request at a time is a rate: the first two prompts' n samples measure it (all 64 requests
    would take most of an hour on 2 cores)."""
    try:
        from bench.peer_llamacpp import llamacpp_tok_s
    except ImportError:
        return None
    try:
        result = llamacpp_tok_s(prompts[:2], n, sampling.max_new_tokens, sampling.temperature, sampling.top_p, 0,
                                repeats)
    except ImportError:
        return None
    return {**result, "sequences": min(2, len(prompts)) * n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "M0")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "generation.json")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true", help="skip vLLM and llama.cpp")
    args = parser.parse_args()
    count, n, new, repeats, naive_seqs = (16, 4, 128, args.repeats, 4) if not args.quick else (2, 2, 8, 1, 1)
    sampling = Sampling(0.7, 0.9, new)
    prompts = eval_prompts(count)
    data = {"prompts": count, "n": n, "max_new_tokens": new, "sampling": sampling.record(), "machine": machine()}

    model, tok, _ = runtime.load(args.model, dtype=torch.float32)
    ids = [chat_prompt_ids(tok, p) for p in prompts]
    data["naive"] = naive(model, tok, ids, n, sampling, naive_seqs)
    data["ours_float32"] = ours(model, tok, ids, n, sampling, repeats)
    # the static KV cache (generation.kv_cache: static; auto picks it on CUDA only): no compilation on the CPU
    data["ours_float32_static"] = ours(model, tok, ids, n, sampling, repeats, static_cache=True)
    context = max(map(len, ids)) + new // 2
    if runtime.compute_dtype("auto") == torch.float32:
        data["profile"] = profile(model, tok, ids, n, sampling)
    data["limit_float32"] = decode_limit(model, count * n, context)
    auto = runtime.compute_dtype("auto")
    data["auto_dtype"] = str(auto).removeprefix("torch.")
    model = model.to(torch.bfloat16)
    if "profile" not in data:
        data["profile"] = profile(model, tok, ids, n, sampling)
    # bf16 where the processor lacks bf16 units is emulated and slow: one repeat shows it.
    native = runtime.native_bf16()
    data["ours_bfloat16"] = ours(model, tok, ids, n, sampling, repeats if native else 1)
    if native:   # where bf16 is fast: does the static cache pay off there?
        data["ours_bfloat16_static"] = ours(model, tok, ids, n, sampling, repeats, static_cache=True)
    data["limit_bfloat16"] = decode_limit(model, count * n, context)
    del model
    data["vllm"] = None if args.no_peers else vllm_peer(args.model, prompts, n, sampling, repeats)
    data["llama.cpp"] = None if args.no_peers else llamacpp_peer(prompts, n, sampling, repeats)
    write_result(args.out, "generation", section(data), data)
    print(json.dumps({k: v.get("tok_s") if isinstance(v, dict) else v for k, v in data.items()}, indent=1))


def section(d: dict) -> str:
    best = d[f"ours_{d['auto_dtype']}"]
    rate = lambda r: f"{r['tok_s']:,.1f}" if r and "tok_s" in r else "not run"  # noqa: E731
    ratio = lambda r: f"{best['tok_s'] / r['tok_s']:.2f}x" if r and r.get("tok_s") else "-"  # noqa: E731
    limit = d[f"limit_{d['auto_dtype']}"]
    rows = [
        ["naive loop (1 prompt x 1 sample per call, fp32)", rate(d["naive"]), ratio(d["naive"]),
         f">= {TARGETS['naive']:.0f}x", _met(d["naive"], best, TARGETS["naive"])],
        ["srlm transformers, float32", rate(d["ours_float32"]), ratio(d["ours_float32"]), "", ""],
        ["srlm transformers, float32, static KV cache", rate(d.get("ours_float32_static")),
         ratio(d.get("ours_float32_static")), "", ""],
        ["srlm transformers, bfloat16", rate(d["ours_bfloat16"]), ratio(d["ours_bfloat16"]), "", ""],
        *([["srlm transformers, bfloat16, static KV cache", rate(d["ours_bfloat16_static"]),
            ratio(d["ours_bfloat16_static"]), "", ""]] if "ours_bfloat16_static" in d else []),
        ["vLLM (CPU build)", rate(d["vllm"]), ratio(d["vllm"]), f">= {TARGETS['vllm']}x",
         _met(d["vllm"], best, TARGETS["vllm"])],
        ["llama.cpp, one request at a time", rate(d["llama.cpp"]), ratio(d["llama.cpp"]),
         f">= {TARGETS['llama.cpp']:.0f}x", _met(d["llama.cpp"], best, TARGETS["llama.cpp"])],
        [f"limit: decode-step matmuls alone ({d['auto_dtype']}, {limit['rows']} rows)", rate(limit),
         f"{best['tok_s'] / limit['tok_s']:.0%} of it", f">= {TARGETS['limit']:.0%}",
         "yes" if best["tok_s"] / limit["tok_s"] >= TARGETS["limit"] else "no"],
    ]
    notes = [f"{d['prompts']} prompts x {d['n']} samples x up to {d['max_new_tokens']} new tokens, T 0.7, top-p 0.9; "
             f"tokens/s counts generated tokens; medians of repeated runs; ratios are srlm's default dtype "
             f"(**{d['auto_dtype']}** on this processor) over each row.",
             f"The naive loop is timed on its first {d['naive']['sequences']} sequences (a rate)."
             f" The limit is {limit['gflop_s']:.1f} GFLOP/s at the decode shape ({limit['flops_per_token'] / 1e9:.3f} "
             f"GFLOP per token with attention over {limit['context']} positions)."]
    for name in ("vllm", "llama.cpp"):
        if d[name] is None:
            notes.append(f"{name}: not installed here (`make test-vllm` / `make bench-peers` sets it up), so not run.")
        elif "error" in d[name]:
            notes.append(f"{name}: failed: {d[name]['error']}")
        elif name == "llama.cpp":
            notes.append(f"llama.cpp {d[name].get('version')} with n_batch={d[name].get('n_batch')}, timed on "
                         f"{d[name]['sequences']} requests one at a time (a rate).")
    prof = d["profile"]
    where = table(["where one batch's time goes", "seconds", "share"],
                  [[k, f"{v:.2f}", f"{v / prof['wall_s']:.0%}"] for k, v in prof["seconds"].items()])
    return "\n".join(["## Generation throughput (tokens/s)", "",
                      table(["engine", "tok/s", "srlm's ratio", "target", "met"], rows), "", *notes, "",
                      f"Profile of one batch ({d['prompts']} prompts x {d['n']}, {prof['new_tokens']} new tokens, "
                      f"{d['auto_dtype']}, torch.profiler):", "", where, "",
                      "Largest other operators: " + ", ".join(f"`{k}` {v:.2f} s" for k, v in
                                                               prof.get("top_other_operators", {}).items()) + ".", "",
                      "Command: `python bench/generation.py`."])


def _met(peer, best, target) -> str:
    if not peer or not peer.get("tok_s"):
        return "-"
    return "yes" if best["tok_s"] / peer["tok_s"] >= target else f"no ({best['tok_s'] / peer['tok_s'] / target:.0%} of target)"


if __name__ == "__main__":
    main()
