"""Stages `sft_baseline` (M0 + IFT) and `sft` (M0 + IFT + EFT -> M1) with TRL's SFTTrainer.

The data is conversational prompt/completion, so the loss covers the completion tokens
only (TRL's default for that format; tests/test_sft.py checks the labels).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from . import runtime
from .errors import SrlmError
from .lineage import data_hashes, staging, write_manifest
from .params import Params, SftParams
from .training import lora_config, quiet, trainer_args, write_metrics

log = logging.getLogger(__name__)


def conversations(table) -> list[dict]:
    """(prompt, completion) rows -> TRL's conversational prompt/completion format."""
    return [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "completion": [{"role": "assistant", "content": r["completion"]}]} for r in table.to_pylist()]


def ift_rows(path: Path):
    return pq.read_table(path, columns=["prompt", "response"]).rename_columns(["prompt", "completion"])


def build_trainer(model, tokenizer, examples: list[dict], cfg: SftParams, seed: int, output_dir: Path) -> SFTTrainer:
    # Batches of similar lengths: IFT (~200 tokens) and EFT (~450) examples mixed at random
    # waste about a third of each step on padding.
    args = SFTConfig(**trainer_args(cfg, output_dir, seed), train_sampling_strategy="group_by_length")
    return quiet(SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                            processing_class=tokenizer, peft_config=lora_config(cfg)), "sft")


def train(*, name: str, base_dir: Path, examples: list[dict], data_name: str, data_files: list[Path],
          cfg: SftParams, seed: int, out_dir: Path, metrics_dir: Path, params_record: dict,
          extra: dict | None = None) -> dict:
    if not examples:
        raise SrlmError(f"{name}: no training examples in {', '.join(map(str, data_files))}")
    runtime.seed_everything(seed)
    model, tokenizer, _ = runtime.load(base_dir, for_training=True, dropout=cfg.dropout)
    with tempfile.TemporaryDirectory(prefix="srlm-sft-") as scratch:
        trainer = build_trainer(model, tokenizer, examples, cfg, seed, Path(scratch))
        dropped = len(examples) - len(trainer.train_dataset)
        if dropped:
            log.warning("%d of %d examples lost their whole response to sft.max_length=%d and are not trained on; "
                        "raise sft.max_length", dropped, len(examples), cfg.max_length)
        log.info("%s: %d examples from %s, %s fine-tuning", name, len(trainer.train_dataset), data_name, cfg.method)
        trainer.train()
        history = trainer.state.log_history
    training_data = {"name": data_name, **data_hashes(data_files), "examples": len(examples),
                     "dropped_too_long": dropped}
    with staging(out_dir) as tmp:
        runtime.save(trainer.model, tokenizer, tmp)
        manifest = write_manifest(tmp, name=out_dir.name, kind=f"sft-{cfg.method}", parent=base_dir,
                                  training_data=training_data, params=params_record, extra=extra)
    write_metrics(history, metrics_dir, {"examples": len(examples), "dropped_too_long": dropped})
    return manifest


def run(params: Params, *, name: str, base_dir: Path, ift_path: Path, eft_dir: Path | None, out_dir: Path,
        metrics_dir: Path) -> dict:
    examples = conversations(ift_rows(ift_path))
    files, data_name, extra = [ift_path], "IFT", None
    if eft_dir is not None:
        eft_path = eft_dir / "train.parquet"
        eft = pq.read_table(eft_path, columns=["prompt", "completion"])
        files.append(eft_path)
        data_name = "IFT+EFT" if eft.num_rows else "IFT (EFT fallback: no EFT examples)"
        examples += conversations(eft)
        extra = {"eft_examples": eft.num_rows}
    return train(name=name, base_dir=base_dir, examples=examples, data_name=data_name, data_files=files,
                 cfg=params.sft, seed=params.seed, out_dir=out_dir, metrics_dir=metrics_dir,
                 params_record={"sft": params.sft.model_dump(), "seed": params.seed}, extra=extra)
