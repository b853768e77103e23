"""Loading for training (srlm_core/training/loading.py): the sharded path is taken when the strategy asks for
it. Real processes: `accelerate launch` with the shipped configs starts 2 ranks on the CPU (gloo), each of which
builds its training arguments and loads the tiny model as the training stages do, then reports whether it
read the checkpoint, how many parameters it has on the meta device and whether each parameter has storage of
its own (accelerate's FSDP2 preparation tells the parameters apart by their data pointers).

- configs/accelerate/fsdp.yaml (fsdp_cpu_ram_efficient_loading): rank 0 reads the checkpoint, rank 1 does not
  (FSDP sends it its shards when it wraps the model, which accelerate does on GPUs; tests/test_sharded_training.py
  trains that way on the CPU); rank 1's parameters are uninitialized CPU tensors, none on the meta device;
- multi_gpu_ddp.yaml: both ranks read the whole model, which DDP needs;
- fsdp.yaml with the rank set up as a training stage sets it up on a machine without CUDA: accelerate trains
  plain data parallel there, so both ranks read the whole model.

About 40 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srlm_core.engine import runtime
from srlm_core.training import loading

REPO = Path(__file__).resolve().parents[1]
RANK_SCRIPT = """
import json, sys
from pathlib import Path

import torch

from transformers import AutoModelForCausalLM

from srlm_core.params import parse_params
from srlm_core.training import launch, loading
from srlm_core.training.sft import sft_args

reads = []
read = AutoModelForCausalLM.from_pretrained
AutoModelForCausalLM.from_pretrained = lambda *a, **k: reads.append(a[0]) or read(*a, **k)

model_dir, out, as_stage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "stage"
if as_stage:
    launch._as_rank("M2")
cfg = parse_params({}).sft
args = sft_args(cfg, out / "train", seed=0)
model, _ = loading.load(model_dir, args, cfg, torch.float32)
params = list(model.parameters())   # each tied tensor once
meta = sum(p.numel() for p in params if p.device.type == "meta")
pointers = len({p.data_ptr() for p in params})   # accelerate maps the optimizer to the shards by these
(out / f"rank{args.process_index}.json").write_text(json.dumps({"read": len(reads), "meta": meta,
                                                                "distinct": pointers == len(params)}))
"""


def loaded_per_rank(model_dir: Path, config: str, tmp_path: Path, as_stage: bool = False) -> list[dict]:
    tmp_path.mkdir(parents=True)
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT")}
    env["PYTHONPATH"] = str(REPO)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / "configs" / "accelerate" / f"{config}.yaml"), "--num_processes", "2", "--main_process_port",
           "0", str(script), str(model_dir), str(tmp_path), "stage" if as_stage else "plain"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU rule; on GPUs FSDP shards")
def test_fsdp_ram_efficient_loading_reads_the_weights_on_rank_0_only(tiny_srlm_model, tmp_path):
    read, unread = {"read": 1, "meta": 0, "distinct": True}, {"read": 0, "meta": 0, "distinct": True}
    assert loaded_per_rank(tiny_srlm_model, "fsdp", tmp_path / "fsdp") == [read, unread]
    assert loaded_per_rank(tiny_srlm_model, "multi_gpu_ddp", tmp_path / "ddp") == [read, read]
    assert loaded_per_rank(tiny_srlm_model, "fsdp", tmp_path / "stage", as_stage=True) == [read, read]


@pytest.mark.parametrize("method,precision,expected", [("full", torch.bfloat16, torch.float32),
                                                       ("lora", torch.bfloat16, torch.bfloat16),
                                                       ("lora", torch.float32, torch.float32)])
def test_weights_load_in_the_dtype_the_method_needs(tiny_srlm_model, tmp_path, method, precision, expected):
    """Full fine-tuning keeps fp32 master weights; LoRA's frozen base is loaded in the compute precision, and the
    adapters PEFT adds to it are fp32."""
    from peft import get_peft_model

    from srlm_core.params import parse_params
    from srlm_core.training.sft import sft_args
    from srlm_core.training.trainer import lora_config

    cfg = parse_params({"sft": {"method": method}}).sft
    model, _ = loading.load(tiny_srlm_model, sft_args(cfg, tmp_path, 0), cfg, precision)
    assert {p.dtype for p in model.parameters()} == {expected}
    assert model.training and next(model.parameters()).device.type == "cpu"
    if method == "lora":
        wrapped = get_peft_model(model, lora_config(cfg))
        assert {p.dtype for p in wrapped.parameters() if p.requires_grad} == {torch.float32}
        assert {p.dtype for p in wrapped.parameters() if not p.requires_grad} == {expected}


def test_loading_for_inference_is_unchanged(tiny_srlm_model):
    model, _, _ = runtime.load(tiny_srlm_model, dtype=torch.float32)
    assert not model.training
