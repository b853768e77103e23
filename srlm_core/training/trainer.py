"""What SFT and DPO training share: the paper's schedule as TRL arguments, LoRA, step
logging, the stop on a NaN or infinite loss, resumable checkpoints, the trained model
on the main process of a multi-process run, and the training metrics written for DVC."""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import math
import re
import shutil
import time
from pathlib import Path

import torch
from datasets import Dataset, load_from_disk
from peft import LoraConfig
from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback
from transformers.optimization import _get_polynomial_decay_schedule_with_warmup_lr_lambda as polynomial
from transformers.trainer_callback import PrinterCallback

from ..errors import SrlmError
from ..journal import Journal
from ..params import DpoParams, SftParams, TrainParams
from ..storage import atomic_write_bytes, write_json
from . import launch

log = logging.getLogger(__name__)
# Wall-clock fields vary run to run; they go to the log, not to the (byte-reproducible) metrics.
TIMING_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second")


def trainer_args(cfg: SftParams | DpoParams, output_dir: Path, seed: int, precision: torch.dtype,
                 checkpointing: bool = False) -> dict:
    """Keyword arguments shared by SFTConfig and DPOConfig: linear decay from learning_rate to
    lr_end, effective batch batch_size x grad_accum x processes, deterministic seeds, bf16 autocast over
    fp32 master weights when `precision` (the dtype the run's models are run in) is bf16, gradient
    checkpointing when `checkpointing` (train.gradient_checkpointing; transformers 5 calls it
    activation_checkpointing, the old name goes in v6). Checkpoints are saved into output_dir only
    when CheckpointEvery asks (the latest one is kept)."""
    return dict(
        output_dir=str(output_dir), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate, lr_scheduler_type="polynomial",
        lr_scheduler_kwargs={"lr_end": cfg.lr_end, "power": 1.0}, warmup_steps=0, max_length=cfg.max_length,
        # TRL defaults to bf16 and gradient checkpointing; srlm trains in the precision it runs the models in.
        # Non-reentrant checkpointing: the one PyTorch recommends, and it keeps the RNG state for dropout.
        bf16=precision == torch.bfloat16, activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        use_cpu=not torch.cuda.is_available(),
        report_to="none", save_strategy="no", save_total_limit=1, logging_steps=1, seed=seed, data_seed=seed,
        dataloader_num_workers=0, disable_tqdm=True,
        # Several processes: DDP; every parameter takes part in the loss, so skip the search for unused ones.
        ddp_find_unused_parameters=False,
        # The default filter logs a NaN/inf loss as the window's mean, which would hide it from StopOnNonFinite.
        logging_nan_inf_filter=False)


class ScheduleFromParams:
    """Trainer mixin: the schedule of trainer_args (polynomial, power 1: learning_rate falling linearly to
    lr_end), with transformers' own step function, but its start taken from the arguments. transformers
    reads it from optimizer.defaults, which DeepSpeed's ZeRO optimizers do not have: every DeepSpeed run
    failed before its first step. Elsewhere the two are the same number, so the schedule is unchanged."""

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            kwargs = self.args.lr_scheduler_kwargs
            step = functools.partial(polynomial, num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                                     num_training_steps=num_training_steps, lr_end=kwargs["lr_end"],
                                     power=kwargs["power"], lr_init=self.args.learning_rate)
            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, step)
            self._created_lr_scheduler = True
        return self.lr_scheduler


def gradient_checkpointing(train: TrainParams) -> bool:
    """train.gradient_checkpointing resolved: auto is on with CUDA only."""
    choice = train.gradient_checkpointing
    return torch.cuda.is_available() if choice == "auto" else choice


def shared_dataset(rows: list[dict], folder: Path, args) -> Dataset:
    """The training rows as a Dataset. With several processes it is written to `folder` by the main one and
    read by all, so every rank's dataset lives in the same files: TRL's DPO precompute writes the reference
    log-probs as a cache file beside the dataset's files on the main process only and the others read it,
    but an in-memory dataset keeps its cache in a temporary folder of each process."""
    if args.world_size <= 1:
        return Dataset.from_list(rows)
    with args.main_process_first(local=False, desc="training data"):
        if args.process_index == 0:
            shutil.rmtree(folder, ignore_errors=True)
            Dataset.from_list(rows).save_to_disk(str(folder))
    return load_from_disk(str(folder))


def lora_config(cfg: SftParams | DpoParams) -> LoraConfig | None:
    if cfg.method != "lora":
        return None
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules="all-linear",
                      lora_dropout=cfg.dropout, task_type="CAUSAL_LM")


def quiet(trainer, section: str, checkpoint_minutes: float | None = None):
    """Replace the trainer's raw dict printing (on when tqdm is off) with StepLog's lines, stop on a
    NaN or infinite loss, and save checkpoints every `checkpoint_minutes` (None: never). `section`
    is the params section of the run's settings (sft, dpo)."""
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(StepLog())
    trainer.add_callback(StopOnNonFinite(section))
    if checkpoint_minutes is not None:
        trainer.add_callback(CheckpointEvery(checkpoint_minutes))
    return trainer


class CheckpointEvery(TrainerCallback):
    """Ask for a checkpoint at the first step `minutes` after the last one (0: every step), but
    not at the last step: the stage writes the finished model itself. With several processes the
    main one's clock decides for all: saving a checkpoint includes collective operations, which
    hang or mismatch if only some ranks save."""

    def __init__(self, minutes: float):
        self.seconds = 60 * minutes
        self.last = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        due = state.global_step < state.max_steps and time.monotonic() - self.last >= self.seconds
        if args.world_size > 1:
            from accelerate.utils import broadcast_object_list

            due = broadcast_object_list([due], from_process=0)[0]
        if due:
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        self.last = time.monotonic()


CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_checkpoint(folder: Path, prune: bool = True) -> Path | None:
    """The newest complete checkpoint in `folder`. The Trainer writes trainer_state.json last, so a
    folder without a readable one was cut off by a kill; such folders are removed (`prune`: only the
    main process of a multi-process run removes them; every rank picks the same checkpoint)."""
    found = sorted(((int(m.group(1)), p) for p in folder.glob("checkpoint-*") if (m := CHECKPOINT.match(p.name))),
                   reverse=True)
    for _, path in found:
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            return path
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            if prune:
                shutil.rmtree(path, ignore_errors=True)
    return None


def training_journal(out_dir: Path, base_hash: str, data_hash: str, params_record: dict) -> Journal:
    """Where the checkpoints of the run that trains `out_dir` from this base, data and params live."""
    return Journal(f"train@{out_dir.name}", {"base": base_hash, "data": data_hash, "params": params_record})


def train(trainer, folder: Path) -> None:
    """trainer.train(), resumed from the newest complete checkpoint in `folder` if a killed run left one."""
    checkpoint = last_checkpoint(folder, prune=trainer.is_world_process_zero())
    if checkpoint is not None:
        log.info("resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=None if checkpoint is None else str(checkpoint))


def finished_model(trainer, folder: Path, dtype: torch.dtype = torch.float32):
    """After train() on every process: the trained model on the main process, None on the others, which
    then just exit (only the main process writes the model folder, the metrics and clears the journal).

    One process or DDP: every rank holds the whole model. FSDP and DeepSpeed shard it, so every rank
    takes part in trainer.save_model (which gathers the full weights into `folder`/gathered: FSDP's
    FULL_STATE_DICT, ZeRO-3's gathered 16-bit weights) and the main process reads them back in `dtype`,
    the checkpoint's, so it holds one copy of the model at the size it is written (a LoRA run: base +
    adapter, merged by runtime.save)."""
    sharded = trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled
    if trainer.args.world_size <= 1 and not sharded:
        return trainer.model
    trainer.accelerator.wait_for_everyone()   # every rank is done with the checkpoints in `folder`
    if not sharded:
        launch.leave_process_group()
        return trainer.model if trainer.is_world_process_zero() else None
    gathered = folder / "gathered"
    trainer.save_model(str(gathered))
    trainer.accelerator.wait_for_everyone()
    launch.leave_process_group()   # the last collective: the main process reads and writes the model alone
    if not trainer.is_world_process_zero():
        return None
    if trainer.is_deepspeed_enabled:
        # With the ZeRO-3 config registered, from_pretrained would build the model partitioned, a collective
        # the other ranks, gone, never join: the main process alone reads the gathered weights, whole.
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()
    if (gathered / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        return AutoPeftModelForCausalLM.from_pretrained(gathered, dtype=dtype)
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(gathered, dtype=dtype)


class TrainingDiverged(SrlmError):
    """The loss or gradient norm became NaN or infinite; the weights are no longer usable."""


class StopOnNonFinite(TrainerCallback):
    """Raise at the first logged loss or gradient norm that is NaN or infinite.

    The exception leaves `trainer.train()` before anything is saved: stages write the model
    through `lineage.staging` after training, so no model folder or metrics appear.
    """

    def __init__(self, section: str):
        self.section = section

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                raise TrainingDiverged(
                    f"training diverged: {key} is {value} at step {state.global_step} of {state.max_steps} "
                    f"(learning rate {args.learning_rate:g}); stopped, no model written. Likely fixes: lower "
                    f"{self.section}.learning_rate in params.yaml, or check the training data for empty, "
                    f"garbled or mislabelled examples")


class StepLog(TrainerCallback):
    """One log line per optimizer step: step, loss, learning rate and the DPO reward figures."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:   # the logged figures are the same on every rank
            return
        if logs and "loss" in logs:
            extra = "".join(f" {k.split('/')[-1]} {logs[k]:.3f}" for k in ("rewards/margins", "rewards/accuracies")
                            if k in logs)
            log.info("step %d/%d loss %.4f lr %.3g%s", state.global_step, state.max_steps, logs["loss"],
                     logs.get("learning_rate", float("nan")), extra)
        elif logs and "train_runtime" in logs:
            log.info("trained in %.0f s", logs["train_runtime"])


def write_metrics(history: list[dict], metrics_dir: Path, summary: dict) -> dict:
    """<metrics_dir>/train.json (final figures) and train_log.csv (one row per step, for plots)."""
    steps = [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history if "loss" in row]
    final = steps[-1] if steps else {}
    metrics = {**summary, "steps": len(steps),
               "final_loss": final.get("loss"), "mean_loss": sum(s["loss"] for s in steps) / len(steps) if steps else None}
    for key in ("rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected"):
        if key in final:
            metrics["final_" + key.replace("/", "_")] = final[key]
    write_json(metrics, metrics_dir / "train.json")
    columns = sorted({k for s in steps for k in s})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or ["step"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(steps)
    atomic_write_bytes(metrics_dir / "train_log.csv", buffer.getvalue().encode())
    return metrics
