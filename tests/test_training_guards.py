"""A NaN or infinite loss (or gradient norm) stops SFT and DPO with a clear error, and no
model folder or training metrics are written. Uses the tiny random model; seconds each."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pyarrow as pa
import pytest
from test_training import aift

from srlm_core.engine import runtime
from srlm_core.errors import SrlmError
from srlm_core.params import parse_params
from srlm_core.steps import dpo
from srlm_core.training import sft
from srlm_core.training.trainer import StopOnNonFinite, TrainingDiverged

SMALL = {"max_steps": 4, "batch_size": 1, "grad_accum": 1, "max_length": 64}


def test_callback_checks_loss_and_gradient_norm():
    guard = StopOnNonFinite("sft")
    args, state = SimpleNamespace(learning_rate=1e-5), SimpleNamespace(global_step=3, max_steps=10)
    guard.on_log(args, state, None, logs={"loss": 1.5, "grad_norm": 2.0, "learning_rate": 1e-5})
    guard.on_log(args, state, None, logs={"train_runtime": 1.0})
    for key, value in [("loss", math.nan), ("loss", math.inf), ("grad_norm", -math.inf)]:
        with pytest.raises(TrainingDiverged) as info:
            guard.on_log(args, state, None, logs={"loss": 1.0, key: value})
        message = str(info.value)
        assert f"{key} is {value} at step 3 of 10" in message
        assert "lower sft.learning_rate" in message and "check the training data" in message
    assert issubclass(TrainingDiverged, SrlmError)  # stages print it without a traceback and exit 1


def test_sft_with_a_huge_learning_rate_stops_and_writes_nothing(tiny_srlm_model, tmp_path):
    # Without dropout the weights reach NaN by step 2; a dropout draw can keep them huge but finite.
    params = parse_params({"sft": {**SMALL, "learning_rate": 1e3, "dropout": 0.0}})
    examples = sft.conversations(pa.table({"prompt": [f"q{i}" for i in range(4)], "completion": ["an answer"] * 4}))
    with pytest.raises(TrainingDiverged, match=r"is nan at step \d of 4 .*lower sft\.learning_rate"):
        sft.train(name="S", base_dir=tiny_srlm_model, examples=examples, data_name="IFT", data_files=[],
                  cfg=params.sft, train_cfg=params.train, seed=0, out_dir=tmp_path / "S",
                  metrics_dir=tmp_path / "metrics", params_record={})
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no S, no .S.partial, no metrics


def test_dpo_with_a_nan_loss_stops_at_the_first_step(tiny_srlm_model, tmp_path, monkeypatch):
    load = runtime.load

    def poisoned_load(*args, **kwargs):
        model, tokenizer, digest = load(*args, **kwargs)
        # the final norm, not lm_head: TRL's DPO applies lm_head's weight without calling the module
        model.get_decoder().norm.register_forward_hook(lambda module, inputs, output: output * math.nan)
        return model, tokenizer, digest

    monkeypatch.setattr(runtime, "load", poisoned_load)
    rows = [{"prompt_id": str(i), "prompt": f"q{i}", "chosen": "good answer", "rejected": "bad"} for i in range(2)]
    folder = aift(tmp_path, rows)
    params = parse_params({"dpo": {**SMALL, "batch_size": 2}})
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 1 of 4 .*lower dpo\.learning_rate"):
        dpo.run(params, prev_dir=tiny_srlm_model, aift_dir=folder, out_dir=tmp_path / "M2",
                metrics_dir=tmp_path / "metrics")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aift"]
