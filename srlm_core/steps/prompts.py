"""Stage `prompts`: self-instruction creation, step 1: new prompts by few-shot prompting.

Each request shows `few_shot` IFT prompts as a numbered task list and lets the generator
write the next task (plain text continuation, stopped at the end of the line: a small
chat model copies the examples when asked through its chat template). Each generated
line is filtered, and every rejected line is logged with its reason.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ..engine.backend import Sampling, open_generator
from ..errors import SrlmError
from ..inputs.similarity import most_similar
from ..journal import Journal
from ..log.eventlog import EventLog
from ..log.events import PromptAdded, PromptRejected, sampling_json
from ..params import Params
from ..seeds import stage_seed

log = logging.getLogger(__name__)
STAGE = "prompts"
REJECT_REASONS = ("unparseable", "too_short", "too_long", "duplicate", "near_duplicate", "eval_overlap",
                  "over_target")


def one_line(text: str) -> str:
    return " ".join(text.split())


def request_text(examples: list[str]) -> str:
    listed = "".join(f"Task {i}: {one_line(e)}\n" for i, e in enumerate(examples, start=1))
    return f"Here are some example tasks:\n{listed}Task {len(examples) + 1}:"


def parse(generated: str) -> str | None:
    """The new task: the first line of the continuation, or None if there is no usable line."""
    line = generated.split("\n", 1)[0].strip()
    return line or None


@dataclass(frozen=True)
class Verdict:
    reason: str | None       # None: kept
    detail: str | None = None


class PromptFilter:
    def __init__(self, seed_prompts: list[str], eval_prompts: list[str], *, min_words: int, max_chars: int,
                 max_similarity: float):
        self.seed, self.eval, self.kept = list(seed_prompts), list(eval_prompts), []
        self.min_words, self.max_chars, self.max_similarity = min_words, max_chars, max_similarity
        self._exact_seed = {one_line(p).lower() for p in self.seed}
        self._exact_eval = {one_line(p).lower() for p in self.eval}

    def check(self, text: str | None) -> Verdict:
        if text is None:
            return Verdict("unparseable", "no text on the first line")
        if len(text.split()) < self.min_words:
            return Verdict("too_short", f"{len(text.split())} words < {self.min_words}")
        if len(text) > self.max_chars:
            return Verdict("too_long", f"{len(text)} chars > {self.max_chars}")
        key = one_line(text).lower()
        if key in self._exact_eval:
            return Verdict("eval_overlap", "identical to a held-out evaluation prompt")
        if key in self._exact_seed or key in {one_line(k).lower() for k in self.kept}:
            return Verdict("duplicate", "identical to a seed or already kept prompt")
        score, match = most_similar(text, self.eval)
        if score >= self.max_similarity:
            return Verdict("eval_overlap", f"ROUGE-L {score:.2f} with eval prompt: {match[:80]}")
        score, match = most_similar(text, self.seed + self.kept)
        if score >= self.max_similarity:
            return Verdict("near_duplicate", f"ROUGE-L {score:.2f} with: {match[:80]}")
        return Verdict(None)

    def keep(self, text: str) -> None:
        self.kept.append(text)


def generator_folder(choice: str, *, current: Path, base: Path) -> Path:
    """The model folder that writes the prompts (prompts.generator): M0 (`base`, fixed as in the paper),
    current (Mt), or a model folder of the user's."""
    folder = {"M0": base, "current": current}.get(choice, Path(choice))
    if not (folder / "manifest.json").is_file():
        raise SrlmError(f"prompts.generator {choice!r}: {folder} is not a model folder written by srlm (no "
                        f"manifest.json); give M0, current, or the path of one, e.g. models/SFT")
    return folder


def run(params: Params, *, iteration: int, generator_dir: Path, ift_path: Path, events_root: Path) -> dict:
    cfg = params.prompts
    ift = pq.read_table(ift_path, columns=["prompt"]).column(0).to_pylist()
    if not ift:
        raise SrlmError(f"{ift_path}: no IFT prompts to use as few-shot examples")
    events = EventLog(events_root)
    seed_rows = events.read(PromptAdded, 0).to_pylist()
    filt = PromptFilter([r["text"] for r in seed_rows if r["source"] != "eval"],
                        [r["text"] for r in seed_rows if r["source"] == "eval"],
                        min_words=cfg.min_words, max_chars=cfg.max_chars, max_similarity=cfg.max_similarity)
    gen = open_generator(params.generation, generator_dir)
    model_hash = gen.model_hash
    tokenizer = gen.tokenizer
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_new_tokens)
    record = sampling_json(sampling.record(few_shot=cfg.few_shot, generator=cfg.generator, **gen.info()))
    seed = stage_seed(params.seed, "prompts", iteration)
    journal = Journal(f"prompts@{iteration}", {"model": model_hash, "settings": cfg.model_dump(), "engine": gen.info(),
                                                "seed": seed,
                                                "few_shot_pool": ift})
    kept: list[PromptAdded] = []
    rejected: list[PromptRejected] = []
    for round_index in range(cfg.max_rounds):
        if len(kept) >= cfg.num_prompts:
            break
        rng = random.Random(f"{seed}:{round_index}")
        requests = [rng.sample(ift, min(cfg.few_shot, len(ift))) for _ in range(cfg.requests_per_round)]
        ids = [tokenizer(request_text(r), add_special_tokens=False).input_ids for r in requests]
        outputs = gen.sample(ids, n=1, sampling=sampling, seed=seed + 100 * round_index,
                         batch_size=cfg.requests_per_round, stop_strings=["\n"],
                         label=f"writing prompts (round {round_index + 1})",
                         journal=journal.child(f"round-{round_index}"))
        for offset, (out,) in enumerate(outputs):
            request_index = round_index * cfg.requests_per_round + offset
            text = parse(out.text)
            verdict = filt.check(text) if len(kept) < cfg.num_prompts else Verdict("over_target")
            if verdict.reason is None:
                filt.keep(text)
                kept.append(PromptAdded.create(iteration=iteration, source="generated", text=text,
                                               model_hash=model_hash, origin_id=f"request-{request_index}",
                                               split=None, stage=STAGE, seed=seed, sampling=record))
            else:
                rejected.append(PromptRejected.create(
                    iteration=iteration, request_index=request_index, sample_index=0, raw_output=out.text,
                    text=text, reason=verdict.reason, detail=verdict.detail, model_hash=model_hash, stage=STAGE,
                    seed=seed, sampling=record))
    if not kept:
        raise SrlmError(f"iteration {iteration}: no generated prompt passed the filters in {cfg.max_rounds} rounds "
                        f"(see the reasons with: srlm sql \"select reason, count(*) from rejected_prompts "
                        f"group by 1\"); raise prompts.max_rounds or relax the filters")
    if len(kept) < cfg.num_prompts:
        log.warning("only %d of %d prompts passed the filters", len(kept), cfg.num_prompts)
    events.append(kept)
    events.append_partition(PromptRejected, iteration, rejected)
    journal.clear()
    return {"kept": len(kept), "rejected": len(rejected), "reasons": dict(Counter(r.reason for r in rejected))}
