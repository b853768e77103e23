"""The implicit@ step: from the event log's reply_logprobs partitions of a model, its reference and SFT
to metrics/<model>/implicit.json; and, with the real model, that a model measured against itself has
zero implicit reward and scores 1/2."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from conftest import SEED, SEED_EVAL

from srlm_core.errors import SrlmError
from srlm_core.log.eventlog import EventLog
from srlm_core.log.events import ReplyLogprobComputed
from srlm_core.log.lineage import write_manifest
from srlm_core.params import DataParams, Params
from srlm_core.steps import implicit, logprobs, seed


def perturbed(source, out, scale: float):
    """A copy of a model folder with noise added to its weights: another model on the same tokenizer."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source)
    torch.manual_seed(int(scale * 100))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    shutil.copytree(source, out)
    model.save_pretrained(out)
    write_manifest(out, name=out.name, kind="base", parent=None, training_data=None, params={})
    return out


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    out = tmp_path_factory.mktemp("seed")
    seed.run(DataParams(source=str(SEED), eval_prompts=str(SEED_EVAL)), out, out / "events")
    return out / "heldout_ranked.parquet"


def renamed(source, out):
    """The same model folder under another name (the partition a model's log-probs go to is its folder's name)."""
    out.symlink_to(source, target_is_directory=True)
    return out


def lp_event(model: str, reply_id: str, **fields) -> ReplyLogprobComputed:
    defaults = {"model": model, "group_id": "g", "reply_id": reply_id, "model_hash": "h" * 64, "tokens": 3,
                "logprob": -1.0, "stage": "logprobs", "seed": None, "sampling": None}
    return ReplyLogprobComputed.create(**{**defaults, **fields})


def test_the_step_compares_with_the_reference_and_sft(tmp_path, tiny_srlm_model, heldout):
    params = Params.model_validate({"evaluation": {"bootstrap": 200, "implicit": {"max_groups": 4}}})
    models = {"M0": renamed(tiny_srlm_model, tmp_path / "M0"), "SFT": perturbed(tiny_srlm_model, tmp_path / "SFT", 0.02),
              "M1": perturbed(tiny_srlm_model, tmp_path / "M1", 0.05)}
    for folder in models.values():
        logprobs.run(params, model_dir=folder, heldout_path=heldout, events_root=tmp_path / "events")
    m = implicit.run(params, model="M1", reference="M0", heldout_path=heldout, events_root=tmp_path / "events",
                     metrics_dir=tmp_path / "metrics" / "M1")
    assert json.loads((tmp_path / "metrics" / "M1" / "implicit.json").read_text()) == m
    assert (m["model"], m["reference"], m["groups"], m["replies_too_long"]) == ("M1", "M0", 4, 0)
    assert m["trees"] == 4 and m["pairs"] > 0 and list(m["by_depth"]) == ["1"]
    for key in ("implicit_accuracy_ref", "implicit_accuracy_sft", "likelihood_accuracy"):
        assert 0 <= m[key] <= 1 and m[f"{key}_ci95_low"] <= m[key] <= m[f"{key}_ci95_high"]
    assert m["implicit_tie_rate_ref"] == 0 and m["model_hash"] != m["ref_hash"] != m["sft_hash"]
    s = implicit.run(params, model="SFT", reference="M0", heldout_path=heldout, events_root=tmp_path / "events",
                     metrics_dir=tmp_path / "metrics" / "SFT")
    assert s["implicit_accuracy_sft"] is None and s["implicit_accuracy_ref"] is not None


def test_log_probs_of_other_replies_are_refused(tmp_path, heldout):
    log = EventLog(tmp_path / "events")
    for name, replies in (("M1", "ab"), ("M0", "ab"), ("SFT", "a")):
        log.append_partition(ReplyLogprobComputed, name, [lp_event(name, r) for r in replies])
    with pytest.raises(SrlmError, match="model=SFT scored other replies"):
        implicit.run(Params(), model="M1", reference="M0", heldout_path=heldout, events_root=log.root,
                     metrics_dir=tmp_path)
    with pytest.raises(SrlmError, match=r"reply_logprobs/model=M2: no log-probs; run `dvc repro logprobs@M2`"):
        implicit.run(Params(), model="M2", reference="M0", heldout_path=heldout, events_root=log.root,
                     metrics_dir=tmp_path)
    log.append([lp_event("M1", "a", logprob=-2.0)])   # a second run's rows beside the first's
    with pytest.raises(SrlmError, match="model=M1: holds some reply more than once"):
        implicit.run(Params(), model="M1", reference="M0", heldout_path=heldout, events_root=log.root,
                     metrics_dir=tmp_path)


def test_the_real_model_against_itself_has_zero_implicit_reward(tmp_path, real_m0, heldout):
    """Scored twice (as the model and as its reference), the real model gives the same log-probs to the bit, so
    every pair ties: accuracy exactly 1/2, tie rate 1, margin 0; the plain likelihood ranking still ranks."""
    params = Params.model_validate({"generation": {"dtype": "float32"}, "evaluation": {"bootstrap": 200}})
    log = EventLog(tmp_path / "events")
    for folder in (renamed(real_m0, tmp_path / "M1"), real_m0):
        logprobs.run(params, model_dir=folder, heldout_path=heldout, events_root=log.root)
    first, second = (log.read(ReplyLogprobComputed, n).column("logprob").to_pylist() for n in ("M1", "M0"))
    assert first == second and all(v < 0 for v in first)
    log.append_partition(ReplyLogprobComputed, "SFT", [   # M0's log-probs again, as SFT's
        ReplyLogprobComputed.create(**{**{k: v for k, v in dataclasses.asdict(e).items() if k != "logprob_id"},
                                       "model": "SFT"})
        for e in (ReplyLogprobComputed(**r) for r in log.read(ReplyLogprobComputed, "M0").to_pylist())])
    m = implicit.run(params, model="M1", reference="M0", heldout_path=heldout, events_root=log.root,
                     metrics_dir=tmp_path)
    assert m["pairs"] > 0 and m["replies_too_long"] == 0
    for side in ("ref", "sft"):
        assert (m[f"implicit_accuracy_{side}"], m[f"implicit_tie_rate_{side}"], m[f"implicit_margin_{side}"]) == \
            (0.5, 1.0, 0.0)
        assert m[f"implicit_accuracy_{side}_ci95_low"] == m[f"implicit_accuracy_{side}_ci95_high"] == 0.5
    assert m["likelihood_accuracy"] != 0.5 and m["likelihood_accuracy_per_token"] is not None
