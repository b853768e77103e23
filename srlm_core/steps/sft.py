"""Stages `sft_baseline` (M0 + IFT) and `sft` (M0 + IFT + EFT -> M1): the training data, then
supervised fine-tuning (srlm_core/training/sft.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ..engine import runtime
from ..params import Params
from ..training.sft import conversations, dtype_record, train


def ift_rows(path: Path):
    return pq.read_table(path, columns=["prompt", "response"]).rename_columns(["prompt", "completion"])


def run(params: Params, *, name: str, base_dir: Path, ift_path: Path, eft_dir: Path | None, out_dir: Path,
        metrics_dir: Path) -> dict | None:
    examples = conversations(ift_rows(ift_path))
    files, data_name, extra = [ift_path], "IFT", None
    if eft_dir is not None:
        eft_path = eft_dir / "train.parquet"
        eft = pq.read_table(eft_path, columns=["prompt", "completion"])
        files.append(eft_path)
        data_name = "IFT+EFT" if eft.num_rows else "IFT (EFT fallback: no EFT examples)"
        examples += conversations(eft)
        extra = {"eft_examples": eft.num_rows}
    dtype = runtime.checkpoint_dtype(params.model.dtype, params.generation.dtype)
    return train(name=name, base_dir=base_dir, examples=examples, data_name=data_name, data_files=files,
                 cfg=params.sft, train_cfg=params.train, seed=params.seed, out_dir=out_dir, metrics_dir=metrics_dir,
                 params_record={"sft": params.sft.model_dump(), "seed": params.seed, "model": dtype_record(dtype)},
                 extra=extra, save_dtype=dtype, precision=runtime.compute_dtype(params.generation.dtype))
