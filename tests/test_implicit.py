"""The implicit@ step: from the log-prob files of a model, its reference and SFT to metrics/<model>/implicit.json;
and, with the real model, that a model measured against itself has zero implicit reward and scores 1/2."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import SEED, SEED_EVAL

from srlm_core.errors import SrlmError
from srlm_core.log.lineage import write_manifest
from srlm_core.params import DataParams, Params
from srlm_core.steps import implicit, logprobs, seed
from srlm_core.storage import write_parquet


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


def test_the_step_compares_with_the_reference_and_sft(tmp_path, tiny_srlm_model, heldout):
    params = Params.model_validate({"evaluation": {"bootstrap": 200, "implicit": {"max_groups": 4}}})
    models = {"M0": tiny_srlm_model, "SFT": perturbed(tiny_srlm_model, tmp_path / "SFT", 0.02),
              "M1": perturbed(tiny_srlm_model, tmp_path / "M1", 0.05)}
    for name, folder in models.items():
        logprobs.run(params, model_dir=folder, heldout_path=heldout, out_path=tmp_path / "lp" / f"{name}.parquet")
    m = implicit.run(params, model="M1", reference="M0", heldout_path=heldout, logprobs_dir=tmp_path / "lp",
                     metrics_dir=tmp_path / "metrics" / "M1")
    assert json.loads((tmp_path / "metrics" / "M1" / "implicit.json").read_text()) == m
    assert (m["model"], m["reference"], m["groups"], m["replies_too_long"]) == ("M1", "M0", 4, 0)
    assert m["trees"] == 4 and m["pairs"] > 0 and list(m["by_depth"]) == ["1"]
    for key in ("implicit_accuracy_ref", "implicit_accuracy_sft", "likelihood_accuracy"):
        assert 0 <= m[key] <= 1 and m[f"{key}_ci95_low"] <= m[key] <= m[f"{key}_ci95_high"]
    assert m["implicit_tie_rate_ref"] == 0 and m["model_hash"] != m["ref_hash"] != m["sft_hash"]
    s = implicit.run(params, model="SFT", reference="M0", heldout_path=heldout, logprobs_dir=tmp_path / "lp",
                     metrics_dir=tmp_path / "metrics" / "SFT")
    assert s["implicit_accuracy_sft"] is None and s["implicit_accuracy_ref"] is not None


def test_log_prob_files_of_other_replies_are_refused(tmp_path, heldout):
    rows = [dict(model="X", model_hash="h", group_id="g", reply_id=r, tokens=3, logprob=-1.0) for r in ("a", "b")]
    for name, replies in (("M1", rows), ("M0", rows), ("SFT", rows[:1])):
        write_parquet(pa.Table.from_pylist(replies, schema=logprobs.SCHEMA), tmp_path / f"{name}.parquet")
    with pytest.raises(SrlmError, match="SFT.parquet scored other replies"):
        implicit.run(Params(), model="M1", reference="M0", heldout_path=heldout, logprobs_dir=tmp_path,
                     metrics_dir=tmp_path)
    with pytest.raises(SrlmError, match="M2.parquet: no log-probs"):
        implicit.run(Params(), model="M2", reference="M0", heldout_path=heldout, logprobs_dir=tmp_path,
                     metrics_dir=tmp_path)


def test_the_real_model_against_itself_has_zero_implicit_reward(tmp_path, real_m0, heldout):
    """Scored twice (as the model and as its reference), the real model gives the same log-probs to the bit, so
    every pair ties: accuracy exactly 1/2, tie rate 1, margin 0; the plain likelihood ranking still ranks."""
    params = Params.model_validate({"generation": {"dtype": "float32"}, "evaluation": {"bootstrap": 200}})
    for name in ("M1", "M0"):
        logprobs.run(params, model_dir=real_m0, heldout_path=heldout, out_path=tmp_path / f"{name}.parquet")
    shutil.copy(tmp_path / "M0.parquet", tmp_path / "SFT.parquet")
    first, second = (pq.read_table(tmp_path / f"{n}.parquet").column("logprob").to_pylist() for n in ("M1", "M0"))
    assert first == second and all(v < 0 for v in first)
    m = implicit.run(params, model="M1", reference="M0", heldout_path=heldout, logprobs_dir=tmp_path,
                     metrics_dir=tmp_path)
    assert m["pairs"] > 0 and m["replies_too_long"] == 0
    for side in ("ref", "sft"):
        assert (m[f"implicit_accuracy_{side}"], m[f"implicit_tie_rate_{side}"], m[f"implicit_margin_{side}"]) == \
            (0.5, 1.0, 0.0)
        assert m[f"implicit_accuracy_{side}_ci95_low"] == m[f"implicit_accuracy_{side}_ci95_high"] == 0.5
    assert m["likelihood_accuracy"] != 0.5 and m["likelihood_accuracy_per_token"] is not None
