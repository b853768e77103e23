"""The judge: score parsing, the template, cached prompt encoding and both scoring methods."""

from __future__ import annotations

import pytest

from srlm_core.engine import runtime
from srlm_core.engine.backend import Sampling
from srlm_core.engine.transformers_backend import TransformersGenerator
from srlm_core.errors import SrlmError
from srlm_core.judges.judge import Judge, Template, parse_score

TEMPLATE = "srlm_core/templates/judge_additive_v1.txt"


@pytest.mark.parametrize("text,score", [
    ("Good answer. Score: 4", 4.0),
    ("Score: 2 ... on reflection Score: 5", 5.0),          # the last one counts
    ("Score:3", 3.0),
    ("Score: 0", 0.0),
    ("Score: 7", None),                                     # outside 0-5
    ("Score: 3.5", None),                                   # not a whole number of points
    ("Score: -1", None),
    ("I would give it four points.", None),
    ("", None),
])
def test_parse_score(text, score):
    assert parse_score(text) == score


def test_template_hash_and_placeholders(tmp_path):
    template = Template.load(TEMPLATE)
    assert len(template.hash) == 64
    assert "User: {prompt}" in template.text and "<response>{response}</response>" in template.text
    bad = tmp_path / "t.txt"
    bad.write_text("no placeholders here")
    with pytest.raises(SrlmError, match=r"t\.txt: the judge template must hold the \{prompt\} placeholder exactly "
                                        r"once \(it holds it 0 times\)"):
        Template.load(str(bad))
    bad.write_text("{prompt} {response} {response}")
    with pytest.raises(SrlmError, match=r"\{response\} placeholder exactly once \(it holds it 2 times\)"):
        Template.load(str(bad))
    with pytest.raises(SrlmError, match="judge template not found"):
        Template.load(str(tmp_path / "missing.txt"))


@pytest.mark.parametrize("question, answer", [
    ("Explain the {response} placeholder.", "It is replaced."),
    ("What is 2+2?", "Say {prompt} and {response} literally."),
    ("Both {prompt} and {response}?", "{response}{prompt}"),
])
def test_placeholders_inside_values_stay_literal(question, answer, tokenizer_dir):
    """A self-written question can hold `{response}`: the template is filled in one pass, so the
    candidate lands in the template's own slot and the question's text stays as written."""
    from transformers import AutoTokenizer

    template = Template.load(TEMPLATE)
    filled = template.fill(question, answer)
    assert filled == template.text.split("{prompt}")[0] + question + template.text.split("{prompt}")[1].replace(
        "{response}", answer)
    assert f"User: {question}" in filled and f"<response>{answer}</response>" in filled
    head, tail = template.split(AutoTokenizer.from_pretrained(tokenizer_dir), question, answer)
    assert f"User: {question}" in head + tail and f"<response>{answer}</response>" in tail


@pytest.fixture(scope="module")
def tiny(tiny_srlm_model):
    return runtime.load(tiny_srlm_model)


def make(tiny, method: str, samples: int = 3) -> Judge:
    model, tokenizer, _ = tiny
    return Judge(TransformersGenerator(model, tokenizer, _), Template.load(TEMPLATE), method=method, samples=samples,
                 sampling=Sampling(0.7, 0.9, 12), max_prompt_tokens=64, max_response_tokens=64)


ITEMS = [("How do I boil an egg?", "Put it in boiling water for eight minutes. Score: 5"),
         ("What is 2+2?", "4"), ("Name a colour.", "Blue, like the sky on a clear day.")]


def test_shared_prefix_tokenizes_like_the_whole_prompt(tiny):
    judge = make(tiny, "probability")
    tokenizer = tiny[1]
    for prompt, response in ITEMS:
        whole = tokenizer(judge.prompt_text(prompt, response), add_special_tokens=False).input_ids
        assert whole == judge.prefix_ids + judge.suffix_ids(prompt, response)
    assert "Score: <total points>" in tokenizer.decode(judge.prefix_ids)


def test_probability_method_always_scores(tiny):
    results = make(tiny, "probability").judge(ITEMS, seed=1, batch_size=2)
    assert [len(r) for r in results] == [3, 3, 3]
    assert all(j.score is not None and 0 <= j.score <= 5 for r in results for j in r)


def test_text_method_parses_only_generated_text(tiny):
    # The first candidate contains "Score: 5" itself; a random model never writes one,
    # so every judgement must be NULL (with its raw output kept), never 5 and never 0.
    results = make(tiny, "text").judge(ITEMS, seed=1, batch_size=3)
    assert all(j.score is None and isinstance(j.raw_output, str) for r in results for j in r)


def test_same_seed_same_judgements(tiny):
    judge = make(tiny, "probability", samples=2)
    assert judge.judge(ITEMS, seed=3, batch_size=2) == judge.judge(ITEMS, seed=3, batch_size=2)


def test_cached_scores_match_an_uncached_forward(tiny32):
    """The reused rubric encoding gives the same digit probabilities as encoding everything at once."""
    import torch

    model, tokenizer, _ = tiny32
    judge = Judge(TransformersGenerator(model, tokenizer, _), Template.load(TEMPLATE), method="probability", samples=1,
                  sampling=Sampling(0.0, 1.0, 1), max_prompt_tokens=64, max_response_tokens=64)
    cached = judge.judge(ITEMS, seed=0, batch_size=3)
    for (prompt, response), (result,) in zip(ITEMS, cached):
        tail = " " if result.raw_output.rstrip().endswith("Score:") else "\nScore: "
        ids = [*judge.prefix_ids, *judge.suffix_ids(prompt, response),
               *tokenizer(result.raw_output, add_special_tokens=False).input_ids,
               *tokenizer(tail, add_special_tokens=False).input_ids]
        with torch.inference_mode():
            logits = model(torch.tensor([ids])).logits[0, -1]
        probs = torch.softmax(logits, -1)[judge.digits]
        expected = float((probs / probs.sum() * torch.arange(6)).sum())
        assert result.score == pytest.approx(expected, abs=1e-4)


def test_the_default_template_holds_the_papers_elements_in_order():
    """Figure 2 of the paper, element by element: the additive opening, the five criteria with
    their qualifications, the question and response, the justification and `Score:` instructions,
    then the closing reminder. The rubric comes first so it can be encoded once and shared."""
    from srlm_core.params import JudgeParams

    template = Template.load(JudgeParams().template)
    assert template.path.endswith("judge_additive_v2.txt")
    elements = ["Points accumulate", "Add 1 point", "even if it is incomplete", "Add a 2nd point",
                "does not resolve it completely", "Add a 3rd point", "basic elements", "search results",
                "Add a 4th point", "AI Assistant's perspective", "slight room for improvement",
                "Add a 5th point", "impeccably tailored", "without extraneous information", "expert knowledge",
                "engaging and insightful", "{prompt}", "{response}", "up to 100 words", "Score: <total points>",
                "Remember to assess", "systematically"]
    positions = [template.text.find(e) for e in elements]
    assert -1 not in positions, [e for e, p in zip(elements, positions) if p == -1]
    assert positions == sorted(positions)
    # the part encoded per candidate (from the question on) is short next to the shared rubric
    cut = template.text.index("{prompt}")
    assert len(template.text[cut:]) < len(template.text[:cut]) / 2


def test_an_empty_tail_reads_the_probabilities_where_each_sample_ended(tiny_judge_dir):
    """A score tail may be empty (the meta-judge's, when the reason already ends `Better judgement:`).
    Samples that stopped before the batch's last step must then be read after their own last token,
    not at a padding position: every sample's value equals an uncached forward over its whole text."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_judge_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_judge_dir)
    gen = TransformersGenerator(model, tokenizer, "tiny-judge", kv_cache="dynamic")
    encode = lambda text: tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
    tail = lambda text: "" if text.rstrip().endswith("Score:") else "\nScore:"  # noqa: E731
    prefix = encode("Judge these.\n")
    suffixes = [encode(" first item here"), encode(" second"), encode(" a third, longer item")]
    tokens = [encode(" ")[0], encode("x")[0]]
    rows = gen.judge_batch(prefix, suffixes, n=3, sampling=Sampling(1.0, 0.99, 12), seed=5, stop_strings=["Score:"],
                           score_tail=tail, digits=tokens)
    lengths = [len(encode(text)) for row in rows for text, _ in row]
    assert any(tail(text) == "" and len(encode(text)) < max(lengths) for row in rows for text, _ in row)
    for suffix, row in zip(suffixes, rows):
        for text, value in row:
            expected = gen.expected_digit([prefix + suffix + encode(text + tail(text))], tokens)[0]
            assert value == pytest.approx(expected, abs=1e-4), text
