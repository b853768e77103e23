"""Sharded training run for real, on the CPU: the stages under configs/accelerate/fsdp.yaml,
deepspeed_zero3.yaml and deepspeed_zero2.yaml with 2 processes (gloo), each against DDP with the same
effective batch (multi_gpu_ddp.yaml), to float rounding.

FSDP: accelerate shards with FSDP on GPUs only (on a CPU it trains plain data parallel);
tests/fsdp_on_cpu/sitecustomize.py lifts that rule in the test's processes, so that the shipped config's path
runs as it does on GPUs: FSDP2's fully_shard over DTensor shards, rank 0 alone reading the checkpoint
(fsdp_cpu_ram_efficient_loading) and broadcasting the shards, the full-state-dict gather that writes the
model, sharded checkpoints, resume. Until 2026-12-03 rank 1 built its model on the meta device, where
accelerate's mapping of the optimizer to the shards (by data pointer, 0 for every meta tensor) sent all of
rank 1's updates to one shard: its other shards never trained (1.8e-4 off DDP's model).

DeepSpeed runs on the CPU as shipped (its CPU accelerator, gloo). Until 2026-12-03 no DeepSpeed run got past
its first step (transformers' polynomial schedule reads optimizer.defaults, which ZeRO's optimizers lack),
and a ZeRO-3 run hung at the end (the main process read the gathered weights back with ZeRO-3's partitioned
init, a collective the other ranks had left).

What differs from GPUs is the collective backend (gloo, not NCCL) and device placement. About four minutes
on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
import torch
import yaml
from safetensors.torch import load_file

from srlm_core.storage import write_json, write_parquet

REPO = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).resolve().parent / "fsdp_on_cpu"
DISTRIBUTED_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
SFT = {"batch_size": 2, "grad_accum": 1, "max_steps": 2, "max_length": 64}
DPO = {"batch_size": 2, "grad_accum": 1, "max_steps": 6, "max_length": 64}

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="on GPUs accelerate shards without the harness")


def stage(workdir: Path, script: str, params: dict, config: str, *args: str) -> tuple[list[str], dict]:
    """The command and environment that run a stage in `workdir` with 2 processes under `config`."""
    train = {"num_processes": 2, "accelerate_config": str(REPO / "configs" / "accelerate" / f"{config}.yaml"),
             "checkpoint_minutes": params.pop("checkpoint_minutes", 60)}
    (workdir / "params.yaml").write_text(yaml.safe_dump({**params, "train": train}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
    env.update(PYTHONPATH=os.pathsep.join([str(HARNESS), str(REPO)]),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return [sys.executable, str(REPO / "stages" / script), *args, "--out", "models/M2", "--metrics", "metrics"], env


def run(workdir: Path, script: str, params: dict, config: str, *args: str) -> str:
    cmd, env = stage(workdir, script, params, config, *args)
    result = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    for rank in (0, 1):   # left to the exit, gloo's threads can abort a rank after its work is done
        assert f"rank {rank}/2] left the process group" in result.stderr
    # every rank together after the last collective (NCCL's teardown waits for all), before the main one writes
    assert result.stderr.index("rank 0/2] left the process group") < result.stderr.index("wrote models/M2")
    return result.stderr


def weights(workdir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(workdir / "models" / "M2" / "model.safetensors"))


def assert_same_model(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= atol, f"largest difference {worst:.3g}"


def assert_fsdp(log: str, name: str) -> None:
    for rank in (0, 1):
        assert f"[{name} rank {rank}/2] rank {rank} of 2 in the process group (FSDP, backend gloo" in log
    assert "FSDP RAM-efficient loading: rank 0 read the weights" in log
    assert log.count("wrote models/M2") == 1


@pytest.fixture(scope="module")
def aift(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("aift") / "aift"
    write_parquet(pa.table({"prompt_id": [str(i) for i in range(8)], "prompt": [f"q{i}" for i in range(8)],
                            "chosen": ["good answer " * (i + 1) for i in range(8)], "rejected": ["bad"] * 8}),
                  folder / "train.parquet")
    write_json({"mode": "dpo", "skipped": {}, "judge_model": "j"}, folder / "summary.json")
    return folder


def sft_run(folder: Path, ift: Path, base: Path, config: str, method: str) -> str:
    folder.mkdir(parents=True)
    shutil.copy(ift, folder / "ift.parquet")
    return run(folder, "sft.py", {"sft": {**SFT, "method": method}}, config, "--base", str(base), "--ift", "ift.parquet")


def dpo_run(folder: Path, aift: Path, base: Path, config: str) -> str:
    shutil.copytree(aift, folder / "aift")
    return run(folder, "dpo.py", {"dpo": dict(DPO), "checkpoint_minutes": 0}, config, "--prev", str(base),
               "--aift", "aift")


@pytest.fixture(scope="module")
def ddp(tiny_srlm_model, ift, aift, tmp_path_factory) -> dict[str, dict]:
    """The reference models, trained with 2 processes under multi_gpu_ddp.yaml: SFT full and LoRA, DPO."""
    folder = tmp_path_factory.mktemp("ddp")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SRLM_SCRATCH", str(tmp_path_factory.mktemp("scratch")))
        for method in ("full", "lora"):
            sft_run(folder / method, ift, tiny_srlm_model, "multi_gpu_ddp", method)
        dpo_run(folder / "dpo", aift, tiny_srlm_model, "multi_gpu_ddp")
    return {name: weights(folder / name) for name in ("full", "lora", "dpo")}


@pytest.mark.parametrize("method", ["full", "lora"])
def test_fsdp_sft_trains_the_model_ddp_trains(tiny_srlm_model, ift, tmp_path, ddp, method):
    log = sft_run(tmp_path / "fsdp", ift, tiny_srlm_model, "fsdp", method)
    assert_fsdp(log, "M2")
    trained = weights(tmp_path / "fsdp")
    assert_same_model(trained, ddp[method], atol=1e-7)
    base = load_file(str(tiny_srlm_model / "model.safetensors"))
    assert max((trained[k] - base[k]).abs().max().item() for k in base) > 1e-6   # it trained


def test_fsdp_dpo_trains_the_model_ddp_trains_and_resumes_after_a_kill(tiny_srlm_model, aift, tmp_path, scratch,
                                                                       ddp):
    log = dpo_run(tmp_path / "fsdp", aift, tiny_srlm_model, "fsdp")
    assert_fsdp(log, "dpo@M2")
    assert "[dpo@M2 rank 0/2] step 6/6 loss" in log
    assert_same_model(weights(tmp_path / "fsdp"), ddp["dpo"], atol=1e-7)

    killed = tmp_path / "killed"
    shutil.copytree(aift, killed / "aift")
    args = ("--prev", str(tiny_srlm_model), "--aift", "aift")
    cmd, env = stage(killed, "dpo.py", {"dpo": dict(DPO), "checkpoint_minutes": 0}, "fsdp", *args)
    proc = subprocess.Popen(cmd, cwd=killed, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not any(scratch.glob("journal/train@M2/*/checkpoint-3/trainer_state.json")):
        assert proc.poll() is None, "the run finished before its third checkpoint"
        assert time.monotonic() < deadline, "no third checkpoint in 300 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log = run(killed, "dpo.py", {"dpo": dict(DPO), "checkpoint_minutes": 0}, "fsdp", *args)
    assert "[dpo@M2 rank 0/2] resuming from" in log and "checkpoint-3" in log
    assert "step 3/6" not in log and "[dpo@M2 rank 0/2] step 4/6 loss" in log
    assert_same_model(weights(killed), weights(tmp_path / "fsdp"), atol=0.0)


@pytest.mark.parametrize("config", ["deepspeed_zero3", "deepspeed_zero2"])
def test_deepspeed_sft_and_dpo_train_the_models_ddp_trains(tiny_srlm_model, ift, aift, tmp_path, ddp, config):
    """SFT and DPO (a checkpoint after every step) under the shipped DeepSpeed configs, as shipped."""
    pytest.importorskip("deepspeed")
    sft_log = sft_run(tmp_path / "sft", ift, tiny_srlm_model, config, "full")
    dpo_log = dpo_run(tmp_path / "dpo", aift, tiny_srlm_model, config)
    for log, name in ((sft_log, "M2"), (dpo_log, "dpo@M2")):
        assert f"[{name} rank 1/2] rank 1 of 2 in the process group (DEEPSPEED, backend gloo" in log
        assert log.count("wrote models/M2") == 1
    assert "[M2 rank 0/2] step 2/2 loss" in sft_log and "[dpo@M2 rank 0/2] step 6/6 loss" in dpo_log
    assert_same_model(weights(tmp_path / "sft"), ddp["full"], atol=1e-7)
    assert_same_model(weights(tmp_path / "dpo"), ddp["dpo"], atol=1e-7)
