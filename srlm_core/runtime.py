"""Loading and saving checkpoints for the loop: dtype by capability, seeding, threads."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from .errors import SrlmError
from .lineage import read_manifest

log = logging.getLogger(__name__)


def compute_dtype(choice: str = "auto") -> torch.dtype:
    """bf16 only where the hardware has native bf16 matmuls (CUDA with bf16, CPUs with AMX or
    AVX512-BF16); fp32 otherwise. Emulated bf16 on an AVX2-only CPU is slower than fp32 and loses
    precision. `choice` (generation.dtype) or the SRLM_DTYPE variable overrides the detection."""
    forced = os.environ.get("SRLM_DTYPE") or (None if choice == "auto" else choice)
    if forced:
        return getattr(torch, forced)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_flags() & {"amx_bf16", "avx512_bf16"} else torch.float32


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


def load(model_dir: Path | str, *, for_training: bool = False, dropout: float = 0.0, dtype: torch.dtype | None = None):
    """A model folder written by srlm -> (model, tokenizer, manifest hash)."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    dtype = torch.float32 if for_training else dtype or compute_dtype()
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        raise SrlmError(f"{model_dir}: cannot load the checkpoint ({exc}); re-run the stage that writes it") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if hasattr(model.config, "attention_dropout"):
        model.config.attention_dropout = dropout
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.train(for_training)
    return model, tokenizer, manifest["hash"]


def save(model, tokenizer, folder: Path | str) -> None:
    """Write a standalone checkpoint: LoRA adapters merged, dropout back to the base value."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if hasattr(model.config, "attention_dropout"):
        model.config.attention_dropout = 0.0
    model = model.to("cpu", dtype=torch.float32)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
