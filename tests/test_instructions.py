"""Verifiable instructions: each check, the accuracies with their intervals, and the stage end to end."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from srlm_core.errors import InputError
from srlm_core.log.eventlog import EventLog
from srlm_core.log.events import InstructionAnswerChecked
from srlm_core.params import parse_params
from srlm_core.reporting.instruction_accuracy import summarise
from srlm_core.reporting.instructions import KINDS, arg_problem, follows
from srlm_core.steps import instructions

# kind, args, an answer that follows it, one that does not
CASES = [
    ("word_count_min", {"min": 5}, "one two three four five", "one two three four"),
    ("word_count_max", {"max": 4}, "don't count this twice", "one two three four five"),
    ("sentence_count_min", {"min": 2}, "It rains. We stay in!", "It rains, so we stay in."),
    ("sentence_count_max", {"max": 2}, "Version 2.5 is out. Try it.", "One. Two. Three."),
    ("keyword_required", {"keyword": "lava"}, "Hot LAVA flows.", "Lavatory humour."),
    ("keyword_forbidden", {"keyword": "cat"}, "A category of dogs.", "My cat sleeps."),
    ("all_lowercase", {}, "all small, even 42.", "all small but One."),
    ("all_uppercase", {}, "STOP HERE, 42!", "STOP here"),
    ("no_commas", {}, "No commas here.", "One, two."),
    ("bullet_count", {"count": 2}, "Intro:\n* one\n- two\n**bold** is not a bullet", "* one\n* two\n* three"),
    ("paragraph_count", {"count": 2}, "First part.\n\n  \nSecond part.\n", "One part.\nStill one."),
    ("json_output", {}, '```json\n{"name": "Peru"}\n```', 'Here it is: {"name": "Peru"}'),
    ("title", {}, "<<Autumn Leaves>>\nLeaves fall.", "<< >> Leaves fall."),
    ("ending_phrase", {"phrase": "That is all."}, "Mars is red. That is all.\n", "That is all. Mars is red."),
]


def test_every_kind_has_a_case():
    assert sorted(kind for kind, *_ in CASES) == sorted(KINDS)


@pytest.mark.parametrize("kind, args, good, bad", CASES, ids=[c[0] for c in CASES])
def test_each_kind_passes_and_fails(kind, args, good, bad):
    assert arg_problem(kind, args) is None
    assert follows(good, kind, args) is True
    assert follows(bad, kind, args) is False


@pytest.mark.parametrize("kind, args", [(k, a) for k, a, *_ in CASES], ids=[c[0] for c in CASES])
def test_an_answer_without_words_follows_nothing(kind, args):
    # "at most 4 words", "no commas", "do not say cat": an empty reply must not pass them
    assert follows("", kind, args) is False and follows("  ...  \n", kind, args) is False


def test_json_output_takes_arrays_but_not_bare_values():
    assert follows('[{"colour": "red"}]', "json_output", {})
    assert not follows('"just a string"', "json_output", {}) and not follows("42", "json_output", {})


# Answers a model is likely to give, each once miscounted (sentences, paragraphs, bullets, JSON)
EDGE_CASES = [
    # a numbered list: its numbers are not sentences (3, not 6 or 7)
    ("sentence_count_max", {"max": 3}, "To make tea:\n1. Boil water.\n2. Add the tea.\n3. Wait three minutes.", True),
    ("sentence_count_min", {"min": 5}, "1. Boil water.\n2) Add the tea.\n3. Wait.", False),
    # a sentence may end inside quotes or brackets (5, not 3)
    ("sentence_count_min", {"min": 5}, 'She said "Stop." He asked "Why?" They left. It rained (again.) All done.', True),
    # a title on a block of its own heads the text: three paragraphs, as ifv-23 asks
    ("paragraph_count", {"count": 3}, "<<The Lost Cat>>\n\nIt ran.\n\nWe looked.\n\nIt came home.", True),
    ("paragraph_count", {"count": 3}, "<<Title>>\n\nOnly one paragraph.", False),
    # a lone dash line, and markdown rules, are not bullets
    ("bullet_count", {"count": 1}, "-\napples\n* * *\n- - -\n* pears", True),
    # nested deeper than the JSON parser recurses: not followed, and no crash
    ("json_output", {}, '{"a": ' * 3000 + "1" + "}" * 3000, False),
]


@pytest.mark.parametrize("kind, args, answer, followed", EDGE_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(EDGE_CASES)])
def test_edge_cases_are_counted_as_a_reader_would(kind, args, answer, followed):
    assert follows(answer, kind, args) is followed


@pytest.mark.parametrize("kind, args, problem", [
    ("word_count", {"max": 3}, "unknown instruction kind"),
    ("word_count_max", {}, "takes args"),
    ("word_count_max", {"max": 0}, "whole number above 0"),
    ("word_count_max", {"max": True}, "whole number above 0"),
    ("keyword_required", {"keyword": " "}, "non-empty string"),
    ("all_lowercase", {"x": 1}, "takes args"),
    ("title", [], "must be an object"),
])
def test_bad_arguments_are_named(kind, args, problem):
    assert problem in arg_problem(kind, args)


def test_accuracies_pool_over_prompts_with_intervals():
    checked = [[("title", True), ("no_commas", True)], [("title", False), ("no_commas", True)],
               [("json_output", True)], [("json_output", False)]]
    m = summarise(checked, resamples=500, seed=3)
    assert (m["prompts"], m["instructions"], m["prompts_followed"], m["instructions_followed"]) == (4, 6, 2, 4)
    assert m["prompt_accuracy"] == 0.5 and m["instruction_accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    assert m["prompt_accuracy_ci95_low"] < 0.5 < m["prompt_accuracy_ci95_high"]
    assert m["instruction_accuracy_ci95_low"] < m["instruction_accuracy"] < m["instruction_accuracy_ci95_high"]
    assert m["by_kind"] == {"json_output": {"instructions": 2, "accuracy": 0.5},
                            "no_commas": {"instructions": 2, "accuracy": 1.0},
                            "title": {"instructions": 2, "accuracy": 0.5}}
    assert summarise(checked, resamples=500, seed=3) == m


def _params(**instructions):
    return parse_params({"evaluation": {"instructions": instructions, "bootstrap": 200}})


def test_stage_logs_checked_answers_and_writes_metrics(tiny_srlm_model, tmp_path):
    params = _params(max_prompts=5, max_new_tokens=8, batch_size=2)
    metrics = instructions.run(params, model_dir=tiny_srlm_model, events_root=tmp_path / "events",
                               metrics_dir=tmp_path / "metrics" / "M1")
    assert json.loads((tmp_path / "metrics" / "M1" / "instructions.json").read_text()) == metrics
    assert metrics["model"] == "M1" and metrics["prompts"] == 5
    assert 0 <= metrics["prompt_accuracy_ci95_low"] <= metrics["prompt_accuracy"] <= metrics["prompt_accuracy_ci95_high"]
    assert sum(k["instructions"] for k in metrics["by_kind"].values()) == metrics["instructions"]
    rows = EventLog(tmp_path / "events").read(InstructionAnswerChecked, "M1").to_pylist()
    assert [r["origin_id"] for r in rows] == [f"ifv-0{i}" for i in range(1, 6)]
    assert sum(r["followed"] for r in rows) == metrics["instructions_followed"]
    for row in rows:
        checks = json.loads(row["checks"])
        assert row["instructions"] == len(checks) and row["followed"] == sum(c["followed"] for c in checks)
        assert all(c["followed"] == follows(row["text"], c["kind"], c["args"]) for c in checks)
        assert row["stage"] == "instructions" and json.loads(row["sampling"])["temperature"] == 0.0
    assert metrics["answer_chars"] == pytest.approx(sum(len(r["text"]) for r in rows) / 5, abs=1e-6)


def test_bad_prompt_file_fails_before_the_model_loads(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "prompt": "Say hi.", "instructions": [{"kind": "shout"}]}\n')
    params = _params(prompts=str(bad))
    with pytest.raises(InputError, match="line 1, instruction 1: unknown instruction kind 'shout'"):
        instructions.run(params, model_dir=tmp_path / "no-model", events_root=tmp_path / "e", metrics_dir=tmp_path)


@pytest.mark.slow
def test_real_model_follows_some_instructions(real_m0, tmp_path):
    """SmolLM2-135M-Instruct, greedy, on the first 4 bundled prompts, cut short at 48 tokens: the
    metrics exist with intervals that contain them (not a claim about how good the model is)."""
    params = _params(max_prompts=4, max_new_tokens=48, batch_size=4)
    m = instructions.run(params, model_dir=real_m0, events_root=tmp_path / "events", metrics_dir=tmp_path / "m")
    assert (m["prompts"], m["instructions"]) == (4, 5)
    for key in ("prompt_accuracy", "instruction_accuracy"):
        assert 0 <= m[f"{key}_ci95_low"] <= m[key] <= m[f"{key}_ci95_high"] <= 1
    rows = EventLog(tmp_path / "events").read(InstructionAnswerChecked, "M0").to_pylist()
    assert all(r["text"].strip() for r in rows)


def test_srlm_metrics_shows_the_accuracies_with_intervals(tmp_path):
    from typer.testing import CliRunner

    from srlm_core.cli import app
    from srlm_core.storage import write_json

    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    m = summarise([[("title", True)], [("title", False), ("no_commas", True)]], resamples=100, seed=0)
    write_json({"model": "M2", **m}, tmp_path / "metrics" / "M2" / "instructions.json")
    result = CliRunner().invoke(app, ["metrics", "--root", str(tmp_path), "--json"])
    rows = {row["model"]: row for row in json.loads(result.output)["models"]}
    assert rows["M2"]["prompt_accuracy"] == 0.5 and rows["M2"]["instruction_accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    assert rows["M2"]["prompt_accuracy_ci95_low"] == m["prompt_accuracy_ci95_low"]
    assert rows["M1"]["prompt_accuracy"] is None
    table = CliRunner().invoke(app, ["metrics", "--root", str(tmp_path)]).output
    assert f"0.500 [{m['prompt_accuracy_ci95_low']:.3f}, {m['prompt_accuracy_ci95_high']:.3f}]" in table
