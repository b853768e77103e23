"""SFT and DPO wrappers: completion-only loss, the schedule, EFT selection, empty AIFT."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest
import torch

from srlm_core.engine import runtime
from srlm_core.errors import SrlmError
from srlm_core.params import parse_params
from srlm_core.steps import dpo
from srlm_core.steps import sft as sft_step
from srlm_core.storage import write_json, write_parquet
from srlm_core.training import sft
from srlm_core.training.trainer import gradient_checkpointing


def test_prompt_tokens_carry_no_loss(tiny_srlm_model, tmp_path):
    model, tokenizer, _ = runtime.load(tiny_srlm_model, for_training=True)
    examples = sft.conversations(pa.table({"prompt": ["What is two plus two?"], "completion": ["It is 4."]}))
    cfg = parse_params({}).sft
    trainer = sft.build_trainer(model, tokenizer, examples, cfg, sft.sft_args(cfg, tmp_path, 0))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    labelled = tokenizer.decode(ids[labels != -100])
    assert labelled.startswith("It is 4.")
    assert "two plus two" in tokenizer.decode(ids[labels == -100])
    assert "two plus two" not in labelled


def test_schedule_is_the_papers(tiny_srlm_model, tmp_path):
    params = parse_params({"sft": {"max_steps": 3, "batch_size": 1, "grad_accum": 1, "max_length": 64}})
    examples = sft.conversations(pa.table({"prompt": [f"q{i}" for i in range(3)], "completion": ["a"] * 3}))
    model, tokenizer, _ = runtime.load(tiny_srlm_model, for_training=True, dropout=0.1)
    trainer = sft.build_trainer(model, tokenizer, examples, params.sft, sft.sft_args(params.sft, tmp_path, 0))
    assert trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps == 1
    assert {m.attention_dropout for m in model.modules() if hasattr(m, "attention_dropout")} == {0.1}
    trainer.train()
    lrs = [row["learning_rate"] for row in trainer.state.log_history if "learning_rate" in row]
    assert lrs[0] == pytest.approx(5.5e-6)
    assert lrs[1] - lrs[2] == pytest.approx(lrs[0] - lrs[1])   # linear
    assert lrs[2] > 1.1e-6


def aift(tmp_path, rows):
    folder = tmp_path / "aift"
    schema = pa.schema([(c, pa.string()) for c in ("prompt_id", "prompt", "chosen", "rejected")])
    write_parquet(pa.Table.from_pylist(rows, schema=schema), folder / "train.parquet")
    write_json({"mode": "dpo", "skipped": {"tie": 2}, "judge_model": "j"}, folder / "summary.json")
    return folder


def test_zero_pairs_stop_clearly(tiny_srlm_model, tmp_path):
    with pytest.raises(SrlmError, match=r"AIFT\(M1\) has no pairs .*dpo.allow_empty"):
        dpo.run(parse_params({}), prev_dir=tiny_srlm_model, aift_dir=aift(tmp_path, []), out_dir=tmp_path / "M2",
                metrics_dir=tmp_path / "metrics")
    assert not (tmp_path / "M2").exists()


def test_zero_pairs_carry_forward_when_allowed(tiny_srlm_model, tmp_path):
    manifest = dpo.run(parse_params({"dpo": {"allow_empty": True}}), prev_dir=tiny_srlm_model,
                       aift_dir=aift(tmp_path, []), out_dir=tmp_path / "M2", metrics_dir=tmp_path / "metrics")
    assert manifest["carried_forward"] is True and manifest["parent"]["name"] == "M1"
    assert json.loads((tmp_path / "metrics" / "train.json").read_text())["carried_forward"] == 1


def test_dpo_writes_a_standalone_model(tiny_srlm_model, tmp_path):
    rows = [{"prompt_id": str(i), "prompt": f"q{i}", "chosen": "good answer", "rejected": "bad"} for i in range(2)]
    params = parse_params({"dpo": {"max_steps": 1, "batch_size": 2, "grad_accum": 1, "max_length": 64}})
    manifest = dpo.run(params, prev_dir=tiny_srlm_model, aift_dir=aift(tmp_path, rows), out_dir=tmp_path / "M2",
                       metrics_dir=tmp_path / "metrics")
    assert manifest["training_data"]["name"] == "AIFT(M1)" and manifest["kind"] == "dpo-full"
    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert metrics["steps"] == 1 and "final_rewards_margins" in metrics
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "M2").config.attention_dropout == 0.0


def test_pair_metrics_show_what_dpo_did(tiny_srlm_model, tmp_path):
    """The figures on all training pairs start at ln 2 / margin 0 (policy == reference) and move
    when DPO trains: a run that learns must end with a lower loss and chosen replies ahead."""
    rows = [{"prompt_id": str(i), "prompt": f"q{i}", "chosen": "a good and careful answer", "rejected": "no"}
            for i in range(4)]

    def train(**dpo_cfg):
        params = parse_params({"dpo": {"batch_size": 4, "grad_accum": 1, "max_length": 64, **dpo_cfg}})
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        dpo.run(params, prev_dir=tiny_srlm_model, aift_dir=aift(out, rows), out_dir=out / "M2",
                metrics_dir=out / "metrics")
        return json.loads((out / "metrics" / "train.json").read_text())

    still = train(max_steps=1, learning_rate=1e-12, lr_end=1e-13)
    assert still["pairs_loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert still["pairs_reward_margin"] == pytest.approx(0, abs=1e-3)
    moved = train(max_steps=6, learning_rate=1e-3, lr_end=1e-4)
    assert moved["steps"] == 6
    assert moved["pairs_loss"] < 0.6 and moved["pairs_reward_accuracy"] == 1.0 and moved["pairs_reward_margin"] > 0


def test_pair_metrics_are_means_over_pairs(tiny_srlm_model, tmp_path):
    """Nine pairs, the last one pair 0 reversed (so not every pair can be won): the recorded reward accuracy,
    margin and loss equal the means over the nine pairs of beta * (log-ratio chosen - log-ratio rejected)
    recomputed here with the trained policy and its parent, each pair weighing the same. (TRL averages
    per-batch means; with eval batches of 8 the ninth pair alone weighed as much as the other eight.)"""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from srlm_core.engine.prompts import chat_prompt_ids

    rows = [{"prompt_id": str(i), "prompt": f"question number {i}?", "chosen": f"good answer {i} " * (1 + i % 3),
             "rejected": f"bad {i}" * (1 + (i * 7) % 4)} for i in range(8)]
    rows.append({"prompt_id": "8", "prompt": rows[0]["prompt"], "chosen": rows[0]["rejected"],
                 "rejected": rows[0]["chosen"]})
    params = parse_params({"dpo": {"batch_size": 2, "grad_accum": 1, "epochs": 1.0, "max_length": 128,
                                   "learning_rate": 1e-3, "lr_end": 1e-4}})
    dpo.run(params, prev_dir=tiny_srlm_model, aift_dir=aift(tmp_path, rows), out_dir=tmp_path / "M2",
            metrics_dir=tmp_path / "metrics")
    recorded = json.loads((tmp_path / "metrics" / "train.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tiny_srlm_model)

    def logp(model, prompt: str, reply: str) -> float:
        head = chat_prompt_ids(tokenizer, prompt)
        ids = tokenizer(tokenizer.apply_chat_template([{"role": "user", "content": prompt},
                                                       {"role": "assistant", "content": reply}], tokenize=False),
                        add_special_tokens=False).input_ids
        with torch.inference_mode():
            logits = model(torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
        return logits.gather(-1, torch.tensor(ids[1:])[:, None])[len(head) - 1:].sum().item()

    policy, parent = (AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
                      for d in (tmp_path / "M2", tiny_srlm_model))
    beta = params.dpo.beta
    margins = [beta * ((logp(policy, r["prompt"], r["chosen"]) - logp(parent, r["prompt"], r["chosen"]))
                       - (logp(policy, r["prompt"], r["rejected"]) - logp(parent, r["prompt"], r["rejected"])))
               for r in rows]
    assert recorded["pairs_reward_accuracy"] == pytest.approx(sum(m > 0 for m in margins) / 9)
    assert recorded["pairs_reward_margin"] == pytest.approx(sum(margins) / 9, abs=1e-3)
    losses = [-torch.nn.functional.logsigmoid(torch.tensor(m)).item() for m in margins]
    assert recorded["pairs_loss"] == pytest.approx(sum(losses) / 9, abs=1e-3)


def safetensors_dtypes(folder) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        return {str(weights.get_slice(name).get_dtype()) for name in weights.keys()}


@pytest.mark.parametrize("model_dtype, generation_dtype, written", [
    ("bfloat16", "float32", "BF16"), ("float32", "bfloat16", "F32"),
    ("auto", "bfloat16", "BF16"), ("auto", "float32", "F32")])
def test_trained_models_are_written_in_model_dtype(tiny_srlm_model, tmp_path, monkeypatch, model_dtype,
                                                   generation_dtype, written):
    """model.dtype decides the checkpoint's tensors (training keeps fp32); auto follows generation.dtype."""
    monkeypatch.delenv("SRLM_DTYPE", raising=False)
    rows = [{"prompt_id": str(i), "prompt": f"q{i}", "chosen": "good answer", "rejected": "bad"} for i in range(2)]
    params = parse_params({"model": {"dtype": model_dtype}, "generation": {"dtype": generation_dtype},
                           "dpo": {"max_steps": 1, "batch_size": 2, "grad_accum": 1, "max_length": 64}})
    manifest = dpo.run(params, prev_dir=tiny_srlm_model, aift_dir=aift(tmp_path, rows), out_dir=tmp_path / "M2",
                       metrics_dir=tmp_path / "metrics")
    assert safetensors_dtypes(tmp_path / "M2") == {written}
    assert manifest["params"]["model"]["dtype"] == {"BF16": "bfloat16", "F32": "float32"}[written]
    model, _, _ = runtime.load(tmp_path / "M2", for_training=True)
    assert model.dtype == torch.float32   # the next training starts from fp32 master weights again


@pytest.mark.parametrize("choice, forced, expected", [
    ("auto", None, torch.float32), ("bfloat16", None, torch.bfloat16), ("auto", "bfloat16", torch.bfloat16),
    ("bfloat16", "float32", torch.float32)])
def test_auto_precision_is_fp32_on_every_cpu(monkeypatch, choice, forced, expected):
    """Even where the CPU has bf16 units: bf16 rounds the CPU profile's DPO updates away (docs/dpo-profile.md).
    generation.dtype, then SRLM_DTYPE, override it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2", "avx512_bf16", "amx_bf16"})
    if forced:
        monkeypatch.setenv("SRLM_DTYPE", forced)
    else:
        monkeypatch.delenv("SRLM_DTYPE", raising=False)
    assert runtime.compute_dtype(choice) == expected
    assert runtime.native_bf16()
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2"})
    assert not runtime.native_bf16()


@pytest.mark.parametrize("generation_dtype, computed", [("auto", torch.float32), ("bfloat16", torch.bfloat16)])
def test_dpo_trains_in_the_precision_the_models_run_in(tiny_srlm_model, tmp_path, monkeypatch, generation_dtype,
                                                       computed):
    """generation.dtype sets the precision of the training's matmuls (bf16 autocast over fp32 master weights), so
    the loss on the pairs that DPO reports is the one the model has as it runs afterwards."""
    monkeypatch.delenv("SRLM_DTYPE", raising=False)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    seen = set()
    build = dpo.build_trainer

    def hooked(model, *args, **kwargs):
        model.model.layers[0].mlp.down_proj.register_forward_hook(
            lambda module, inputs, output: seen.add(output.dtype) if module.training else None)
        return build(model, *args, **kwargs)

    monkeypatch.setattr(dpo, "build_trainer", hooked)
    rows = [{"prompt_id": str(i), "prompt": f"q{i}", "chosen": "good answer", "rejected": "bad"} for i in range(2)]
    params = parse_params({"generation": {"dtype": generation_dtype},
                           "dpo": {"max_steps": 1, "batch_size": 2, "grad_accum": 1, "max_length": 64}})
    dpo.run(params, prev_dir=tiny_srlm_model, aift_dir=aift(tmp_path, rows), out_dir=tmp_path / "M2",
            metrics_dir=tmp_path / "metrics")
    assert seen == {computed}


def test_gradient_checkpointing_recomputes_the_layers_and_trains_the_same_weights(tiny_srlm_model, tmp_path,
                                                                                  monkeypatch):
    """train.gradient_checkpointing: what a decoder layer computes (its MLP here) runs twice a step, forward and
    again in the backward pass, instead of once, and the trained weights are the same; auto is off on a CPU."""
    from safetensors.torch import load_file

    examples = sft.conversations(pa.table({"prompt": ["q1", "q2"], "completion": ["a first answer", "another"]}))
    build = sft.build_trainer

    def train(choice) -> tuple[int, dict]:
        calls = []

        def hooked(model, *args, **kwargs):
            mlp = model.model.layers[0].mlp   # its forward, counted: module hooks do not run on the recompute
            forward = mlp.forward
            mlp.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
            return build(model, *args, **kwargs)

        monkeypatch.setattr(sft, "build_trainer", hooked)
        params = parse_params({"sft": {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "max_length": 64},
                               "train": {"gradient_checkpointing": choice}})
        out = tmp_path / str(choice)
        sft.train(name="S", base_dir=tiny_srlm_model, examples=examples, data_name="IFT", data_files=[],
                  cfg=params.sft, train_cfg=params.train, seed=0, out_dir=out, metrics_dir=tmp_path / f"m-{choice}",
                  params_record={})
        return len(calls), load_file(str(out / "model.safetensors"))

    (plain, weights), (recomputed, checkpointed) = train(False), train(True)
    assert (plain, recomputed) == (2, 4)
    assert not gradient_checkpointing(parse_params({}).train)   # auto, without CUDA
    assert weights.keys() == checkpointed.keys()
    assert all(torch.equal(weights[k], checkpointed[k]) for k in weights)
    assert not all(torch.equal(weights[k], load_file(str(tiny_srlm_model / "model.safetensors"))[k]) for k in weights)


def test_sft_writes_model_dtype(tiny_srlm_model, tmp_path):
    params = parse_params({"sft": {"max_steps": 1, "batch_size": 1, "grad_accum": 1, "max_length": 64}})
    examples = sft.conversations(pa.table({"prompt": ["q"], "completion": ["a"]}))
    sft.train(name="S", base_dir=tiny_srlm_model, examples=examples, data_name="IFT", data_files=[],
              cfg=params.sft, train_cfg=params.train, seed=0, out_dir=tmp_path / "S",
              metrics_dir=tmp_path / "m", params_record={}, save_dtype=torch.bfloat16)
    assert safetensors_dtypes(tmp_path / "S") == {"BF16"}


def test_cited_test_files_exist():
    """Docstrings and docs that point at a test point at one that exists (sft.py once cited tests/test_sft.py)."""
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    cited = re.compile(r"tests/(\w+\.py)(?:::(\w+))?")
    sources = [*repo.glob("srlm_core/**/*.py"), *repo.glob("stages/*.py"), *repo.glob("bench/*.py"),
               *repo.glob("docs/*.md"), repo / "README.md"]
    missing = []
    for source in sources:
        for file, name in cited.findall(source.read_text(encoding="utf-8")):
            path = repo / "tests" / file
            if not path.is_file() or (name and f"def {name}(" not in path.read_text(encoding="utf-8")):
                missing.append(f"{source.relative_to(repo)}: tests/{file}{'::' + name if name else ''}")
    assert missing == []


def test_lora_is_merged(tiny_srlm_model, tmp_path):
    params = parse_params({"sft": {"method": "lora", "max_steps": 1, "batch_size": 1, "grad_accum": 1,
                                   "max_length": 64}})
    examples = sft.conversations(pa.table({"prompt": ["q"], "completion": ["a"]}))
    sft.train(name="S", base_dir=tiny_srlm_model, examples=examples, data_name="IFT", data_files=[],
              cfg=params.sft, train_cfg=params.train, seed=0, out_dir=tmp_path / "S",
              metrics_dir=tmp_path / "m", params_record={})
    names = {p.name for p in (tmp_path / "S").iterdir()}
    assert "model.safetensors" in names and "adapter_config.json" not in names


def test_positive_only_trains_with_sft(tiny_srlm_model, tmp_path):
    folder = tmp_path / "aift"
    write_parquet(pa.table({"prompt_id": ["1"], "prompt": ["q"], "completion": ["the best answer"],
                            "score": [4.5]}), folder / "train.parquet")
    write_json({"mode": "sft", "skipped": {}, "judge_model": "j"}, folder / "summary.json")
    params = parse_params({"sft": {"max_steps": 1, "batch_size": 1, "grad_accum": 1, "max_length": 64}})
    manifest = dpo.run(params, prev_dir=tiny_srlm_model, aift_dir=folder, out_dir=tmp_path / "M2",
                       metrics_dir=tmp_path / "metrics")
    assert manifest["kind"] == "sft-full" and manifest["positive_only"] is True
    assert manifest["training_data"]["name"] == "AIFT(M1)"


@pytest.fixture(scope="module")
def seed_outputs(tmp_path_factory):
    from conftest import SEED, SEED_EVAL

    from srlm_core.steps import seed as seed_data

    root = tmp_path_factory.mktemp("seed")
    params = parse_params({"data": {"source": str(SEED), "eval_prompts": str(SEED_EVAL)}})
    seed_data.run(params.data, root / "processed", root / "events")
    return root


def run_eft(tiny_srlm_model, seed_outputs, tmp_path, **eft):
    from srlm_core.steps import eft as eft_stage

    params = parse_params({"eft": {"max_groups": 3, **eft},
                           "judge": {"max_new_tokens": 4, "max_prompt_tokens": 32, "max_response_tokens": 32}})
    return eft_stage.run(params, judge_dir=tiny_srlm_model, groups_path=seed_outputs / "processed" /
                         "ranked_groups.parquet", events_root=tmp_path / "events", out_dir=tmp_path / "eft")


def test_eft_too_few_examples_fails_when_asked(tiny_srlm_model, seed_outputs, tmp_path):
    with pytest.raises(SrlmError, match=r"only \d+ EFT examples .*eft.min_examples is 1000"):
        run_eft(tiny_srlm_model, seed_outputs, tmp_path, min_examples=1000, fallback="fail")
    assert not (tmp_path / "eft").exists()


def test_eft_fallback_is_recorded_down_to_m1(tiny_srlm_model, seed_outputs, tmp_path):
    summary = run_eft(tiny_srlm_model, seed_outputs, tmp_path, min_examples=1000, fallback="ift_only")
    assert summary["fallback"] == "ift_only" and summary["examples"] == 0
    assert summary["judged_groups"] == 3 and summary["kept_groups"] + sum(summary["dropped_groups"].values()) == 3
    params = parse_params({"sft": {"max_steps": 1, "batch_size": 1, "grad_accum": 1, "max_length": 64}})
    manifest = sft_step.run(params, name="M1", base_dir=tiny_srlm_model, ift_path=seed_outputs / "processed" /
                       "ift.parquet", eft_dir=tmp_path / "eft", out_dir=tmp_path / "M1x", metrics_dir=tmp_path / "m")
    assert manifest["training_data"]["name"].startswith("IFT (EFT fallback") and manifest["eft_examples"] == 0
    summary = run_eft(tiny_srlm_model, seed_outputs, tmp_path / "u", min_examples=1000, fallback="unfiltered")
    assert summary["fallback"] == "unfiltered" and summary["examples"] > 0
