"""Shared fixtures: the real OASST sample (skipped when absent) and a tiny random model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tiny_model import save_tiny_judge_model, save_tiny_model, save_tokenizer

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SRLM_SHARED_DATA", REPO.parent / "shared" / "data"))
OASST_VALIDATION = SHARED / "oasst1" / "oasst1-en-validation.messages.jsonl"
SEED = REPO / "data" / "seed" / "oasst_seed.messages.jsonl"
SEED_EVAL = REPO / "data" / "seed" / "eval_prompts.jsonl"


def pytest_configure(config):
    """Before any test runs torch: tests build and run models without `runtime.load`, and a first threaded
    cos can be inexact until MKL's kernels are settled (srlm_core/engine/mkl_dispatch.py)."""
    from srlm_core.engine import mkl_dispatch

    mkl_dispatch.settle()


@pytest.fixture(autouse=True)
def scratch(tmp_path_factory, monkeypatch) -> Path:
    """Each test's crash-resume journals in a folder of its own, not in the working tree's .srlm."""
    folder = tmp_path_factory.mktemp("scratch")
    monkeypatch.setenv("SRLM_SCRATCH", str(folder))
    return folder


@pytest.fixture(scope="session")
def oasst_validation() -> Path:
    if not OASST_VALIDATION.is_file():
        pytest.skip(f"real OASST data not found at {OASST_VALIDATION}")
    return OASST_VALIDATION


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def message(message_id: str, parent_id: str | None, tree_id: str, role: str = "assistant", rank=None,
            text: str | None = None, lang: str = "en", **extra) -> dict:
    record = dict(message_id=message_id, parent_id=parent_id, message_tree_id=tree_id, role=role,
                  text=text or f"text of {message_id}", lang=lang, rank=rank, review_result=True,
                  deleted=False, synthetic=False)
    record.update(extra)
    return record


def small_tree(tree: str, replies: int = 3) -> list[dict]:
    root = message(f"{tree}-root", None, f"{tree}-root", role="prompter", text=f"Question {tree}?")
    return [root] + [message(f"{tree}-r{i}", root["message_id"], root["message_id"], rank=i,
                             text=f"Answer {i} to {tree}.") for i in range(replies)]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless Chromium, installed with apt-get when missing (the test setup needs root)."""
    import shutil
    import subprocess

    found = shutil.which("chromium")
    if found is None:
        result = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
                                capture_output=True, text=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        found = shutil.which("chromium")
        if found is None:
            pytest.fail(f"chromium is not installed and `apt-get install chromium` failed: {result.stderr[-500:]}")
    return found


@pytest.fixture(scope="session")
def dvc_cache(tmp_path_factory) -> Path:
    """One DVC cache for the tiny-model pipelines: the stages they share run once per session."""
    return tmp_path_factory.mktemp("dvc-cache")


@pytest.fixture(scope="session")
def ift(tmp_path_factory) -> Path:
    """Eight IFT examples of growing length, for the multi-process training tests."""
    import pyarrow as pa

    from srlm_core.storage import write_parquet

    path = tmp_path_factory.mktemp("ift") / "ift.parquet"
    write_parquet(pa.table({"prompt": [f"question {i}?" for i in range(8)],
                            "response": [f"answer {i} " * (i + 1) for i in range(8)]}), path)
    return path


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """SmolLM2's tokenizer and chat template, read from the GGUF the package ships."""
    return save_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A randomly initialised Llama of SmolLM2's architecture family, a few MB, fixed seed."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"), tokenizer_dir)


@pytest.fixture(scope="session")
def real_m0(tmp_path_factory) -> Path:
    """The real base model, SmolLM2-135M-Instruct from the packaged GGUF, in fp32 on every processor
    (so a lossless-conversion check stays exact where auto would pick bf16); about a minute on 2
    cores, built once per session."""
    from srlm_core.params import ModelParams
    from srlm_core.steps import base as base_model

    out = tmp_path_factory.mktemp("real") / "M0"
    base_model.run(ModelParams(dtype="float32"), out)
    return out


@pytest.fixture(scope="session")
def tiny_judge_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A tiny hand-built model whose samples contain `Score: N`, for the paper's text method."""
    return save_tiny_judge_model(tmp_path_factory.mktemp("tiny-judge"), tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_srlm_model(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model as a model folder written by srlm (with a manifest), named M1."""
    import shutil

    from srlm_core.log.lineage import write_manifest

    out = tmp_path_factory.mktemp("models") / "M1"
    shutil.copytree(tiny_model_dir, out)
    write_manifest(out, name="M1", kind="base", parent=None, training_data=None, params={})
    return out


@pytest.fixture(scope="session")
def tiny32(tiny_srlm_model):
    """The tiny model loaded in fp32 whatever compute_dtype() picks, for tests that compare two exact paths
    (dynamic vs static KV cache, cached vs uncached judge pass): bf16, chosen on CPUs with AVX512-BF16 or
    AMX, rounds the two differently."""
    import torch

    from srlm_core.engine import runtime

    return runtime.load(tiny_srlm_model, dtype=torch.float32)


@pytest.fixture(scope="session")
def tiny_vllm_model(tmp_path_factory, tokenizer_dir) -> Path:
    """The tiny model with head_dim 32, for the vLLM tests: vLLM's CPU attention has no kernel for the
    suite's head_dim 8 ("Unsupported CPU attention configuration: head_dim=8"); its sizes start at 32."""
    from srlm_core.log.lineage import write_manifest

    out = save_tiny_model(tmp_path_factory.mktemp("models") / "M1", tokenizer_dir, hidden_size=64, heads=2, kv_heads=1)
    write_manifest(out, name="M1", kind="base", parent=None, training_data=None, params={})
    return out
