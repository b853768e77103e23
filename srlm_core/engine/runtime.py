"""Loading and saving checkpoints for the loop: dtype by capability, seeding, threads."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from ..errors import SrlmError
from ..log.lineage import read_manifest
from . import mkl_dispatch

log = logging.getLogger(__name__)


def compute_dtype(choice: str = "auto") -> torch.dtype:
    """The precision models are trained and run in. auto: bf16 on CUDA GPUs with bf16, fp32 on CPUs.

    Not bf16 on CPUs even where they have bf16 units (AMX, AVX512-BF16; 1.76x faster generation): the
    CPU-sized DPO profile (a dozen steps at lr 5e-6) moves a weight by ~4e-5 in all, below bf16's spacing
    (~5e-4 at the median weight), so a bf16 model runs as if barely trained: on the real-data pairs the
    policy trained in fp32 reaches a DPO loss of 0.156, the same weights run in bf16 0.628
    (docs/dpo-profile.md). GPU-scale runs take many more steps. `choice` (generation.dtype) or the
    SRLM_DTYPE variable overrides this; an explicit bfloat16 on a CPU without bf16 units is emulated (slow)."""
    forced = os.environ.get("SRLM_DTYPE") or (None if choice == "auto" else choice)
    if forced:
        return getattr(torch, forced)
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def native_bf16() -> bool:
    """Whether bf16 matmuls run natively here (CUDA with bf16, CPUs with AMX or AVX512-BF16); elsewhere
    bf16 is emulated and slower than fp32."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def unread_parameters(model) -> None:
    """Give every parameter on the meta device its own uninitialized CPU storage, keeping tied ones tied.
    accelerate's FSDP2 preparation expects this of the ranks that do not read the checkpoint ("non-main ranks
    only have torch.empty"): it maps the optimizer's parameters to their shards by data_ptr(), which is 0 for
    every meta tensor, so on meta all of a rank's optimizer entries would map to one shard and the rank's
    other shards would never be trained. Untouched, the pages of large tensors are not committed: the rank
    holds address space, not the model's memory, until accelerate moves it to meta and fills its shards."""
    made: dict[int, torch.nn.Parameter] = {}
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if param.device.type == "meta":
                if id(param) not in made:
                    made[id(param)] = torch.nn.Parameter(torch.empty_like(param, device="cpu"),
                                                         requires_grad=param.requires_grad)
                module.register_parameter(name, made[id(param)])


def load(model_dir: Path | str, *, for_training: bool = False, dropout: float = 0.0, dtype: torch.dtype | None = None,
         weights: bool = True):
    """A model folder written by srlm -> (model, tokenizer, manifest hash), on the GPU if there is one. For
    training (training.loading): in `dtype` (default fp32), in train mode, with attention dropout `dropout`
    (see set_attention_dropout), and left where from_pretrained put it: the Trainer moves it to its device,
    and FSDP and DeepSpeed shard it from there. Without `weights`: the model built from its config, nothing
    read, its parameters uninitialized (see unread_parameters) and its computed buffers (rotary frequencies) real."""
    mkl_dispatch.settle()   # before the model's first threaded cos (mkl_dispatch)
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    dtype = dtype or (torch.float32 if for_training else compute_dtype())
    try:
        if weights:
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, trust_remote_code=False)
        else:
            from accelerate import init_empty_weights

            config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
            with init_empty_weights(include_buffers=False):
                model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=False)
            unread_parameters(model)
            model.tie_weights()   # from_pretrained ties them after loading; from_config on meta does not
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        raise SrlmError(f"{model_dir}: cannot load the checkpoint ({exc}); re-run the stage that writes it") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if for_training:
        set_attention_dropout(model, dropout)
    elif torch.cuda.is_available():
        model = model.to("cuda")
    model.train(for_training)
    return model, tokenizer, manifest["hash"]


def set_attention_dropout(model, p: float) -> None:
    """Set the dropout each attention layer applies in train mode.

    Llama-family attention layers copy `config.attention_dropout` when they are built and read
    only their copy, so changing the config of a loaded model changes nothing. The config is left
    as the checkpoint has it, so a saved model's config is its base's."""
    layers = [m for m in model.modules() if hasattr(m, "attention_dropout")]
    for layer in layers:
        layer.attention_dropout = p
    if p and not layers:
        log.warning("%s has no attention dropout to set; training without dropout", type(model).__name__)


def checkpoint_dtype(model_dtype: str, generation_dtype: str) -> torch.dtype:
    """The dtype checkpoints are written in: `model.dtype`, where auto is the dtype that
    `generation.dtype` resolves to (so the stages that load a checkpoint read it as written)."""
    return compute_dtype(generation_dtype) if model_dtype == "auto" else getattr(torch, model_dtype)


def save(model, tokenizer, folder: Path | str, dtype: torch.dtype = torch.float32) -> None:
    """Write a standalone checkpoint in `dtype`: LoRA adapters merged. Training keeps fp32 master
    weights; they are cast only here."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model = model.to("cpu", dtype=dtype)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
