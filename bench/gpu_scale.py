"""Real model sizes on one GPU through srlm's own training code (issue 23 point 5).

1. A randomly initialised Llama of Llama-2-7B's shape (SmolLM2's vocabulary, so untied embeddings of
   49,152 rows) in bf16, LoRA r 16 on every linear layer and gradient checkpointing: an SFT run
   (`sft.train`) and a DPO run (`dpo.run`, reference log-probs precomputed). Peak GPU memory of each
   (torch.cuda.max_memory_allocated: tensors only, no CUDA context or allocator slack) against
   bench/memory_model.py's prediction for the same setup, and the SFT step's throughput as MFU.
2. A randomly initialised Llama of about 1B parameters, full fine-tuning (fp32 master weights, bf16
   autocast, as srlm trains), no checkpointing: the SFT step's MFU. Target: at least 40%.

A step's time is the difference between a run of `--steps` + 1 steps and a run of one step, so loading,
the first step's warm-up and saving drop out. MFU counts model FLOPs against the card's bf16 matmul rate
measured here: full fine-tuning 6 N per trained token; LoRA 4 N (forward and the input gradients; the
frozen weights get no weight gradients; recomputation is not counted); attention's own FLOPs are not
counted either (conservative). Throughput and MFU do not depend on the weights' values, so no weights
travel.

    python bench/gpu_scale.py --tokenizer models/M0 --out results.json        # on a GPU: 7b and 1b
    python bench/gpu_scale.py --tokenizer models/M0 --out /tmp/r.json --tiny  # anywhere: the code paths
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import resource
import shutil
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_loop import matmul_rate, text, timed  # noqa: E402
from memory_model import Setup, Shape, predict  # noqa: E402

from srlm_core.engine import runtime  # noqa: E402
from srlm_core.log.lineage import write_manifest  # noqa: E402
from srlm_core.params import parse_params  # noqa: E402
from srlm_core.steps import dpo  # noqa: E402
from srlm_core.storage import write_json, write_parquet  # noqa: E402
from srlm_core.training import sft  # noqa: E402

GIB = 1024 ** 3
MFU_TARGET = 0.40   # full fine-tuning of ~1B parameters; below it, the step is profiled
# name: (hidden, layers, heads, kv_heads, intermediate); the vocabulary is the tokenizer's, embeddings untied
SHAPES = {"llama2-7b": (4096, 32, 32, 32, 11008), "llama-1b": (2048, 22, 32, 4, 5632),
          "tiny": (64, 2, 4, 2, 128)}
# (shape, method, micro-batch, tokens per sequence): the runs on a GPU, and the same code paths --tiny
RUNS = {"gpu": [("llama2-7b", "lora", 4, 2048), ("llama-1b", "full", 8, 2048)],
        "tiny": [("tiny", "lora", 2, 128), ("tiny", "full", 2, 128)]}


def shape_of(name: str, vocab: int) -> Shape:
    hidden, layers, heads, kv_heads, intermediate = SHAPES[name]
    return Shape(name, hidden, layers, heads, kv_heads, intermediate, vocab, tied=False)


def build(tokenizer_dir: Path, shape: Shape, out: Path, device: str) -> int:
    """A random model of `shape` written to `out` in bf16 (built on `device`: seconds on a GPU for 7B)."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=shape.vocab, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                         num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
                         intermediate_size=shape.intermediate, max_position_embeddings=4096,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_manifest(out, name=out.name, kind="base", parent=None, training_data=None, params={})
    del model
    return params


def peak_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float:
    """Peak tensor memory on the GPU since peak_reset; on a CPU the process's peak resident size."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def trained_tokens(metrics_dir: Path) -> float:
    """Tokens the trainer counted over the run (train_log.csv's cumulative num_tokens)."""
    with (metrics_dir / "train_log.csv").open() as f:
        return float(list(csv.DictReader(f))[-1]["num_tokens"])


def sft_step(model_dir: Path, scratch: Path, method: str, batch: int, length: int, steps: int,
             checkpointing: bool, flops_per_token: float, rate: float, profile_below: float | None = None) -> dict:
    """Seconds, trained tokens, MFU (`flops_per_token` against the card's `rate`) and peak memory of one
    SFT step (the difference of two runs). With `profile_below`: when the step's MFU is under it (or
    unmeasured), a third run of one step under torch.profiler, its costliest operators (by device
    time) as a table."""
    words = length - 64   # one token per word in these texts; prompt and chat template fill the rest
    examples = sft.conversations(pa.table({"prompt": [f"Q{i}: {text(i, 12)}" for i in range(batch * (steps + 1))],
                                           "completion": [text(i, words) for i in range(batch * (steps + 1))]}))

    def run(n: int) -> tuple[float, Path]:
        params = parse_params({"sft": {"method": method, "batch_size": batch, "grad_accum": 1, "max_steps": n,
                                       "max_length": length},
                               "train": {"gradient_checkpointing": checkpointing}})
        metrics, out = scratch / f"sft-{method}-{n}", scratch / f"S-{method}-{n}"
        _, seconds = timed(lambda: sft.train(
            name="S", base_dir=model_dir, examples=examples, data_name="synthetic", data_files=[], cfg=params.sft,
            train_cfg=params.train, seed=0, out_dir=out, metrics_dir=metrics,
            params_record={}, save_dtype=torch.bfloat16, precision=runtime.compute_dtype()))
        shutil.rmtree(out)   # 13.5 GB a 7B model: the disk holds a few
        return seconds, metrics

    one, one_metrics = run(1)
    peak_reset()
    more, more_metrics = run(steps + 1)
    # Two whole runs' difference: on a busy CPU with a tiny model, the noise can exceed the steps'
    # time; then there is no measurement (None), not a negative rate.
    seconds = (more - one) / steps if more > one else None
    tokens = (trained_tokens(more_metrics) - trained_tokens(one_metrics)) / steps
    mfu = flops_per_token * tokens / seconds / rate if seconds else None
    result = {"seconds_per_step": seconds, "tokens_per_step": tokens, "mfu": mfu, "peak_gib": peak_gib(),
              "final_loss": json.loads((more_metrics / "train.json").read_text())["final_loss"]}
    if profile_below is not None and (mfu is None or mfu < profile_below):
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            run(1)
        sort = "cuda_time_total" if torch.cuda.is_available() else "cpu_time_total"
        result["profile"] = prof.key_averages().table(sort_by=sort, row_limit=30)
    return result


def dpo_run(model_dir: Path, scratch: Path, batch: int, length: int, steps: int) -> dict:
    """Seconds (load, reference pass, steps, merge and save) and peak memory of a LoRA DPO run."""
    half = length // 2 - 48
    n = batch * steps
    aift = scratch / "aift"
    write_parquet(pa.table({"prompt_id": [str(i) for i in range(n)], "prompt": [f"Q{i}: {text(i, 12)}" for i in range(n)],
                            "chosen": [text(i, half) for i in range(n)],
                            "rejected": [text(i + 1, half) for i in range(n)]}), aift / "train.parquet")
    write_json({"mode": "dpo", "skipped": {}, "judge_model": "x"}, aift / "summary.json")
    params = parse_params({"dpo": {"method": "lora", "batch_size": batch, "grad_accum": 1, "max_steps": steps,
                                   "max_length": length},
                           "train": {"gradient_checkpointing": True}, "model": {"dtype": "bfloat16"}})
    peak_reset()
    manifest, seconds = timed(lambda: dpo.run(params, prev_dir=model_dir, aift_dir=aift, out_dir=scratch / "D",
                                              metrics_dir=scratch / "md"))
    metrics = json.loads((scratch / "md" / "train.json").read_text())
    shutil.rmtree(scratch / "D")
    return {"seconds_incl_load_save": seconds, "steps": metrics["steps"], "final_loss": metrics["final_loss"],
            "peak_gib": peak_gib(), "kind": manifest["kind"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes: the code paths, on any machine")
    parser.add_argument("--steps", type=int, default=2, help="timed steps (the run of one step is subtracted)")
    parser.add_argument("--only", choices=sorted(SHAPES), help="only the runs of this shape")
    parser.add_argument("--profile", action="store_true", help="profile the full fine-tuning step whatever its MFU")
    parser.add_argument("--scratch", type=Path, help="where the models go (default: a temporary folder)")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    rate = matmul_rate()
    vocab = len(AutoTokenizer.from_pretrained(args.tokenizer))
    report: dict = {"device": torch.cuda.get_device_name() if cuda else platform.processor(),
                    "torch": torch.__version__, "compute_dtype": str(runtime.compute_dtype()),
                    "matmul_bf16_tflops": rate / 1e12, "runs": []}
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        for name, method, batch, length in RUNS["tiny" if args.tiny else "gpu"]:
            if args.only and name != args.only:
                continue
            shape = shape_of(name, vocab)
            work = Path(scratch) / f"{name}-{method}"
            model_dir = work / "M"
            _, build_s = timed(lambda: build(args.tokenizer, shape, model_dir, "cuda" if cuda else "cpu"))
            lora = method == "lora"
            per_token = (4 if lora else 6) * shape.params()
            step = sft_step(model_dir, work, method, batch, length, args.steps, checkpointing=lora,
                            profile_below=None if lora else (1.0 if args.profile else MFU_TARGET),
                            flops_per_token=per_token, rate=rate)
            row = {"shape": name, "parameters": shape.params(), "method": method, "micro_batch": batch,
                   "sequence_tokens": length, "gradient_checkpointing": lora, "build_s": build_s,
                   "sft": {**step, "flops_per_token": per_token,
                           # srlm loads LoRA's base in bf16 and full fine-tuning in fp32 (training.loading)
                           "predicted_gib": predict(shape, Setup(method=method, checkpointing=lora,
                                                                 weight_bytes=2 if lora else 4,
                                                                 micro_batch=batch, seq_len=length))["total"] / GIB}}
            if lora:
                row["dpo"] = {**dpo_run(model_dir, work, batch // 2 or 1, length, args.steps),
                              "predicted_gib": predict(shape, Setup(method="lora", checkpointing=True,
                                                                    micro_batch=batch // 2 or 1, seq_len=length,
                                                                    dpo=True))["total"] / GIB}
            shutil.rmtree(model_dir)
            report["runs"].append(row)
            print(json.dumps(row, indent=1), flush=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
