"""The loop's generation, judging and training paths on whatever accelerator is present.

Builds a randomly initialised Llama-architecture model (no weights needed: throughput does
not depend on their values) with SmolLM2's tokenizer, then times srlm's own code paths:
batched sampling (candidates) with a dynamic and a static KV cache, the cached judge, an SFT
step and a DPO step. Reports tokens/s and the training step's model-FLOPs utilisation against
a measured bf16 matmul rate.

    python bench/gpu_loop.py --tokenizer models/M0 --out results.json [--size 0.4b|tiny]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from srlm_core.engine import runtime
from srlm_core.engine.backend import Sampling
from srlm_core.engine.prompts import chat_prompt_ids
from srlm_core.engine.transformers_backend import TransformersGenerator, sample
from srlm_core.judges.judge import Judge, Template
from srlm_core.log.lineage import write_manifest
from srlm_core.params import JudgeParams, parse_params
from srlm_core.steps import dpo
from srlm_core.storage import write_json, write_parquet
from srlm_core.training import sft

SIZES = {
    "0.4b": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                 num_key_value_heads=4),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
}
WORDS = "the model explains how a plan helps people learn new skills while keeping careful notes".split()


def text(i: int, n: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n))


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def matmul_rate(n: int = 8192) -> float:
    """Measured dense bf16 matmul rate (FLOP/s), the ceiling for MFU."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = n if device == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync()
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    sync()
    return 10 * 2 * n**3 / (time.perf_counter() - start)


def build(tokenizer_dir: Path, size: str, out: Path) -> tuple[Path, int]:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=4096, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **SIZES[size])
    model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_manifest(out, name="M1", kind="base", parent=None, training_data=None, params={})
    return out, params


def timed(fn):
    sync()
    start = time.perf_counter()
    result = fn()
    sync()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", choices=sorted(SIZES), default="0.4b")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    report: dict = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor(),
                    "torch": torch.__version__, "dtype": str(runtime.compute_dtype()), "size": args.size}
    report["matmul_bf16_tflops"] = matmul_rate() / 1e12
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model_dir, n_params = build(args.tokenizer, args.size, scratch / "M1")
        report["parameters"] = n_params
        model, tokenizer, _ = runtime.load(model_dir)

        # candidates: prompts x 4 samples x 128 new tokens (a random model almost never samples EOS), with
        # the dynamic KV cache and with the static one (transformers then compiles the decode step); the
        # first run of each includes warm-up (and compilation), the median of the next `repeats` counts.
        prompts = [chat_prompt_ids(tokenizer, f"Question {i}: {text(i, 12)}?") for i in range(args.prompts)]
        sampling = Sampling(0.7, 0.9, 128)
        for cache in ("dynamic", "static"):
            try:
                runs = [timed(lambda: sample(model, tokenizer, prompts, n=4, sampling=sampling, seed=0,
                                             batch_size=args.prompts, label=f"candidates ({cache} cache)",
                                             static_cache=cache == "static")) for _ in range(1 + args.repeats)]
            except Exception as exc:   # a compile failure is a finding to report, not a reason to stop
                report[f"candidates_{cache}_cache"] = {"error": repr(exc)[:2000]}
                continue
            seconds = statistics.median(t for _, t in runs[1:])
            tokens = sum(s.num_tokens for row in runs[-1][0] for s in row)
            report[f"candidates_{cache}_cache"] = {
                "rows": len(prompts) * 4, "new_tokens": tokens, "first_run_s": runs[0][1], "seconds": seconds,
                "tokens_per_s": tokens / seconds,
                # the first run may pick other kernels (autotuning, compilation); the warm ones must agree
                "warm_runs_identical": all(r == runs[1][0] for r, _ in runs[2:])}

        # judge: 32 candidates x 3 samples, probability scoring, shared rubric cached
        judge = Judge(TransformersGenerator(model, tokenizer, "bench"), Template.load(JudgeParams().template),
                      method="probability", samples=3, sampling=Sampling(0.7, 0.9, 64), max_prompt_tokens=128,
                      max_response_tokens=192)
        items = [(f"Question {i}", text(i, 100)) for i in range(32)]
        results, seconds = timed(lambda: judge.judge(items, seed=0, batch_size=32))
        report["judge"] = {"candidates": 32, "samples": 3, "seconds": seconds,
                           "all_scored": all(j.score is not None for r in results for j in r)}
        # the cached path against one uncached forward of the same tokens
        prompt, response = items[0]
        first = results[0][0]
        tail = " " if first.raw_output.rstrip().endswith("Score:") else "\nScore: "
        ids = [*judge.prefix_ids, *judge.suffix_ids(prompt, response),
               *tokenizer(first.raw_output, add_special_tokens=False).input_ids,
               *tokenizer(tail, add_special_tokens=False).input_ids]
        with torch.inference_mode():
            logits = model(torch.tensor([ids], device=model.device)).logits[0, -1].float()
        probs = torch.softmax(logits, -1)[judge.digits]
        report["judge"]["cached_vs_uncached_score"] = [first.score, float((probs / probs.sum() *
                                                                           torch.arange(6, device=probs.device)).sum())]
        del model

        # SFT: 8 x 512-token examples a step; the per-step time is the difference between a
        # 12-step and a 2-step run, so loading and saving drop out.
        examples = sft.conversations(pa.table({"prompt": [f"Q{i}: {text(i, 20)}" for i in range(96)],
                                               "completion": [text(i, 380) for i in range(96)]}))

        def sft_run(steps: int) -> float:
            params = parse_params({"sft": {"batch_size": 8, "grad_accum": 1, "max_steps": steps, "max_length": 512}})
            _, seconds = timed(lambda: sft.train(name="S", base_dir=model_dir, examples=examples,
                                                 data_name="synthetic", data_files=[], cfg=params.sft, train_cfg=params.train, seed=0,
                                                 out_dir=scratch / f"S{steps}", metrics_dir=scratch / f"ms{steps}",
                                                 params_record={},
                                                 precision=runtime.compute_dtype()))
            return seconds

        sft_run(1)   # warm-up: CUDA context, kernels, allocator
        short, long = sft_run(2), sft_run(12)
        step = (long - short) / 10
        tokens = 8 * 512
        metrics = json.loads((scratch / "ms12" / "train.json").read_text())
        report["sft"] = {"steps": metrics["steps"], "final_loss": metrics["final_loss"], "seconds_per_step": step,
                         "tokens_per_step": tokens, "trained_tokens_per_s": tokens / step,
                         "mfu": 6 * n_params * tokens / step / (report["matmul_bf16_tflops"] * 1e12)}

        # DPO: 2 steps of 8 pairs, reference log-probs precomputed
        aift = scratch / "aift"
        write_parquet(pa.table({"prompt_id": [str(i) for i in range(16)], "prompt": [f"Q{i}" for i in range(16)],
                                "chosen": [text(i, 200) for i in range(16)],
                                "rejected": [text(i + 1, 150) for i in range(16)]}), aift / "train.parquet")
        write_json({"mode": "dpo", "skipped": {}, "judge_model": "x"}, aift / "summary.json")
        params = parse_params({"dpo": {"batch_size": 8, "grad_accum": 1, "max_steps": 2, "max_length": 512}})
        manifest, seconds = timed(lambda: dpo.run(params, prev_dir=model_dir, aift_dir=aift, out_dir=scratch / "M2",
                                                  metrics_dir=scratch / "md"))
        metrics = json.loads((scratch / "md" / "train.json").read_text())
        report["dpo"] = {"steps": metrics["steps"], "final_loss": metrics["final_loss"],
                         "seconds_incl_load_save": seconds, "kind": manifest["kind"]}
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
