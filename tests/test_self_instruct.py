"""Prompt writing: the few-shot request, parsing and the filters with their reasons."""

from __future__ import annotations

import pytest

from srlm_core.inputs.similarity import most_similar, rouge_l
from srlm_core.steps.prompts import PromptFilter, parse, request_text


def test_rouge_l():
    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert rouge_l("a b c d", "e f g h") == 0.0
    # LCS "the cat the mat" = 4 of 6 words in each
    assert rouge_l("the cat sat on the mat", "the cat lay near the mat") == pytest.approx(4 / 6)
    assert rouge_l("", "x") == 0.0
    assert most_similar("How to bake bread?", ["How to bake bread at home?", "Tell a joke"])[1].startswith("How")


def test_request_lists_examples_one_per_line():
    text = request_text(["First\ntask", "Second task"])
    assert text == "Here are some example tasks:\nTask 1: First task\nTask 2: Second task\nTask 3:"


def test_parse_takes_the_first_line():
    assert parse(" Write a poem about the sea.\nTask 10: more") == "Write a poem about the sea."
    assert parse("\nsomething") is None
    assert parse("   ") is None


@pytest.fixture
def filt():
    return PromptFilter(["How do I fix a leaky faucet?"], ["What is the capital of Australia?"],
                        min_words=3, max_chars=60, max_similarity=0.7)


@pytest.mark.parametrize("text,reason", [
    (None, "unparseable"),
    ("Hi there", "too_short"),
    ("Describe " + "a very long thing " * 10, "too_long"),
    ("how do i fix a leaky   faucet?", "duplicate"),
    ("How do I fix a leaky kitchen faucet?", "near_duplicate"),
    ("what is the capital of australia?", "eval_overlap"),
    ("What is the capital city of Australia?", "eval_overlap"),
    ("Write a haiku about winter mornings.", None),
])
def test_filter_reasons(filt, text, reason):
    assert filt.check(text).reason == reason


def test_kept_prompts_are_compared_with_later_ones(filt):
    assert filt.check("Write a haiku about winter mornings.").reason is None
    filt.keep("Write a haiku about winter mornings.")
    assert filt.check("Write a haiku about winter mornings.").reason == "duplicate"
    assert filt.check("Write a short haiku about winter mornings.").reason == "near_duplicate"


def test_the_prompt_writer_is_m0_the_current_model_or_a_model_folder(tmp_path):
    from srlm_core.errors import SrlmError
    from srlm_core.params import PromptsParams, parse_params
    from srlm_core.steps.prompts import generator_folder

    folders = {}
    for name in ("M0", "M1", "SFT"):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "manifest.json").write_text("{}")
    assert PromptsParams().generator == "M0"   # fixed, not Mt, as in the paper
    assert generator_folder("M0", current=folders["M1"], base=folders["M0"]) == folders["M0"]
    assert generator_folder("current", current=folders["M1"], base=folders["M0"]) == folders["M1"]
    assert generator_folder(str(folders["SFT"]), current=folders["M1"], base=folders["M0"]) == folders["SFT"]
    with pytest.raises(SrlmError, match=r"prompts.generator 'models/nowhere'.*no manifest.json"):
        generator_folder("models/nowhere", current=folders["M1"], base=folders["M0"])
    with pytest.raises(SrlmError, match="'fixed' is now written M0"):
        parse_params({"prompts": {"generator": "fixed"}})
