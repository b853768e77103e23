"""Multi-process training: the stage scripts re-run themselves under `accelerate launch` when
`train.num_processes > 1`. Real runs, on the CPU (gloo), of the tiny model:

- stages/sft.py with 1 and with 2 processes in temporary folders with their own params.yaml:
  both exit 0, the 2-process log shows both ranks in one gloo process group, and the two
  model folders hold the same tensors (names, shapes) with the same lineage, recording 1 and 2
  processes;
- the same 2 processes as two machines (a multi-node config, both machines on 127.0.0.1, the second
  one's stage started as `srlm join` starts it): the same model, value for value;
- stages/dpo.py with 2 processes and a checkpoint after every step (TRL's reference log-prob
  cache and the checkpoints are shared by the ranks).

About two minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import torch
import yaml
from safetensors import safe_open
from servers import free_port

from srlm_core.errors import SrlmError
from srlm_core.log.lineage import model_problems
from srlm_core.params import parse_params
from srlm_core.storage import write_json, write_parquet
from srlm_core.training import launch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))
SFT = {"batch_size": 2, "grad_accum": 1, "max_steps": 2, "max_length": 64}
DISTRIBUTED_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def run_stage(workdir: Path, script: str, params: dict, *args: str) -> subprocess.CompletedProcess:
    (workdir / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
    env.update(PYTHONPATH=str(REPO), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([sys.executable, str(REPO / "stages" / script), *args], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def tensors(model_dir: Path) -> dict[str, list[int]]:
    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        return {key: list(f.get_slice(key).get_shape()) for key in f.keys()}


def manifest(model_dir: Path) -> dict:
    return json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))


def assert_written_once(models: Path, scratch: Path) -> None:
    """One complete model folder, no staging folder left, the training journal cleared."""
    assert sorted(p.name for p in models.iterdir()) == ["M2"]
    assert model_problems(models / "M2") == []
    assert not (scratch / "journal" / "train@M2").exists()


def sft_run(tmp_path: Path, name: str, ift: Path, base: Path, processes: int) -> tuple[Path, str]:
    workdir = tmp_path / name
    workdir.mkdir()
    shutil.copy(ift, workdir / "ift.parquet")
    result = run_stage(workdir, "sft.py", {"sft": SFT, "train": {"num_processes": processes}},
                       "--base", str(base), "--ift", "ift.parquet", "--out", "models/M2", "--metrics", "metrics")
    return workdir, result.stderr


@pytest.fixture(scope="module")
def two_processes(tiny_srlm_model, ift, tmp_path_factory) -> tuple[Path, str, Path]:
    """stages/sft.py with 2 processes on this machine: (its folder, its log, its journal folder)."""
    scratch = tmp_path_factory.mktemp("scratch")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SRLM_SCRATCH", str(scratch))
        two, log = sft_run(tmp_path_factory.mktemp("two"), "two", ift, tiny_srlm_model, 2)
    return two, log, scratch


def test_two_cpu_processes_train_the_same_model_as_one(tiny_srlm_model, ift, tmp_path, scratch, two_processes):
    one, log_one = sft_run(tmp_path, "one", ift, tiny_srlm_model, 1)
    assert "accelerate" not in log_one and "rank" not in log_one
    assert_written_once(one / "models", scratch)

    two, log_two, two_scratch = two_processes
    assert "[M2] training on 2 processes (CPU, gloo): -m accelerate.commands.launch --num_processes 2" in log_two
    for rank in (0, 1):   # each rank reports once it is in the process group
        assert f"[M2 rank {rank}/2] rank {rank} of 2 in the process group (MULTI_CPU, backend gloo" in log_two
    assert "[M2 rank 0/2] training on 2 processes: effective batch 2 x 1 x 2 = 4" in log_two
    assert "[M2 rank 0/2] step 2/2 loss" in log_two and "[M2 rank 1/2] step" not in log_two
    assert log_two.count("wrote models/M2") == 1      # only the main process writes
    assert_written_once(two / "models", two_scratch)

    assert tensors(one / "models" / "M2") == tensors(two / "models" / "M2")
    m1, m2 = manifest(one / "models" / "M2"), manifest(two / "models" / "M2")
    assert m1["parent"] == m2["parent"] == {"name": "M1", "hash": manifest(tiny_srlm_model)["hash"]}
    assert m1["training_data"] == m2["training_data"]
    assert m1["kind"] == m2["kind"] == "sft-full"
    assert m1["params"]["train"] == {"num_processes": 1, "accelerate_config": None}
    assert m2["params"]["train"] == {"num_processes": 2, "accelerate_config": None}
    for workdir in (one, two):
        assert json.loads((workdir / "metrics" / "train.json").read_text())["steps"] == 2


def test_two_machines_train_the_same_model_as_two_processes_on_one(tiny_srlm_model, ift, tmp_path, scratch,
                                                                   two_processes):
    """configs/accelerate/multi_node_ddp.yaml with both machines on this one (127.0.0.1, a free port), one
    process each: machine 0 starts the stage as `dvc repro` does, machine 1 as `srlm join` does
    (SRLM_MACHINE_RANK=1), in the same folder (a shared filesystem). Global rank 0 writes the model, and it
    equals, value for value, the model of two processes on one machine."""
    from safetensors.torch import load_file

    two = two_processes[0]
    config = yaml.safe_load((REPO / "configs" / "accelerate" / "multi_node_ddp.yaml").read_text())
    config.update(main_process_ip="127.0.0.1", main_process_port=free_port())
    workdir = tmp_path / "machines"
    workdir.mkdir()
    shutil.copy(ift, workdir / "ift.parquet")
    (workdir / "machines.yaml").write_text(yaml.safe_dump(config))
    params = {"sft": SFT, "train": {"num_processes": 2, "accelerate_config": "machines.yaml"}}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV + (launch.MACHINE_RANK, "SLURM_NODEID")}
    env.update(PYTHONPATH=str(REPO), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, str(REPO / "stages" / "sft.py"), "--base", str(tiny_srlm_model), "--ift", "ift.parquet",
           "--out", "models/M2", "--metrics", "metrics"]
    machines = [subprocess.Popen(cmd, cwd=workdir, env=dict(env, **{launch.MACHINE_RANK: str(rank)}),
                                 stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    logs = [m.communicate(timeout=600)[1] for m in machines]
    assert [m.returncode for m in machines] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "training on 2 processes (CPU, gloo, machine 1 of 2)" in logs[1] and "--machine_rank 1" in logs[1]
    assert "[M2 rank 0/2] training on 2 processes: effective batch 2 x 1 x 2 = 4" in logs[0]
    assert "[M2 rank 1/2] rank 1 of 2 in the process group" in logs[1]
    assert logs[0].count("wrote models/M2") == 1 and "wrote models/M2" not in logs[1]
    assert_written_once(workdir / "models", scratch)
    ours, theirs = load_file(str(workdir / "models" / "M2" / "model.safetensors")), \
        load_file(str(two / "models" / "M2" / "model.safetensors"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_two_cpu_processes_run_dpo_with_checkpoints(tiny_srlm_model, tmp_path, scratch):
    aift = tmp_path / "aift"
    write_parquet(pa.table({"prompt_id": [str(i) for i in range(8)], "prompt": [f"q{i}" for i in range(8)],
                            "chosen": ["good answer " * (i + 1) for i in range(8)], "rejected": ["bad"] * 8}),
                  aift / "train.parquet")
    write_json({"mode": "dpo", "skipped": {}, "judge_model": "j"}, aift / "summary.json")
    params = {"dpo": {"batch_size": 2, "grad_accum": 1, "max_steps": 3, "max_length": 64},
              "train": {"num_processes": 2, "checkpoint_minutes": 0}}
    log = run_stage(tmp_path, "dpo.py", params, "--prev", str(tiny_srlm_model), "--aift", "aift",
                    "--out", "models/M2", "--metrics", "metrics").stderr
    assert "[dpo@M2 rank 1/2] rank 1 of 2 in the process group (MULTI_CPU, backend gloo" in log
    assert "[dpo@M2 rank 0/2] step 3/3 loss" in log
    for rank in (0, 1):   # left to the exit, gloo's threads can abort a rank after its work is done
        assert f"[dpo@M2 rank {rank}/2] left the process group" in log
    assert_written_once(tmp_path / "models", scratch)
    m = manifest(tmp_path / "models" / "M2")
    assert m["kind"] == "dpo-full" and m["params"]["train"]["num_processes"] == 2
    assert json.loads((tmp_path / "metrics" / "train.json").read_text())["steps"] == 3


def test_bad_process_params_fail_at_load_naming_the_key(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SrlmError, match=rf"train\.accelerate_config: accelerate config file {re.escape(str(missing))} "
                                        r"not found"):
        parse_params({"train": {"accelerate_config": str(missing)}})
    with pytest.raises(SrlmError, match=r"train\.accelerate_config: .* is a folder"):
        parse_params({"train": {"accelerate_config": str(tmp_path)}})
    (tmp_path / "other.yaml").write_text("just: a mapping\n")
    with pytest.raises(SrlmError, match=r"train\.accelerate_config: .*other\.yaml is not an accelerate config"):
        parse_params({"train": {"accelerate_config": str(tmp_path / "other.yaml")}})
    with pytest.raises(SrlmError, match=r"train\.num_processes: .*got 0"):
        parse_params({"train": {"num_processes": 0}})


@pytest.mark.parametrize("config,kind", [("multi_gpu_ddp", "MULTI_GPU"), ("fsdp", "FSDP"),
                                         ("deepspeed_zero2", "DEEPSPEED"), ("deepspeed_zero3", "DEEPSPEED"),
                                         ("multi_node_ddp", "MULTI_GPU"), ("multi_node_fsdp", "FSDP")])
def test_shipped_accelerate_configs_are_valid(config, kind, monkeypatch):
    """Each shipped config loads as params and as an accelerate launch (without starting it); the
    process count comes from train.num_processes, a multi-node config's machine rank from SRLM_MACHINE_RANK."""
    from accelerate.commands.launch import (
        _validate_launch_command,
        launch_command_parser,
    )

    path = REPO / "configs" / "accelerate" / f"{config}.yaml"
    monkeypatch.setenv(launch.MACHINE_RANK, "1")
    train = parse_params({"train": {"num_processes": 16, "accelerate_config": str(path)}}).train
    cmd = launch.launch_command(train, ["stages/sft.py", "--out", "models/M1"])
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(cmd[3:]))
    assert str(defaults.distributed_type).endswith(kind) and args.num_processes == 16
    assert args.machine_rank == (1 if train.num_machines > 1 else 0) and train.num_machines == defaults.num_machines
    assert args.training_script == "stages/sft.py" and args.training_script_args == ["--out", "models/M1"]


def test_multi_node_processes_and_rank(tmp_path, monkeypatch):
    """num_processes counts every machine's processes, the same on each; the rank: SRLM_MACHINE_RANK, else
    SLURM_NODEID, else 0."""
    config = str(REPO / "configs" / "accelerate" / "multi_node_fsdp.yaml")   # 8 machines
    with pytest.raises(SrlmError, match=r"train: .*num_processes is 12, but .*multi_node_fsdp\.yaml spreads the run "
                                        r"over 8 machines: .*a multiple of 8"):
        parse_params({"train": {"num_processes": 12, "accelerate_config": config}})
    for name in (launch.MACHINE_RANK, "SLURM_NODEID"):
        monkeypatch.delenv(name, raising=False)
    assert launch.machine_rank() == "0"
    monkeypatch.setenv("SLURM_NODEID", "5")
    assert launch.machine_rank() == "5"
    monkeypatch.setenv(launch.MACHINE_RANK, "2")
    assert launch.machine_rank() == "2"
    single = parse_params({"train": {"num_processes": 2}}).train
    assert single.num_machines == 1 and "--machine_rank" not in launch.launch_command(single, ["x.py"])


def test_join_runs_a_training_stage_of_dvc_yaml_as_another_machine():
    from typer.testing import CliRunner

    from srlm_core.cli import app

    shown = CliRunner().invoke(app, ["join", "dpo@M3", "--machine-rank", "1", "--repo", str(REPO), "--dry-run"])
    assert shown.exit_code == 0 and shown.stdout.startswith(
        "SRLM_MACHINE_RANK=1 python stages/dpo.py --prev models/M2 --aift data/aift/M2 --out models/M3")
    refused = CliRunner().invoke(app, ["join", "judge@M2", "--machine-rank", "1", "--repo", str(REPO)])
    assert refused.exit_code == 1 and "judge@M2 is not a training stage" in str(refused.exception or refused.output)
    assert CliRunner().invoke(app, ["join", "sft", "--machine-rank", "0", "--repo", str(REPO)]).exit_code == 2


def test_every_shipped_config_is_tested():
    assert {p.stem for p in CONFIGS} == {"multi_gpu_ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3",
                                         "multi_node_ddp", "multi_node_fsdp"}


def test_one_process_without_config_is_not_launched():
    assert not launch.wants_launch(parse_params({}).train)
    assert launch.wants_launch(parse_params({"train": {"num_processes": 2}}).train)
