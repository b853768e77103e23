"""Attention dropout takes effect where the modules read it: in SFT and DPO training, not in the
reference log-probs, not in saved checkpoints. Checked on what the attention layers do, not on
what the config says (Llama's layers copy the config value when built and read only their copy)."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pyarrow as pa
import torch
from test_training import aift

from srlm_core.engine import runtime
from srlm_core.log.lineage import write_manifest
from srlm_core.params import parse_params
from srlm_core.steps import dpo
from srlm_core.training import sft

SMALL = {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "max_length": 64}


def attention_layers(model):
    return [m for m in model.modules() if hasattr(m, "attention_dropout")]


def two_passes(model, tokenizer):
    ids = tokenizer("A sentence long enough for dropout to show in the logits.", return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits, model(ids).logits


def test_training_load_turns_dropout_on_in_the_layers(tiny_srlm_model):
    model, tokenizer, _ = runtime.load(tiny_srlm_model, for_training=True, dropout=0.1)
    layers = attention_layers(model)
    assert layers and model.training and [m.attention_dropout for m in layers] == [0.1] * len(layers)
    first, second = two_passes(model, tokenizer)
    assert not torch.equal(first, second)   # train mode: a fresh dropout draw each pass
    model.eval()
    first, second = two_passes(model, tokenizer)
    assert torch.equal(first, second)
    model, tokenizer, _ = runtime.load(tiny_srlm_model, for_training=True, dropout=0.0)
    first, second = two_passes(model, tokenizer)
    assert torch.equal(first, second)


def record_attention(monkeypatch) -> list[tuple[bool, float]]:
    """(training, attention_dropout) of the first attention layer at each forward pass of the loaded model."""
    seen = []
    load = runtime.load

    def recording_load(*args, **kwargs):
        model, tokenizer, digest = load(*args, **kwargs)
        attention_layers(model)[0].register_forward_hook(
            lambda module, inputs, output: seen.append((module.training, module.attention_dropout)))
        return model, tokenizer, digest

    monkeypatch.setattr(runtime, "load", recording_load)
    return seen


def base_with_dropout_in_config(folder, tiny_model_dir, value: float):
    """The tiny model with a non-zero attention_dropout in its config, so a saved model can be told to keep
    its base's value rather than a hard-coded 0."""
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "attention_dropout": value}))
    write_manifest(folder, name="M1", kind="base", parent=None, training_data=None, params={})
    return folder


def test_sft_trains_with_dropout_and_saves_the_bases_config(monkeypatch, tmp_path, tiny_model_dir):
    seen = record_attention(monkeypatch)
    base = base_with_dropout_in_config(tmp_path / "M1", tiny_model_dir, 0.05)
    params = parse_params({"sft": {**SMALL, "dropout": 0.1}})
    examples = sft.conversations(pa.table({"prompt": [f"q{i}" for i in range(4)], "completion": ["an answer"] * 4}))
    sft.train(name="S", base_dir=base, examples=examples, data_name="IFT", data_files=[], cfg=params.sft,
              train_cfg=params.train, seed=0, out_dir=tmp_path / "S", metrics_dir=tmp_path / "m", params_record={})
    assert seen and set(seen) == {(True, 0.1)}
    assert json.loads((tmp_path / "S" / "config.json").read_text())["attention_dropout"] == 0.05


def dpo_run(tmp_path, base, dropout: float) -> dict:
    rows = [{"prompt_id": str(i), "prompt": f"q{i}", "chosen": "a good and long answer", "rejected": "bad"}
            for i in range(2)]
    params = parse_params({"dpo": {**SMALL, "dropout": dropout}})
    out = tmp_path / f"M2-{dropout}"
    dpo.run(params, prev_dir=base, aift_dir=aift(tmp_path / f"aift-{dropout}", rows), out_dir=out,
            metrics_dir=tmp_path / f"metrics-{dropout}")
    return out


def test_dpo_reference_without_dropout_policy_with_it(monkeypatch, tmp_path, tiny_model_dir):
    seen = record_attention(monkeypatch)
    base = base_with_dropout_in_config(tmp_path / "M1", tiny_model_dir, 0.05)
    out = dpo_run(tmp_path, base, 0.1)
    # the reference log-probs first, in eval mode (no dropout), then every training step in train mode,
    # then the trained policy on all its pairs in eval mode again (pair_metrics)
    modes = [training for training, _ in seen]
    start = modes.index(True)
    end = len(modes) - modes[::-1].index(True)
    assert start > 0 and not any(modes[:start]) and all(modes[start:end])
    assert end < len(modes) and not any(modes[end:])
    assert {p for _, p in seen} == {0.1}
    assert json.loads((out / "config.json").read_text())["attention_dropout"] == 0.05


def first_loss(tmp_path, base, dropout: float) -> float:
    dpo_run(tmp_path, base, dropout)
    with open(tmp_path / f"metrics-{dropout}" / "train_log.csv", encoding="utf-8") as rows:
        return float(next(csv.DictReader(rows))["loss"])


def test_first_dpo_loss_is_ln2_only_without_dropout(tmp_path, tiny_srlm_model):
    """The first logged loss comes before any update, policy = reference: exactly ln 2 unless dropout
    makes the policy's forward differ from the reference's (the committed metrics' ln 2 came from dropout
    never taking effect)."""
    assert math.isclose(first_loss(tmp_path, tiny_srlm_model, 0.0), math.log(2), abs_tol=1e-6)
    assert abs(first_loss(tmp_path, tiny_srlm_model, 0.1) - math.log(2)) > 1e-5
