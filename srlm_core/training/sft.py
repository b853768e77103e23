"""Supervised fine-tuning with TRL's SFTTrainer: from a base checkpoint and (prompt, completion)
examples to a saved model with its manifest and metrics (stages sft_baseline and sft; DPO's
positive-only ablation).

The data is conversational prompt/completion, so the loss covers the completion tokens
only (TRL's default for that format; tests/test_training.py::test_prompt_tokens_carry_no_loss
checks the labels).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from datasets import Dataset
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices
from trl import SFTConfig, SFTTrainer

from ..engine import runtime
from ..errors import SrlmError
from ..log.lineage import data_hashes, read_manifest, staging, write_manifest
from ..params import SftParams, TrainParams
from . import launch, loading
from .trainer import (
    ScheduleFromParams,
    finished_model,
    gradient_checkpointing,
    lora_config,
    quiet,
    trainer_args,
    training_journal,
    write_metrics,
)
from .trainer import train as train_resumably

log = logging.getLogger(__name__)


def conversations(table) -> list[dict]:
    """(prompt, completion) rows -> TRL's conversational prompt/completion format."""
    return [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "completion": [{"role": "assistant", "content": r["completion"]}]} for r in table.to_pylist()]


def sft_args(cfg: SftParams, output_dir: Path, seed: int, precision: torch.dtype = torch.float32,
             checkpointing: bool = False) -> SFTConfig:
    # Batches of similar lengths: IFT (~200 tokens) and EFT (~450) examples mixed at random
    # waste about a third of each step on padding.
    return SFTConfig(**trainer_args(cfg, output_dir, seed, precision, checkpointing),
                     train_sampling_strategy="group_by_length")


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """transformers' LengthGroupedSampler, whose order for epoch index >= 1 comes from a generator seeded with
    `seed + epoch` instead of the global RNG. transformers builds it without a generator, so each epoch draws
    its shuffle from the global RNG when iterated; a resume inside epoch 2 or later restores that RNG only after
    skipping the trained batches, so the resumed epoch got another order (some examples trained twice, others
    never). Epoch 0 still draws from the global RNG (or the sampler's generator), as before: runs of one epoch
    are unchanged, and they resumed exactly. The Trainer calls set_epoch each epoch, on a resume too (through
    accelerate's DataLoaderShard.set_epoch, past skip_first_batches' SkipBatchSampler)."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int, generator=None):
        super().__init__(batch_size, lengths=lengths, generator=generator)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.epoch == 0:
            return super().__iter__()
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class Trainer(ScheduleFromParams, SFTTrainer):
    """TRL's SFTTrainer with the schedule built from the arguments (trainer.ScheduleFromParams) and a
    group_by_length sampler whose later epochs resume in the same order (EpochSeededLengthGroupedSampler)."""

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is not LengthGroupedSampler:
            return sampler
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return EpochSeededLengthGroupedSampler(sampler.batch_size, sampler.lengths, seed, sampler.generator)


def build_trainer(model, tokenizer, examples: list[dict], cfg: SftParams, args: SFTConfig,
                  checkpoint_minutes: float | None = None) -> SFTTrainer:
    return quiet(Trainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                         processing_class=tokenizer, peft_config=lora_config(cfg)), "sft", checkpoint_minutes)


def train(*, name: str, base_dir: Path, examples: list[dict], data_name: str, data_files: list[Path],
          cfg: SftParams, train_cfg: TrainParams, seed: int, out_dir: Path, metrics_dir: Path, params_record: dict,
          extra: dict | None = None, save_dtype: torch.dtype = torch.float32,
          precision: torch.dtype = torch.float32) -> dict | None:
    """Train in `precision` (trainer_args) and write `out_dir` (weights in `save_dtype`) with its manifest and
    the metrics; the manifest, or None on the ranks other than the main one of a multi-process run (they
    train, then leave the writing to it)."""
    if not examples:
        raise SrlmError(f"{name}: no training examples in {', '.join(map(str, data_files))}")
    runtime.seed_everything(seed)
    files = data_hashes(data_files)
    params_record = {**params_record, "train": launch.record(train_cfg)}
    journal = training_journal(out_dir, read_manifest(base_dir)["hash"], files["hash"], params_record)
    args = sft_args(cfg, journal.dir, seed, precision, gradient_checkpointing(train_cfg))
    model, tokenizer = loading.load(base_dir, args, cfg, precision)
    trainer = build_trainer(model, tokenizer, examples, cfg, args, train_cfg.checkpoint_minutes)
    dropped = len(examples) - len(trainer.train_dataset)
    if dropped:
        log.warning("%d of %d examples lost their whole response to sft.max_length=%d and are not trained on; "
                    "raise sft.max_length", dropped, len(examples), cfg.max_length)
    log.info("%s: %d examples from %s, %s fine-tuning", name, len(trainer.train_dataset), data_name, cfg.method)
    launch.report(trainer, cfg)
    train_resumably(trainer, journal.dir)
    model = finished_model(trainer, journal.dir, save_dtype)
    if model is None:
        return None
    training_data = {"name": data_name, **files, "examples": len(examples), "dropped_too_long": dropped}
    with staging(out_dir) as tmp:
        runtime.save(model, tokenizer, tmp, save_dtype)
        manifest = write_manifest(tmp, name=out_dir.name, kind=f"sft-{cfg.method}", parent=base_dir,
                                  training_data=training_data, params=params_record, extra=extra)
    write_metrics(trainer.state.log_history, metrics_dir, {"examples": len(examples), "dropped_too_long": dropped})
    journal.clear()
    return manifest


def dtype_record(dtype: torch.dtype) -> dict:
    """model.dtype as resolved on this machine, for the manifest (auto names no dtype by itself)."""
    return {"dtype": str(dtype).removeprefix("torch.")}
