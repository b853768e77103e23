"""Stage `dpo`: M(t+1) = DPO on AIFT(Mt), initialised from Mt with Mt as the reference.

The reference log-probabilities are precomputed once, before training (exact, and no second
model in memory): Mt itself for full fine-tuning, the adapter-disabled model for LoRA. With
`pairs.positive_only` the AIFT data is (prompt, top response) and M(t+1) is SFT instead. With
`meta.enabled` the judge pairs of the meta stage are trained on beside the actor pairs, mixed
per meta.judge_pair_ratio (docs/meta-judge.md).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..engine import runtime
from ..errors import SrlmError
from ..log.lineage import MANIFEST, data_hashes, read_manifest, staging, write_manifest
from ..params import Params
from ..storage import atomic_write_bytes, write_json
from ..training import launch, loading, selection, sft
from ..training.dpo import build_trainer, dpo_args, pair_metrics, preference_rows
from ..training.trainer import (
    finished_model,
    gradient_checkpointing,
    shared_dataset,
    training_journal,
    write_metrics,
)
from ..training.trainer import train as train_resumably

log = logging.getLogger(__name__)


PAIR_COLUMNS = pa.schema([("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())])


def fitting(pairs: pa.Table, tokenizer, max_length: int) -> tuple[pa.Table, int]:
    """The pairs whose prompt and longer reply fit in max_length tokens as a chat, and how many do not: TRL
    keeps the start of a longer sequence, so a judge pair (a long judge prompt) would lose its judgement,
    the part that differs, or all of it."""
    def tokens(prompt: str, reply: str) -> int:
        chat = [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
        return len(tokenizer(tokenizer.apply_chat_template(chat, tokenize=False), add_special_tokens=False).input_ids)

    keep = [max(tokens(r["prompt"], r["chosen"]), tokens(r["prompt"], r["rejected"])) <= max_length
            for r in pairs.select(PAIR_COLUMNS.names).to_pylist()]
    return pairs.filter(pa.array(keep, pa.bool_())), keep.count(False)


def mixed(actor: pa.Table, judge: pa.Table, ratio: float | None) -> tuple[pa.Table, int]:
    """DPO's rows: every actor pair, then the judge pairs in their order up to ratio x the actor pairs
    (rounded down; all of them when ratio is None); and how many judge pairs that is."""
    used = judge.num_rows if ratio is None else min(judge.num_rows, math.floor(ratio * actor.num_rows))
    rows = [t.select(PAIR_COLUMNS.names).cast(PAIR_COLUMNS) for t in (actor, judge.slice(0, used))]
    return pa.concat_tables(rows), used


def carry_forward(prev_dir: Path, out_dir: Path, training_data: dict, params_record: dict, metrics_dir: Path) -> dict:
    """M(t+1) = Mt unchanged, recorded as such (dpo.allow_empty)."""
    with staging(out_dir) as tmp:
        for path in sorted(prev_dir.iterdir()):
            if path.name != MANIFEST and path.is_file():
                shutil.copy2(path, tmp / path.name)
        manifest = write_manifest(tmp, name=out_dir.name, kind="carried-forward", parent=prev_dir,
                                  training_data=training_data, params=params_record, extra={"carried_forward": True})
    write_json({"examples": 0, "steps": 0, "carried_forward": 1}, metrics_dir / "train.json")
    atomic_write_bytes(metrics_dir / "train_log.csv", b"step\n")
    return manifest


def run(params: Params, *, prev_dir: Path, aift_dir: Path, out_dir: Path, metrics_dir: Path,
        judge_dir: Path | None = None, events_root: Path | None = None,
        judge_pairs_dir: Path | None = None) -> dict | None:
    """Write M(t+1) and its metrics; the manifest, or None on the ranks other than the main one of a
    multi-process run. `judge_dir` (M0) and `events_root` serve the checkpoint selection (dpo.eval_steps);
    `judge_pairs_dir`, the meta stage's output, is read when meta.enabled."""
    cfg, meta = params.dpo, params.meta if params.meta.enabled else None
    summary = json.loads((aift_dir / "summary.json").read_text())
    train_path = aift_dir / "train.parquet"
    table = pq.read_table(train_path)
    data_name, files = f"AIFT({prev_dir.name})", [train_path]
    if meta:
        if judge_pairs_dir is None:
            raise SrlmError("meta.enabled: DPO needs the meta stage's judge pairs (stages/dpo.py --judge-pairs)")
        data_name = f"{data_name} + judge pairs({prev_dir.name})"
        files.append(judge_pairs_dir / "train.parquet")
    training_data = {"name": data_name, **data_hashes(files), "examples": table.num_rows,
                     "mode": summary["mode"]}
    dtype = runtime.checkpoint_dtype(params.model.dtype, params.generation.dtype)
    precision = runtime.compute_dtype(params.generation.dtype)
    params_record = {"dpo": cfg.model_dump(), "pairs": params.pairs.model_dump(), "seed": params.seed,
                     "train": launch.record(params.train), "model": sft.dtype_record(dtype),
                     **({"meta": meta.model_dump()} if meta else {})}
    if table.num_rows == 0:
        if not cfg.allow_empty:
            raise SrlmError(f"{train_path}: AIFT({prev_dir.name}) has no pairs (skipped prompts: "
                            f"{summary['skipped']}); nothing to train {out_dir.name} on. Generate more prompts "
                            f"(prompts.num_prompts) or set dpo.allow_empty: true to carry {prev_dir.name} forward")
        if not launch.is_main():
            return None
        log.warning("AIFT(%s) is empty: %s is %s carried forward (dpo.allow_empty)", prev_dir.name, out_dir.name,
                    prev_dir.name)
        return carry_forward(prev_dir, out_dir, training_data, params_record, metrics_dir)
    if summary["mode"] == "sft":
        rows = table.select(["prompt", "completion"])
        return sft.train(name=out_dir.name, base_dir=prev_dir, examples=sft.conversations(rows), data_name=data_name,
                         data_files=[train_path], cfg=params.sft, train_cfg=params.train, seed=params.seed,
                         out_dir=out_dir,
                         metrics_dir=metrics_dir, params_record={**params_record, "sft": params.sft.model_dump()},
                         extra={"positive_only": True}, save_dtype=dtype, precision=precision)
    runtime.seed_everything(params.seed)
    journal = training_journal(out_dir, read_manifest(prev_dir)["hash"], training_data["hash"], params_record)
    args = dpo_args(cfg, journal.dir, params.seed, precision, gradient_checkpointing(params.train))
    model, tokenizer = loading.load(prev_dir, args, cfg, precision)
    counts = {}
    if meta:
        judge_pairs, too_long = fitting(pq.read_table(files[1]), tokenizer, cfg.max_length)
        if too_long and not judge_pairs.num_rows:
            raise SrlmError(f"{files[1]}: none of the {too_long} judge pairs fits in dpo.max_length {cfg.max_length} "
                            "tokens (at the default judge settings a judge pair takes up to ~760), so meta.enabled "
                            "would change nothing; raise dpo.max_length (e.g. 1024)")
        if too_long:
            log.warning("%d of %d judge pairs do not fit in dpo.max_length %d and are left out; raise it", too_long,
                        too_long + judge_pairs.num_rows, cfg.max_length)
        table, used = mixed(table, judge_pairs, meta.judge_pair_ratio)
        counts = {"actor_pairs": table.num_rows - used, "judge_pairs": used, "judge_pairs_too_long": too_long}
        training_data.update(examples=table.num_rows, **counts)
    dataset = shared_dataset(preference_rows(table), journal.dir / "dataset", args)
    trainer = build_trainer(model, tokenizer, dataset, args, cfg, params.train.checkpoint_minutes)
    snapshots = journal.dir / "selection"
    if cfg.eval_steps:
        if judge_dir is None or events_root is None:
            raise SrlmError("dpo.eval_steps needs the fixed judge and the event log (stages/dpo.py --fixed --events)")
        if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
            raise SrlmError("dpo.eval_steps saves the whole policy from the main process, which FSDP and DeepSpeed "
                            "shard; set dpo.eval_steps: 0 or train with plain data parallelism")
        trainer.add_callback(selection.SnapshotEvery(cfg.eval_steps, snapshots, tokenizer, prev_dir, dtype))
    log.info("%s: DPO on %d pairs%s from %s (%s, beta %.2f)", out_dir.name, table.num_rows,
             f" ({counts['judge_pairs']} of them judge pairs)" if meta else "", prev_dir.name, cfg.method, cfg.beta)
    launch.report(trainer, cfg)
    train_resumably(trainer, journal.dir)
    on_pairs = pair_metrics(trainer)
    model = finished_model(trainer, journal.dir, dtype)
    if model is None:
        return None
    extra, chosen = {"judge_model": summary["judge_model"]}, None
    if cfg.eval_steps:
        selection.save_candidate(model, tokenizer, snapshots / f"step-{trainer.state.global_step}", prev_dir, dtype)
        chosen = selection.select(params, selection.saved(snapshots), judge_dir=judge_dir, events_root=events_root)
        extra["checkpoint_selection"] = {k: v for k, v in chosen.items() if k != "chosen"}
    with staging(out_dir) as tmp:
        if chosen is None:
            runtime.save(model, tokenizer, tmp, dtype)
        else:
            for path in sorted(chosen["chosen"].iterdir()):
                if path.name != MANIFEST and path.is_file():
                    shutil.copy2(path, tmp / path.name)
        manifest = write_manifest(tmp, name=out_dir.name, kind=f"dpo-{cfg.method}", parent=prev_dir,
                                  training_data=training_data, params=params_record, extra=extra)
    write_metrics(trainer.state.log_history, metrics_dir,
                  {"examples": table.num_rows, **counts, **on_pairs,
                   **({"selected_step": chosen["chosen_step"]} if chosen else {})})
    journal.clear()
    return manifest
