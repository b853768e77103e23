"""bench/memory_model.py: the per-device training memory formulas of docs/scale.md."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
from conftest import REPO
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

spec = importlib.util.spec_from_file_location("memory_model", REPO / "bench" / "memory_model.py")
mm = sys.modules["memory_model"] = importlib.util.module_from_spec(spec)   # dataclasses look their module up
spec.loader.exec_module(mm)


@pytest.mark.parametrize("shape", [mm.SMOLLM2_135M, mm.LLAMA2_70B], ids=lambda s: s.name)
def test_parameter_counts_are_the_models_own(shape):
    """Full and LoRA (all-linear, r 16) parameter counts equal transformers' and PEFT's, built on the meta device."""
    config = LlamaConfig(hidden_size=shape.hidden, num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                         num_key_value_heads=shape.kv_heads, intermediate_size=shape.intermediate,
                         vocab_size=shape.vocab, tie_word_embeddings=shape.tied)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) == shape.params()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == shape.lora_params(16)


def test_strategies_divide_what_they_shard():
    shape, base = mm.LLAMA2_7B, dict(devices=8, method="full", weight_bytes=2)
    single = mm.predict(shape, mm.Setup(strategy="single", **base))
    ddp = mm.predict(shape, mm.Setup(strategy="ddp", **base))
    zero2 = mm.predict(shape, mm.Setup(strategy="zero2", **base))
    zero3 = mm.predict(shape, mm.Setup(strategy="zero3", **base))
    p = shape.params()
    assert single["weights"] == 2 * p and single["gradients"] == 2 * p
    assert single["optimizer"] == 12 * p   # two fp32 moments and the fp32 master copy
    assert ddp["gradients"] == 2 * single["gradients"]                 # the bucket copy
    assert zero2["weights"] == single["weights"] and zero2["optimizer"] == single["optimizer"] / 8
    assert zero3["weights"] == single["weights"] / 8 and zero3["gradients"] == single["gradients"] / 8
    assert zero3["gathered"] == 2 * 2 * shape.layer_params() and single["gathered"] == 0
    assert mm.predict(shape, mm.Setup(strategy="fsdp", **base)) == zero3
    with pytest.raises(ValueError, match="strategy"):
        mm.predict(shape, mm.Setup(strategy="zero4"))


def test_lora_checkpointing_and_dpo_change_what_they_should():
    shape = mm.SMOLLM2_135M
    full, lora = mm.predict(shape, mm.Setup()), mm.predict(shape, mm.Setup(method="lora"))
    assert lora["optimizer"] == 8 * shape.lora_params(16) and lora["weights"] > full["weights"]   # + fp32 adapters
    ckpt = mm.predict(shape, mm.Setup(checkpointing=True))
    tokens = 2048
    assert ckpt["activations"] == (shape.layers * shape.hidden + shape.activation_values()) * 2 * tokens
    assert full["activations"] == shape.layers * shape.activation_values() * 2 * tokens
    dpo = mm.predict(shape, mm.Setup(dpo=True))
    assert dpo["activations"] == 2 * full["activations"] and dpo["logits"] == 2 * full["logits"]
    assert dpo["weights"] == full["weights"]   # reference log-probs precomputed: no second model
