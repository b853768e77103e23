"""How a training process gets its model: in the dtype its method needs, read only where its strategy
needs it, and left for the Trainer to place.

The trainer's arguments are built first: building them registers a DeepSpeed ZeRO-3 config
(transformers' HfDeepSpeedConfig, from accelerate's environment), so that from_pretrained builds the
model partitioned (zero.Init), and asking for their device starts the process group. Under FSDP with
`fsdp_cpu_ram_efficient_loading`, only global rank 0 reads the weights; every other rank builds the model
with uninitialized parameters (runtime.unread_parameters), and accelerate broadcasts rank 0's values shard
by shard when it wraps the model (fsdp2_prepare_model). transformers 5 reads the whole checkpoint on every rank despite that
setting (huggingface/transformers#43749), so srlm decides which rank reads, as accelerate expects."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from ..engine import runtime
from ..params import DpoParams, SftParams
from .launch import RAM_EFFICIENT

log = logging.getLogger(__name__)


def weights_dtype(method: str, precision: torch.dtype) -> torch.dtype:
    """full: fp32 master weights whatever the precision, since bf16 weights round away small updates
    (docs/dpo-profile.md; bf16 runs autocast over them). lora: the frozen base in `precision` (half the
    memory in bf16); PEFT keeps the trained adapters in fp32."""
    return precision if method == "lora" else torch.float32


def ram_efficient_loading() -> bool:
    """Whether FSDP fills every rank but rank 0 from rank 0's weights (see above). accelerate sets both
    variables from the config; launch._as_rank clears the second on a CPU, where accelerate does not shard."""
    return all(os.environ.get(name, "false").lower() == "true" for name in ("ACCELERATE_USE_FSDP", RAM_EFFICIENT))


def load(model_dir: Path, args, cfg: SftParams | DpoParams, precision: torch.dtype):
    """(model, tokenizer) for training with `args` (the SFTConfig or DPOConfig it will train with)."""
    args.device   # noqa: B018 -- starts the process group before the weights are read (see above)
    from_rank0 = ram_efficient_loading()
    model, tokenizer, _ = runtime.load(model_dir, for_training=True, dropout=cfg.dropout,
                                       dtype=weights_dtype(cfg.method, precision),
                                       weights=not from_rank0 or args.process_index == 0)
    if from_rank0 and args.world_size > 1 and args.process_index == 0:
        log.info("FSDP RAM-efficient loading: rank 0 read the weights; the other %d ranks start without them and "
                 "receive their shards from it", args.world_size - 1)
    return model, tokenizer
