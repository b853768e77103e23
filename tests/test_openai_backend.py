"""`generation.backend: openai` against a real `vllm serve` (the CPU build) on the tiny model: the
server is started on 127.0.0.1 by the command `srlm serve` runs, and stopped at the end.

The served engine gives what the in-process vLLM engine gives (same seeds, same samples, same
digit scores), a journaled chunk is not asked again, and a stage refuses a server that does not
serve its model. Skipped unless vLLM imports; `make test-vllm` runs it in .venv-vllm.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import urllib.request

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402
from servers import free_port, running
from transformers import AutoModelForCausalLM  # noqa: E402

from srlm_core.engine.backend import Sampling  # noqa: E402
from srlm_core.engine.openai_backend import OpenAIGenerator  # noqa: E402
from srlm_core.engine.serving import serve_command, served_name  # noqa: E402
from srlm_core.engine.vllm_backend import VllmGenerator  # noqa: E402
from srlm_core.errors import SrlmError  # noqa: E402
from srlm_core.journal import Journal  # noqa: E402
from srlm_core.params import GenerationParams  # noqa: E402

QUESTIONS = ["What is the capital of France?", "Write a haiku about rain.", "Explain recursion briefly.",
             "Name three prime numbers.", "Why is the sky blue?"]
VLLM = {"cpu_kvcache_gib": 1}


@pytest.fixture(scope="module")
def server(tiny_vllm_model, tmp_path_factory):
    """vLLM's server on the tiny model, as `srlm serve M1` starts it; its base URL."""
    port = free_port()
    cfg = GenerationParams.model_validate({"backend": "vllm", "dtype": "float32", "vllm": VLLM})
    argv, env = serve_command(tiny_vllm_model, cfg, host="127.0.0.1", port=port, python=sys.executable)
    log = tmp_path_factory.mktemp("server") / "vllm-serve.log"
    with running(argv, port, env={**os.environ, **env}, log=log, timeout=600) as url:
        yield url


@pytest.fixture(scope="module")
def served(server, tiny_vllm_model):
    cfg = GenerationParams.model_validate({"backend": "openai", "dtype": "float32",
                                           "openai": {"servers": [server], "concurrency": 4}})
    generator = OpenAIGenerator(tiny_vllm_model, cfg)
    yield generator
    generator.close()


@pytest.fixture(scope="module")
def local(tiny_vllm_model):
    generator = VllmGenerator(tiny_vllm_model, GenerationParams.model_validate(
        {"backend": "vllm", "dtype": "float32", "vllm": VLLM}))
    yield generator
    generator.close()


@pytest.fixture(scope="module")
def prompts(served) -> list[list[int]]:
    return [served.tokenizer.encode(q) for q in QUESTIONS]


def texts(rows):
    return [[s.text for s in r] for r in rows]


def finished_requests(server: str) -> float:
    """Requests the server has completed, from its Prometheus metrics."""
    metrics = urllib.request.urlopen(server.removesuffix("/v1") + "/metrics", timeout=10).read().decode()
    return sum(float(v) for v in re.findall(r'^vllm:request_success_total\{[^}]*\} ([0-9.e+]+)$', metrics, re.M))


def test_info_names_the_served_model(served, tiny_vllm_model):
    assert served.info() == {"backend": "openai", "dtype": "float32", "served_model": served_name(tiny_vllm_model)}
    assert served.model_hash in (tiny_vllm_model / "manifest.json").read_text()


def test_served_samples_equal_the_in_process_engine(served, local, prompts):
    """Same seeds, same samples: the server draws each prompt's seed as the in-process engine does."""
    sampling = Sampling(temperature=1.0, top_p=0.95, max_new_tokens=12)
    run = lambda g, seed: g.sample(prompts, n=3, sampling=sampling, seed=seed, batch_size=2,  # noqa: E731
                                   stop_strings=["Score:"])
    remote = run(served, 7)
    assert remote == run(local, 7)                       # texts, token counts, finish reasons
    assert any(len(set(r)) > 1 for r in texts(remote))  # really sampled
    assert texts(run(served, 8)) != texts(remote)
    greedy = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=10)
    assert served.sample(prompts[:2], n=2, sampling=greedy, seed=0, batch_size=4) == \
        local.sample(prompts[:2], n=2, sampling=greedy, seed=0, batch_size=4)


def test_digit_scores_equal_the_in_process_engine(served, local, prompts, tiny_vllm_model):
    real = [served.tokenizer.convert_tokens_to_ids(str(d)) for d in range(6)]   # none in the top 20: exact path
    assert served.expected_digit(prompts, real) == pytest.approx(local.expected_digit(prompts, real), abs=1e-5)
    model = AutoModelForCausalLM.from_pretrained(tiny_vllm_model, dtype=torch.float32)
    with torch.inference_mode():
        top = model(input_ids=torch.tensor([prompts[0]])).logits[0, -1].topk(4).indices.tolist()   # the top-20 path
    assert served.choice_probs(prompts[:1], top)[0] == pytest.approx(local.choice_probs(prompts[:1], top)[0], abs=1e-5)


def test_a_journaled_chunk_is_not_asked_again(served, server, prompts, tmp_path):
    sampling = Sampling(temperature=0.8, top_p=0.9, max_new_tokens=8)
    first = served.sample(prompts[:4], n=2, sampling=sampling, seed=3, batch_size=2,
                          journal=Journal("served", {"case": 1}, root=tmp_path))
    before = finished_requests(server)
    again = served.sample(prompts[:4], n=2, sampling=sampling, seed=3, batch_size=2,
                          journal=Journal("served", {"case": 1}, root=tmp_path))
    assert again == first and finished_requests(server) == before


def test_a_model_the_servers_do_not_serve_is_refused(server, tiny_vllm_model, tmp_path):
    other = tmp_path / "M2"
    shutil.copytree(tiny_vllm_model, other)
    cfg = GenerationParams.model_validate({"backend": "openai", "openai": {"servers": [server]}})
    with pytest.raises(SrlmError, match=r"no server .* serves .*M2.*srlm serve M2"):
        OpenAIGenerator(other, cfg)
