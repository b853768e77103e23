"""The transformers engine: batch planning, prompt-once encoding, order, the generic judge path."""

import pytest
import torch

from srlm_core.engine import runtime
from srlm_core.engine.backend import Sampling
from srlm_core.engine.transformers_backend import (
    TransformersGenerator,
    plan_batches,
    sample,
)
from srlm_core.judges.judge import Judge, Template

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


@pytest.mark.parametrize("static_cache", [False, True])
def test_samples_come_back_in_prompt_order_and_match_one_at_a_time(tiny, static_cache):
    """Greedy decoding in sorted, padded, prompt-once batches, from a dynamic or a static KV cache,
    gives each prompt what it gets alone."""
    model, tokenizer, _ = tiny
    prompts = [tokenizer(t).input_ids for t in ("a much longer prompt than the others here", "hi", "two words")]
    greedy = Sampling(0.0, 1.0, 6)
    together = sample(model, tokenizer, prompts, n=2, sampling=greedy, seed=0, batch_size=8, static_cache=static_cache)
    for prompt, samples in zip(prompts, together):
        alone = model.generate(input_ids=torch.tensor([prompt]), do_sample=False, max_new_tokens=6,
                               pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(alone[0, len(prompt):], skip_special_tokens=True)
        assert [s.text for s in samples] == [text, text]


def test_sampling_is_deterministic_for_a_seed(tiny32):
    model, tokenizer, _ = tiny32
    prompts = [tokenizer(f"prompt number {i}").input_ids for i in range(5)]
    args = dict(n=3, sampling=Sampling(0.7, 0.9, 5), seed=11, batch_size=2)
    first = sample(model, tokenizer, prompts, **args)
    assert first == sample(model, tokenizer, prompts, **args)
    assert [len(r) for r in first] == [3] * 5


def test_the_static_cache_generates_what_the_dynamic_one_does(tiny32):
    """Greedy, so the comparison is of the model's computation. Sampled tokens are not compared: the two
    caches' attention sums in other orders (logits 1 ulp apart on the AMX Xeon), and the random model's
    nearly flat distribution turns one ulp into another draw there."""
    model, tokenizer, _ = tiny32
    prompts = [tokenizer(f"prompt number {i}").input_ids for i in range(5)]
    args = dict(n=2, sampling=Sampling(0.0, 1.0, 8), seed=11, batch_size=2)
    dynamic = sample(model, tokenizer, prompts, **args)
    assert dynamic == sample(model, tokenizer, prompts, **args, static_cache=True)
    assert len({s.text for r in dynamic for s in r}) == 5   # five prompts, five continuations


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


def test_nucleus_sampler_draws_from_transformers_top_p_distribution():
    """The draws follow temperature + TopPLogitsWarper's distribution, where the top k hold the
    nucleus (peaked row) and where they do not (flat row, sorted in full): every draw inside the
    kept set, frequencies within sampling error of the probabilities."""
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    from srlm_core.engine.transformers_backend import NucleusSampler

    torch.manual_seed(0)
    draws = 40_000
    for row in (torch.randn(200) * 4, torch.randn(200) * 0.1):
        for p in (0.5, 0.9):
            expected = TopPLogitsWarper(p)(None, TemperatureLogitsWarper(0.7)(None, row[None].clone())).softmax(-1)[0]
            out = NucleusSampler(0.7, p, k=16)(None, row.expand(draws, -1).clone())
            assert torch.isfinite(out).sum(-1).eq(1).all()      # exactly one token left per row
            counts = torch.bincount(out.argmax(-1), minlength=len(row)).double() / draws
            assert counts[expected == 0].sum() == 0
            assert (counts - expected).abs().max() < 4 * (0.25 / draws) ** 0.5


@pytest.mark.parametrize("device, deterministic, expected", [("cuda", True, True), ("cuda", False, False),
                                                              ("cpu", True, False)])
def test_deterministic_algorithms_are_turned_on_for_cuda_only(tiny, monkeypatch, device, deterministic, expected):
    """generation.deterministic asks PyTorch for its deterministic kernels on CUDA (where runs of 128 tokens
    differed without them); the CPU path repeats anyway and keeps its faster kernels."""
    from types import SimpleNamespace

    from srlm_core.engine.backend import open_generator
    from srlm_core.params import GenerationParams

    _, tokenizer, h = tiny
    stand_in = SimpleNamespace(device=torch.device(device), dtype=torch.float32)  # no CUDA here to load onto
    monkeypatch.setattr(runtime, "load", lambda *a, **k: (stand_in, tokenizer, h))
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda mode, warn_only=False: calls.append(mode))
    open_generator(GenerationParams(deterministic=deterministic), "unused")
    assert calls == ([True] if expected else [])


def test_a_whitespace_stop_string_is_reported_as_a_stop(tiny):
    """The prompts stage stops at "\\n": a sample cut there stopped, it did not run out of tokens."""
    from srlm_core.engine.transformers_backend import decode_rows

    _, tokenizer, _ = tiny
    ids = tokenizer("Write a poem about the sea.\n", add_special_tokens=False).input_ids
    (row,) = decode_rows(tokenizer, torch.tensor([ids]), ["\n"])
    assert row.text.endswith("\n") and row.finish_reason == "stop"
    (row,) = decode_rows(tokenizer, torch.tensor([ids[:-1]]), ["\n"])
    assert row.finish_reason == "length"
    (row,) = decode_rows(tokenizer, torch.tensor([tokenizer("Fine. Score: ", add_special_tokens=False).input_ids]),
                         ["Score:"])
    assert row.finish_reason == "stop"
