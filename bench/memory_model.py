"""Training memory per device for srlm's SFT and DPO steps, from the standard formulas, and a check
of the formulas against peak memory measured on this CPU.

The model (per device, bytes):
  weights      P x weight bytes (16-bit or fp32), divided over the devices by ZeRO-3 / FSDP full
               shard, plus LoRA adapters (fp32) and, for full fine-tuning in 16-bit, an fp32 master
               copy of the trained weights (kept with the optimizer state)
  gradients    trained parameters x their bytes; DDP keeps a second copy in its communication
               buckets; divided by ZeRO-2, ZeRO-3 and FSDP
  optimizer    AdamW: two fp32 moments per trained parameter (+ the master copy above), divided by
               ZeRO-2, ZeRO-3 and FSDP (fused or per-parameter AdamW: no parameter-sized temporaries)
  activations  what backward keeps of each decoder layer per token, Llama-shaped (RMSNorm, grouped
               attention through SDPA's memory-efficient kernels, so no sequence-squared term, SwiGLU):
               (6 h + 2 kv + 4 i) values per token per layer; with gradient checkpointing only each
               layer's input (h) plus one layer recomputed in full
  logits       tokens x vocabulary x (activation bytes + 8): the LM head's output, its fp32 upcast
               for the loss and the loss's saved log-softmax
  gathered     ZeRO-3 / FSDP: two layers' full weights held while they compute (one prefetched)
DPO's policy runs chosen and rejected together (twice the tokens); srlm precomputes the reference
log-probs, so no reference model is held while training. A device also holds its runtime (the
CUDA context and the allocator's slack, about 1 GiB), counted once in the table.

    python bench/memory_model.py                       # the 7B / 70B table of docs/scale.md
    python bench/memory_model.py --check --out bench/results/memory_check.json
                                                       # predicted vs measured on this CPU, random models
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

GIB = 1024 ** 3
RUNTIME_GIB = 1.0   # per GPU: CUDA context and allocator slack (not part of the CPU check)


@dataclass(frozen=True)
class Shape:
    """A Llama-family decoder: what its parameter count and activations depend on."""
    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool

    @property
    def kv(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    def linears(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer of one decoder layer: q, k, v, o, gate, up, down."""
        h, kv, i = self.hidden, self.kv, self.intermediate
        return [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]

    def layer_params(self) -> int:
        return sum(a * b for a, b in self.linears()) + 2 * self.hidden   # two RMSNorm weights

    def params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return embeddings + self.layers * self.layer_params() + self.hidden   # final norm

    def lora_params(self, r: int) -> int:
        """PEFT's target_modules="all-linear": every linear of every layer, not the LM head."""
        return self.layers * sum(r * (a + b) for a, b in self.linears())

    def activation_values(self) -> int:
        """Values one decoder layer keeps for backward, per token (see the module docstring)."""
        return 6 * self.hidden + 2 * self.kv + 4 * self.intermediate


SMOLLM2_135M = Shape("SmolLM2-135M", 576, 30, 9, 3, 1536, 49152, True)
SMOLLM2_360M = Shape("SmolLM2-360M", 960, 32, 15, 5, 2560, 49152, True)
LLAMA2_7B = Shape("Llama-2-7B", 4096, 32, 32, 32, 11008, 32000, False)
LLAMA2_70B = Shape("Llama-2-70B", 8192, 80, 64, 8, 28672, 32000, False)

STRATEGIES = ("single", "ddp", "zero2", "zero3", "fsdp")
SHARDS_STATES = {"zero2", "zero3", "fsdp"}      # gradients and optimizer state divided over devices
SHARDS_WEIGHTS = {"zero3", "fsdp"}              # the weights too (FSDP: accelerate's FULL_SHARD)


@dataclass(frozen=True)
class Setup:
    strategy: str = "single"
    devices: int = 1
    method: str = "full"          # full | lora
    lora_r: int = 16
    checkpointing: bool = False
    weight_bytes: int = 2         # 2: weights loaded in bf16 (mixed precision, fp32 master); 4: fp32
    activation_bytes: int = 2
    micro_batch: int = 1
    seq_len: int = 2048
    dpo: bool = False


def predict(shape: Shape, s: Setup) -> dict[str, float]:
    """Bytes per device by component, and their total (without the device runtime)."""
    if s.strategy not in STRATEGIES:
        raise ValueError(f"strategy {s.strategy!r}: expected one of {', '.join(STRATEGIES)}")
    n = s.devices if s.strategy != "single" else 1
    weight_div = n if s.strategy in SHARDS_WEIGHTS else 1
    state_div = n if s.strategy in SHARDS_STATES else 1
    full = s.method == "full"
    trained = shape.params() if full else shape.lora_params(s.lora_r)
    trained_bytes = s.weight_bytes if full else 4          # LoRA adapters train in fp32
    master = 4 * trained if full and s.weight_bytes < 4 else 0
    tokens = s.micro_batch * s.seq_len * (2 if s.dpo else 1)
    per_layer = shape.activation_values() * s.activation_bytes * tokens
    if s.checkpointing:
        activations = shape.layers * shape.hidden * s.activation_bytes * tokens + per_layer
    else:
        activations = shape.layers * per_layer
    out = {
        "weights": shape.params() * s.weight_bytes / weight_div + (0 if full else 4 * trained),
        "gradients": trained * trained_bytes * (2 if s.strategy == "ddp" else 1) / state_div,
        "optimizer": (8 * trained + master) / state_div,
        "activations": activations,
        "logits": tokens * shape.vocab * (s.activation_bytes + 8),
        "gathered": 2 * shape.layer_params() * s.weight_bytes if s.strategy in SHARDS_WEIGHTS else 0,
    }
    out["total"] = sum(out.values())
    return out


# --- the table of docs/scale.md ---------------------------------------------------------------

def scale_table() -> str:
    rows = []
    for shape, devices in ((LLAMA2_7B, 8), (LLAMA2_70B, 64)):
        for strategy in ("single", "ddp", "zero2", "zero3", "fsdp"):
            for method in ("full", "lora"):
                cells = []
                for dpo in (False, True):
                    for ckpt in (False, True):
                        setup = Setup(strategy=strategy, devices=devices, method=method, checkpointing=ckpt, dpo=dpo)
                        cells.append(f"{predict(shape, setup)['total'] / GIB + RUNTIME_GIB:,.0f}")
                where = "1 GPU" if strategy == "single" else f"{devices} GPUs"
                rows.append(f"| {shape.name} | {strategy} ({where}) | {method} | " + " | ".join(cells) + " |")
    head = ("| model | strategy | method | SFT | SFT, checkpointing | DPO | DPO, checkpointing |\n"
            "| --- | --- | --- | --- | --- | --- | --- |")
    return head + "\n" + "\n".join(rows)


# --- the check on this CPU ----------------------------------------------------------------------

CHECK_SHAPES = {"135M": SMOLLM2_135M, "360M": SMOLLM2_360M}
CHECK = dict(micro_batch=2, seq_len=256, weight_bytes=4, activation_bytes=4)   # fp32 throughout, no autocast
# glibc serves every allocation over 128 KiB with its own mapping and unmaps it when freed, so the resident
# size follows the live tensors; with its default (a threshold that grows) freed activations stay resident
# and the peak is the allocator's, not the model's (the GPU analogue is the caching allocator's slack).
MEASURE_ENV = {"PYTHONWARNINGS": "ignore", "MALLOC_MMAP_THRESHOLD_": "131072"}


def _rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(shape: Shape, setup: Setup, steps: int = 2) -> dict:
    """Peak resident memory of `steps` optimizer steps over what the process held before the model was
    built, in this process (run each setting in a fresh one). The model is a randomly initialised Llama
    of `shape`, trained as srlm trains on a CPU: fp32, AdamW, SDPA attention; DPO as a sigmoid loss on
    the summed log-probs of chosen and rejected run together, the reference's taken as given."""
    import torch
    import torch.nn.functional as F
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    Path("/proc/self/clear_refs").write_text("5")   # reset the peak (VmHWM) to the current size
    before = _rss_bytes("VmRSS")
    config = LlamaConfig(hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                         num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
                         intermediate_size=shape.intermediate, vocab_size=shape.vocab,
                         tie_word_embeddings=shape.tied, attn_implementation="sdpa")
    model = LlamaForCausalLM(config)
    if setup.strategy == "ddp":   # one of the processes `torch.distributed.run` started (gloo on a CPU)
        torch.distributed.init_process_group("gloo")
    if setup.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if setup.method == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=setup.lora_r, lora_alpha=2 * setup.lora_r,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    if setup.strategy == "ddp":
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(trained, lr=1e-5)
    rows = setup.micro_batch * (2 if setup.dpo else 1)
    ids = torch.randint(0, shape.vocab, (rows, setup.seq_len))
    for _ in range(steps):
        if setup.dpo:
            logits = model(input_ids=ids).logits[:, :-1].float()
            logps = torch.gather(logits.log_softmax(-1), 2, ids[:, 1:, None]).squeeze(2).sum(-1)
            chosen, rejected = logps[: setup.micro_batch], logps[setup.micro_batch:]
            loss = -F.logsigmoid(0.1 * (chosen - rejected)).mean()
        else:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if setup.strategy == "ddp":
        torch.distributed.destroy_process_group()
    return {"peak_bytes": _rss_bytes("VmHWM") - before, "trained": sum(p.numel() for p in trained),
            "params": sum(p.numel() for p in model.parameters())}


def check_settings() -> list[tuple[str, Setup]]:
    """One process, every method: both models; DDP over two processes (the only strategy a CPU runs):
    the small one."""
    one = [(name, Setup(method=method, checkpointing=ckpt, dpo=dpo, **CHECK))
           for name in CHECK_SHAPES for method in ("full", "lora") for dpo in (False, True) for ckpt in (False, True)]
    return one + [("135M", Setup(strategy="ddp", devices=2, checkpointing=ckpt, **CHECK)) for ckpt in (False, True)]


def run_check(out: Path | None) -> list[dict]:
    results = []
    for name, setup in check_settings():
        # A fresh process per setting: its peak memory is its own.
        launch = [sys.executable] + (["-m", "torch.distributed.run", f"--nproc_per_node={setup.devices}"]
                                     if setup.strategy == "ddp" else [])
        proc = subprocess.run([*launch, __file__, "--measure", name, json.dumps(dataclasses.asdict(setup))],
                              capture_output=True, text=True, check=True, env={**os.environ, **MEASURE_ENV})
        ranks = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        measured = max(ranks, key=lambda r: r["peak_bytes"])   # the fullest process
        predicted = predict(CHECK_SHAPES[name], setup)
        row = {"model": name, **dataclasses.asdict(setup), **measured,
               "predicted_bytes": predicted["total"], "components": predicted,
               "error": predicted["total"] / measured["peak_bytes"] - 1}
        results.append(row)
        kind = "dpo" if setup.dpo else "sft"
        print(f"{name} {setup.strategy:6s} {setup.method:4s} {kind} ckpt={setup.checkpointing!s:5s} "
              f"measured {measured['peak_bytes'] / GIB:6.2f} GiB  predicted {predicted['total'] / GIB:6.2f} GiB  "
              f"error {row['error']:+.1%}", flush=True)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="measure on this CPU and compare with the formulas")
    parser.add_argument("--out", type=Path, help="--check: write the results as JSON here")
    parser.add_argument("--measure", nargs=2, metavar=("MODEL", "SETUP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        name, setup = args.measure
        print(json.dumps(measure(CHECK_SHAPES[name], Setup(**json.loads(setup)))))
    elif args.check:
        run_check(args.out)
    else:
        print(scale_table())


if __name__ == "__main__":
    main()
