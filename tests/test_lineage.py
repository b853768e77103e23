"""Manifests, the lineage chain and `verify`."""

from __future__ import annotations

import json

import pytest
from test_eventlog import prompt

from srlm_core.errors import SrlmError
from srlm_core.log.eventlog import EventLog
from srlm_core.log.lineage import (
    chain,
    data_hashes,
    read_manifest,
    staging,
    verify,
    write_manifest,
)


def make_model(root, name, parent=None, content=b"weights", data=None):
    with staging(root / name) as tmp:
        (tmp / "model.safetensors").write_bytes(content + name.encode())
        (tmp / "config.json").write_text("{}")
        write_manifest(tmp, name=name, kind="base" if parent is None else "sft", parent=parent,
                       training_data=data, params={"x": 1})
    return root / name


def test_chain_back_to_the_base(tmp_path):
    (tmp_path / "ift.parquet").write_bytes(b"ift")
    data = dict(data_hashes([tmp_path / "ift.parquet"]), name="IFT")
    m0 = make_model(tmp_path, "M0")
    m1 = make_model(tmp_path, "M1", parent=m0, data=data)
    steps = chain(m1)
    assert [s["name"] for s in steps] == ["M1", "M0"]
    assert steps[0]["parent_hash"] == steps[1]["hash"] == read_manifest(m0)["hash"]
    assert steps[0]["training_data"] == "IFT" and steps[0]["training_data_hash"] == data["hash"]
    assert "torch" in read_manifest(m1)["versions"]


def test_changed_parent_breaks_the_chain(tmp_path):
    m0 = make_model(tmp_path, "M0")
    m1 = make_model(tmp_path, "M1", parent=m0)
    make_model(tmp_path, "M0", content=b"other")
    with pytest.raises(SrlmError, match="parent was changed"):
        chain(m1)


def test_staging_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with staging(tmp_path / "M9") as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_verify_names_changed_model_and_event_files(tmp_path):
    models, events = tmp_path / "models", tmp_path / "events"
    make_model(models, "M0")
    event_file = EventLog(events).append([prompt("a")])
    checked, problems = verify(models, events)
    assert checked == 3 and problems == []

    (models / "M0" / "model.safetensors").write_bytes(b"tampered")
    data = bytearray(event_file.read_bytes())
    data[-20] ^= 0xFF
    event_file.write_bytes(bytes(data))
    _, problems = verify(models, events)
    assert any("M0/model.safetensors: changed" in p for p in problems)
    assert any(event_file.name in p for p in problems)


def test_verify_reports_missing_and_extra_files(tmp_path):
    m0 = make_model(tmp_path, "M0")
    (m0 / "config.json").unlink()
    (m0 / "extra.bin").write_bytes(b"?")
    _, problems = verify(tmp_path, tmp_path / "no-events")
    assert any("config.json: missing" in p for p in problems)
    assert any("extra.bin: not in manifest" in p for p in problems)
    assert json.loads((m0 / "manifest.json").read_text())["name"] == "M0"


@pytest.mark.parametrize("model_dtype, generation_dtype, written", [
    ("auto", "bfloat16", "bfloat16"), ("auto", "float32", "float32"), ("bfloat16", "float32", "bfloat16")])
def test_m0_is_written_in_model_dtype_and_its_manifest_says_which(tmp_path, tiny_model_dir, monkeypatch,
                                                                   model_dtype, generation_dtype, written):
    """model.dtype auto follows generation.dtype for the base stage too; the manifest records what auto
    resolved to on this machine."""
    from safetensors import safe_open

    from srlm_core.params import ModelParams
    from srlm_core.steps import base as base_model

    monkeypatch.delenv("SRLM_DTYPE", raising=False)
    manifest = base_model.run(ModelParams(base=str(tiny_model_dir), dtype=model_dtype), tmp_path / "M0",
                              generation_dtype=generation_dtype)
    with safe_open(str(tmp_path / "M0" / "model.safetensors"), framework="pt") as weights:
        assert {weights.get_slice(name).get_dtype() for name in weights.keys()} == {
            {"bfloat16": "BF16", "float32": "F32"}[written]}
    assert manifest["params"]["model"]["dtype"] == written
    assert verify(tmp_path, tmp_path / "no-events")[1] == []
