"""The vLLM backend on the tiny model: sampling, seeds, stop strings, digit scores, journal resume, two replicas.

Skipped unless vLLM imports; `make test-vllm` builds .venv-vllm with the CPU build and runs
this file (about a minute of engine start-up). One engine serves the whole module.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from srlm_core.engine.backend import Sample, Sampling  # noqa: E402
from srlm_core.engine.vllm_backend import VllmGenerator  # noqa: E402
from srlm_core.journal import Journal  # noqa: E402
from srlm_core.params import GenerationParams  # noqa: E402

QUESTIONS = ["What is the capital of France?", "Write a haiku about rain.", "Explain recursion briefly.",
             "Name three prime numbers.", "Why is the sky blue?"]


@pytest.fixture(scope="module")
def gen(tiny_vllm_model):
    cfg = GenerationParams.model_validate({"backend": "vllm", "dtype": "float32", "vllm": {"cpu_kvcache_gib": 1}})
    generator = VllmGenerator(tiny_vllm_model, cfg)
    yield generator
    generator.close()


@pytest.fixture(scope="module")
def prompts(gen) -> list[list[int]]:
    return [gen.tokenizer.encode(q) for q in QUESTIONS]


def texts(rows: list[list[Sample]]) -> list[list[str]]:
    return [[s.text for s in r] for r in rows]


def test_info_and_hash(gen, tiny_vllm_model):
    assert gen.info() == {"backend": "vllm", "dtype": "float32", "tensor_parallel_size": 1, "data_parallel_size": 1}
    assert gen.model_hash == json.loads((tiny_vllm_model / "manifest.json").read_text())["hash"]
    assert gen.tokenizer.pad_token is not None


def test_sample_shapes_and_seeds(gen, prompts):
    sampling = Sampling(temperature=1.0, top_p=0.95, max_new_tokens=12)
    run = lambda seed: gen.sample(prompts, n=3, sampling=sampling, seed=seed, batch_size=2,  # noqa: E731
                                  stop_strings=["Score:"])
    first = run(7)
    assert len(first) == len(prompts) and all(len(r) == 3 for r in first)
    for sample in (s for r in first for s in r):
        assert sample.finish_reason in ("stop", "length") and 0 <= sample.num_tokens <= 12
        assert sample.finish_reason == "stop" or sample.num_tokens == 12
    assert texts(run(7)) == texts(first)           # same seed, same samples
    assert texts(run(8)) != texts(first)
    assert len({tuple(t) for t in texts(first)}) == len(prompts)   # each prompt its own samples
    # A prompt's chunk (and so its samples) depends only on seed + chunk index, not on later prompts.
    assert texts(gen.sample(prompts[:2], n=3, sampling=sampling, seed=7, batch_size=2)) == texts(first[:2])


def test_greedy_and_stop_strings(gen, prompts):
    greedy = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=10)
    full = gen.sample(prompts[:1], n=2, sampling=greedy, seed=0, batch_size=4)[0]
    assert full[0] == full[1] and full[0].finish_reason == "length"
    # A stop string taken from the middle of the greedy text: generation ends right after it,
    # and the text keeps it (as the transformers backend does; the judge checks endswith("Score:")).
    ids = gen.tokenizer.encode(full[0].text, add_special_tokens=False)
    stop = gen.tokenizer.decode(ids[3:5]).strip()
    assert stop, full[0].text
    stopped = gen.sample(prompts[:1], n=1, sampling=greedy, seed=0, batch_size=4, stop_strings=[stop])[0][0]
    assert stopped.finish_reason == "stop" and stopped.text.endswith(stop)
    assert full[0].text.startswith(stopped.text) and stopped.num_tokens < 10


def test_expected_digit(gen, prompts, tiny_vllm_model):
    model = AutoModelForCausalLM.from_pretrained(tiny_vllm_model, dtype=torch.float32)
    with torch.inference_mode():
        logits = [model(input_ids=torch.tensor([p])).logits[0, -1].float() for p in prompts[:3]]

    def reference(row, digits):
        probs = torch.softmax(row, -1)[digits]
        return float((probs / probs.sum() * torch.arange(len(digits))).sum())

    # The real digit tokens are not among a random model's top 20: the exact path.
    digits = [gen.tokenizer.convert_tokens_to_ids(str(d)) for d in range(6)]
    values = gen.expected_digit(prompts[:3], digits)
    assert all(0 <= v <= 5 for v in values)
    assert values == pytest.approx([reference(r, digits) for r in logits], abs=1e-3)
    # "Digits" that are each prompt's top tokens: read from vLLM's top-20 log-probs.
    for prompt, row in zip(prompts[:3], logits):
        top = row.topk(4).indices.tolist()
        assert gen.expected_digit([prompt], top)[0] == pytest.approx(reference(row, top), abs=1e-3)


def test_journal_resume(gen, prompts, tmp_path):
    sampling = Sampling(temperature=0.8, top_p=0.9, max_new_tokens=8)
    journal = Journal("vllm_test", {"case": 1}, root=tmp_path)
    first = gen.sample(prompts[:4], n=2, sampling=sampling, seed=3, batch_size=2, journal=journal)
    chunk0, chunk1 = sorted(journal.dir.glob("chunk-*.json"))
    # Mark chunk 0 as finished with recognisable text; drop chunk 1 as if the run was killed in it.
    chunk0.write_text(json.dumps([[["from the journal", 1, "stop"]] * 2] * 2))
    chunk1.unlink()
    resumed = gen.sample(prompts[:4], n=2, sampling=sampling, seed=3, batch_size=2,
                         journal=Journal("vllm_test", {"case": 1}, root=tmp_path))
    assert texts(resumed[:2]) == [["from the journal"] * 2] * 2      # taken, not regenerated
    assert resumed[2:] == first[2:]                                  # regenerated: same seed, same samples


def test_data_parallel_matches_one_replica(gen, prompts, tiny_vllm_model):
    """data_parallel_size 2 (two engine processes, one core each here) gives exactly what one engine
    gives: the same sampled chunks (each seeded from seed + chunk index, whichever replica runs it)
    and the same digit scores (prompts split between the replicas), on both scoring paths."""
    model = AutoModelForCausalLM.from_pretrained(tiny_vllm_model, dtype=torch.float32)
    with torch.inference_mode():
        top = model(input_ids=torch.tensor([prompts[0]])).logits[0, -1].topk(4).indices.tolist()
    real = [gen.tokenizer.convert_tokens_to_ids(str(d)) for d in range(6)]   # the exact path
    sampling = Sampling(temperature=1.0, top_p=0.95, max_new_tokens=12)

    def run(g):
        return (g.sample(prompts, n=3, sampling=sampling, seed=11, batch_size=2, stop_strings=["Score:"]),
                g.expected_digit(prompts, real), g.expected_digit(prompts, top))

    one = run(gen)
    cfg = GenerationParams.model_validate({"backend": "vllm", "dtype": "float32",
                                           "vllm": {"cpu_kvcache_gib": 1, "data_parallel_size": 2}})
    pair = VllmGenerator(tiny_vllm_model, cfg)
    try:
        assert pair.info()["data_parallel_size"] == 2 and len(pair.pool.procs) == 2
        two = run(pair)
    finally:
        procs = list(pair.pool.procs)
        pair.close()
    assert not any(p.is_alive() for p in procs)
    assert two[0] == one[0]                       # texts, token counts and finish reasons
    assert any(len(set(row)) > 1 for row in texts(one[0]))          # really sampled: a prompt's n samples differ
    assert two[1] == one[1] and two[2] == one[2]
