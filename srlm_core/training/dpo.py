"""DPO with TRL's DPOTrainer as srlm runs it: preference rows in TRL's conversational format, the
trainer's arguments, and the trainer with the reference log-probs precomputed in eval mode."""

from __future__ import annotations

from pathlib import Path

import torch
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from ..params import DpoParams
from .trainer import ScheduleFromParams, lora_config, quiet, trainer_args


def preference_rows(table) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in table.to_pylist()]


def dpo_args(cfg: DpoParams, output_dir: Path, seed: int, precision: torch.dtype,
             checkpointing: bool = False) -> DPOConfig:
    # TRL's disable_dropout zeroes nn.Dropout modules only; Llama's attention dropout is not one, so
    # dpo.dropout alone decides it (runtime.load). Off here, so LoRA's dropout follows dpo.dropout too.
    # One pair per eval batch: TRL logs each eval batch's mean reward accuracy and margin and evaluate()
    # averages those means, so with larger batches a short last batch would weigh its pairs more.
    return DPOConfig(**trainer_args(cfg, output_dir, seed, precision, checkpointing), beta=cfg.beta,
                     precompute_ref_log_probs=True, disable_dropout=False, per_device_eval_batch_size=1)


class Trainer(ScheduleFromParams, DPOTrainer):
    """TRL's DPOTrainer with the schedule built from the arguments (trainer.ScheduleFromParams)."""


def build_trainer(model, tokenizer, dataset: Dataset, args: DPOConfig, cfg: DpoParams,
                  checkpoint_minutes: float | None = None) -> DPOTrainer:
    """The trainer, with the reference log-probs already computed. They are computed with the model in
    eval mode: the reference is Mt as it generates and judges, without dropout, whatever dpo.dropout
    gives the policy (each training step switches the model back to train mode). Computed in train
    mode, each reference log-prob would carry a dropout draw of its own, which the policy can never
    match: docs/dropout.md measures both.

    The training pairs are also the eval set, so that `pair_metrics` can score the trained policy on
    all of them (the logged step figures cover one batch each); their reference log-probs are
    precomputed the same way, one pair at a time."""
    model.eval()
    trainer = Trainer(model=model, ref_model=None, args=args, train_dataset=dataset, eval_dataset=dataset,
                      processing_class=tokenizer, peft_config=lora_config(cfg))
    return quiet(trainer, "dpo", checkpoint_minutes)


def pair_metrics(trainer: DPOTrainer) -> dict:
    """The trained policy on every training pair, in eval mode (no dropout): the DPO loss, the share of
    pairs whose implicit reward beta * log(pi/pi_ref) is higher for the chosen reply, and the mean
    margin. Before training the loss is ln 2 and the margin 0; how far they moved is what DPO did.
    Every process takes part (the figures are gathered across ranks)."""
    result = trainer.evaluate()
    return {"pairs_loss": result["eval_loss"], "pairs_reward_accuracy": result["eval_rewards/accuracies"],
            "pairs_reward_margin": result["eval_rewards/margins"]}
