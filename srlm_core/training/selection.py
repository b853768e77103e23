"""DPO checkpoint selection (`dpo.eval_steps`), as the paper did it: save the policy every N
optimizer steps, then keep the checkpoint that a held-out measure likes best.

The paper saved a checkpoint every 200 steps and kept the best by an evaluation on 253 held-out
examples. Here the measure is the fixed judge's view of each checkpoint's answers: every
checkpoint (and the final model) answers the first `dpo.selection_prompts` eval-split seed
prompts (one sample each, sampled as candidates are, the same seed for all), M0 judges each
answer with the judge prompt (`judge.*`, the same judge for every checkpoint), and the
checkpoint with the highest mean score wins (a tie goes to the later step). All scores and the choice go into the model's manifest.
"""

from __future__ import annotations

import copy
import logging
import re
import shutil
import statistics
from pathlib import Path

import torch
from transformers import TrainerCallback

from ..engine import runtime
from ..engine.backend import Sampling, open_generator
from ..engine.prompts import chat_prompt_ids
from ..errors import SrlmError
from ..judges.runs import make_judge
from ..log.eventlog import EventLog
from ..log.events import PromptAdded
from ..log.lineage import write_manifest
from ..params import Params
from ..seeds import stage_seed

log = logging.getLogger(__name__)


class SnapshotEvery(TrainerCallback):
    """Save the policy as a loadable model folder `<folder>/step-<n>` every `steps` optimizer steps
    (not at the last step: the final model is the last candidate). A run resumed after a kill keeps
    the snapshots it already wrote."""

    def __init__(self, steps: int, folder: Path, tokenizer, parent: Path, dtype: torch.dtype):
        self.steps, self.folder, self.tokenizer, self.parent, self.dtype = steps, folder, tokenizer, parent, dtype

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if step % self.steps or step >= state.max_steps or not state.is_world_process_zero:
            return
        # A copy: saving merges LoRA adapters and casts to the checkpoint dtype, in place.
        save_candidate(copy.deepcopy(getattr(model, "module", model)), self.tokenizer,
                       self.folder / f"step-{step}", self.parent, self.dtype)


def save_candidate(model, tokenizer, folder: Path, parent: Path, dtype: torch.dtype) -> Path:
    """One candidate checkpoint as a model folder with a manifest (so the generation engines load it)."""
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    runtime.save(model, tokenizer, tmp, dtype)
    write_manifest(tmp, name=folder.name, kind="dpo-checkpoint", parent=parent, training_data=None, params={})
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


STEP = re.compile(r"^step-(\d+)$")


def saved(folder: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete candidate under `folder` (a `.partial` one was cut off by a kill)."""
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STEP.match(p.name))] if folder.is_dir() else []
    return sorted(found)


def held_out_prompts(events_root: Path, limit: int) -> list[str]:
    """The first `limit` eval-split seed prompts by id: held out from training, and not the prompts
    the head-to-head evaluation answers (those are data.eval_prompts)."""
    events = EventLog(events_root)
    rows = [p for p in events.read(PromptAdded, 0).to_pylist() if p["source"] == "seed" and p["split"] == "eval"]
    if not rows:
        raise SrlmError(f"{events.partition(PromptAdded.TABLE, 0)}: no eval-split seed prompts to select DPO "
                        "checkpoints on; raise data.eval_fraction or set dpo.eval_steps: 0")
    return [p["text"] for p in sorted(rows, key=lambda p: p["prompt_id"])[:limit]]


def score(params: Params, candidate: Path, prompts: list[str], judge) -> float:
    """The fixed judge's mean score of `candidate`'s answers to `prompts`."""
    cfg = params.candidates   # answers are sampled as the loop samples candidates
    gen = open_generator(params.generation, candidate)
    try:
        answers = gen.sample([chat_prompt_ids(gen.tokenizer, p) for p in prompts], n=1,
                             sampling=Sampling(cfg.temperature, cfg.top_p, cfg.max_new_tokens),
                             seed=stage_seed(params.seed, "selection_answers"), batch_size=cfg.batch_size,
                             label=f"checkpoint {candidate.name}: answering {len(prompts)} held-out prompts")
    finally:
        getattr(gen, "close", lambda: None)()
    judged = judge.judge([(p, a.text) for p, (a,) in zip(prompts, answers)], seed=stage_seed(params.seed, "selection_judge"),
                         batch_size=params.judge.batch_size, label=f"checkpoint {candidate.name}: judging")
    return statistics.fmean(s.score for row in judged for s in row if s.score is not None)


def select(params: Params, candidates: list[tuple[int, Path]], *, judge_dir: Path, events_root: Path) -> dict:
    """{"chosen_step", "chosen": folder, "scores": {step: mean score}, ...} over (step, folder) candidates."""
    prompts = held_out_prompts(events_root, params.dpo.selection_prompts)
    judge_gen = open_generator(params.generation, judge_dir)
    judge = make_judge(judge_gen, params.judge)
    scores = {step: round(score(params, folder, prompts, judge), 6) for step, folder in candidates}
    getattr(judge_gen, "close", lambda: None)()
    best = max(scores.values())
    chosen_step = max(step for step, value in scores.items() if value == best)
    log.info("checkpoint selection: %s -> step %d", scores, chosen_step)
    return {"chosen_step": chosen_step, "chosen": dict(candidates)[chosen_step],
            "scores": {str(step): value for step, value in scores.items()}, "judge": judge_gen.model_hash,
            "prompts": len(prompts), "measure": "mean score of the fixed judge on held-out answers"}
