"""The transformers engine: batch planning, prompt-once encoding, order, the generic judge path."""

import pytest
import torch

from srlm_core import runtime
from srlm_core.backend import TransformersGenerator
from srlm_core.generation import Sampling, plan_batches, sample
from srlm_core.judge import Judge, Template

TEMPLATE = "srlm_core/templates/judge_additive_v1.txt"


@pytest.fixture(scope="module")
def tiny(tiny_srlm_model):
    return runtime.load(tiny_srlm_model)


def test_batches_are_sorted_by_length_and_bounded_in_tokens():
    prompts = [[1] * n for n in (9, 2, 5, 2, 7, 30)]
    batches = plan_batches(prompts, n=2, batch_size=3, max_new_tokens=10, max_batch_tokens=100)
    assert sorted(i for b in batches for i in b) == list(range(6))
    lengths = [len(prompts[i]) for b in batches for i in b]
    assert lengths == sorted(lengths)
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * 2 * (max(len(prompts[i]) for i in b) + 10) <= 100
    assert batches[-1] == [5]      # too long to share a batch, still generated alone


def test_samples_come_back_in_prompt_order_and_match_one_at_a_time(tiny):
    """Greedy decoding in sorted, padded, prompt-once batches gives each prompt what it gets alone."""
    model, tokenizer, _ = tiny
    prompts = [tokenizer(t).input_ids for t in ("a much longer prompt than the others here", "hi", "two words")]
    greedy = Sampling(0.0, 1.0, 6)
    together = sample(model, tokenizer, prompts, n=2, sampling=greedy, seed=0, batch_size=8)
    for prompt, samples in zip(prompts, together):
        alone = model.generate(input_ids=torch.tensor([prompt]), do_sample=False, max_new_tokens=6,
                               pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(alone[0, len(prompt):], skip_special_tokens=True)
        assert [s.text for s in samples] == [text, text]


def test_sampling_is_deterministic_and_independent_of_the_token_cap_split(tiny):
    model, tokenizer, _ = tiny
    prompts = [tokenizer(f"prompt number {i}").input_ids for i in range(5)]
    args = dict(n=3, sampling=Sampling(0.7, 0.9, 5), seed=11, batch_size=2)
    first = sample(model, tokenizer, prompts, **args)
    assert first == sample(model, tokenizer, prompts, **args)
    assert [len(r) for r in first] == [3] * 5


@pytest.mark.parametrize("method", ["text", "probability"])
def test_the_generic_judge_path_gives_the_same_kind_of_judgements(tiny, method):
    """fast=False (the path every engine without a shared cache takes) yields one judgement per sample;
    probability scoring always yields a number in [0, 5]."""
    model, tokenizer, h = tiny
    gen = TransformersGenerator(model, tokenizer, h)
    items = [("What is 2+2?", "4"), ("Name a colour.", "Blue.")]
    for fast in (True, False):
        judge = Judge(gen, Template.load(TEMPLATE), method=method, samples=2, sampling=Sampling(0.7, 0.9, 8),
                      max_prompt_tokens=32, max_response_tokens=32, fast=fast)
        results = judge.judge(items, seed=3, batch_size=2)
        assert [len(r) for r in results] == [2, 2]
        if method == "probability":
            assert all(0 <= j.score <= 5 for r in results for j in r)


def test_nucleus_from_top_k_filters_like_transformers_top_p():
    """Same kept tokens as TopPLogitsWarper, both where the top k hold the nucleus (peaked rows) and
    where they do not (flat rows, sorted in full)."""
    from transformers.generation.logits_process import TopPLogitsWarper

    from srlm_core.generation import NucleusFromTopK

    torch.manual_seed(0)
    peaked = torch.randn(6, 5000) * 6
    flat = torch.randn(3, 5000) * 0.1
    for scores in (peaked, flat, torch.cat([peaked, flat])):
        for p in (0.5, 0.9, 0.99):
            ours = NucleusFromTopK(p, k=64)(None, scores.clone())
            theirs = TopPLogitsWarper(p)(None, scores.clone())
            assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
