"""A judge as params describe it (`judge.*`), run over many items with a journal (a killed stage
resumes), and the sampling record its event rows carry. Used by the judge, eft and rm_eval
stages and by DPO checkpoint selection."""

from __future__ import annotations

from ..engine.backend import Generator, Sampling
from ..journal import Journal
from ..log.events import sampling_json
from ..params import JudgeParams
from .judge import Judge, Judgement, Template


def make_judge(generator: Generator, cfg: JudgeParams, samples: int | None = None) -> Judge:
    return Judge(generator, Template.load(cfg.template), method=cfg.method,
                 samples=samples or cfg.samples, sampling=Sampling(cfg.temperature, cfg.top_p, cfg.max_new_tokens),
                 max_prompt_tokens=cfg.max_prompt_tokens, max_response_tokens=cfg.max_response_tokens,
                 injection=cfg.injection)


def sampling_record(judge: Judge, cfg: JudgeParams) -> str:
    return sampling_json(judge.sampling.record(samples=judge.samples, max_prompt_tokens=cfg.max_prompt_tokens,
                                               max_response_tokens=cfg.max_response_tokens, injection=cfg.injection,
                                               **judge.gen.info()))


def judge_resumably(judge: Judge, items: list[tuple[str, str]], *, stage: str, model_hash: str, record: str,
                    seed: int, batch_size: int, label: str) -> tuple[list[list[Judgement]], Journal]:
    """judge.judge with a journal keyed by everything the judgements depend on; the caller clears
    the journal once its outputs are written."""
    journal = Journal(stage, {"model": model_hash, "template": judge.template.hash, "method": judge.method,
                              "sampling": record, "seed": seed, "batch_size": batch_size, "items": items})
    return judge.judge(items, seed=seed, batch_size=batch_size, label=label, journal=journal), journal
