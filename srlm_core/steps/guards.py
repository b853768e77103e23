"""Stage `guards@<model>`: once iteration t has trained <model> = M(t+1) from Mt and both are evaluated,
hold four signs of judge failure and reward hacking, and one of training that did not move the policy,
against the thresholds of params.yaml `guards` (docs/guards.md):

  top_share         share of iteration t's candidates whose mean judge score (by Mt) is >= guards.top_score
  score_sd          standard deviation of those candidate scores (0-5 scale)
  length_growth     mean characters of M(t+1)'s held-out answers / Mt's, over the prompts both answered
  rm_accuracy_drop  Mt's RM pairwise accuracy against the held-out human rankings minus M(t+1)'s
  dpo_pairs_loss    M(t+1)'s DPO loss on its own training pairs after training (ln 2 = 0.693 before)

Each check is a `guard_checks` event (partition iteration=t) and an entry of metrics/guards/<model>.json.
A tripped check is logged as a warning; with guards.action: fail the stage then stops with an error,
after both are written.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import SrlmError
from ..judges.candidate_scores import add_view as add_scores_view
from ..log.eventlog import EventLog
from ..log.events import EvalAnswerGenerated, GuardChecked, JudgementRecorded, sampling_json
from ..log.query import iteration_views
from ..params import GuardsParams, Params
from ..storage import read_json, write_json

STAGE = "guards"
# guard -> (its threshold in params.yaml `guards`, whether a value above it trips; else below it does)
THRESHOLDS = {"top_share": ("max_top_share", True), "score_sd": ("min_score_sd", False),
              "length_growth": ("max_length_growth", True), "rm_accuracy_drop": ("max_rm_accuracy_drop", True),
              "dpo_pairs_loss": ("max_dpo_pairs_loss", True)}
TRIPPED = ("warn", "fail")   # the outcomes of a tripped check, as guards.action says


@dataclass(frozen=True)
class Measure:
    """What one guard measured (None when there was nothing to measure), and the numbers behind it or why not."""
    value: float | None
    reason: str


def judge_collapse(scores: list[float], top_score: float, iteration: int) -> dict[str, Measure]:
    """top_share and score_sd of the candidates' mean judge scores (candidates with no valid sample left out)."""
    if not scores:
        gone = Measure(None, f"no candidate of iteration {iteration} has a score")
        return {"top_share": gone, "score_sd": gone}
    top = sum(s >= top_score for s in scores)
    mean = statistics.fmean(scores)
    return {"top_share": Measure(top / len(scores), f"{top} of {len(scores)} scored candidates have a mean "
                                 f"score >= {top_score:g}"),
            "score_sd": Measure(statistics.pstdev(scores), f"over {len(scores)} scored candidates, mean score "
                                f"{mean:.3f}")}


def length_growth(answers: dict[str, str], parent_answers: dict[str, str], model: str, parent: str) -> Measure:
    """Mean characters of `model`'s held-out answers over `parent`'s, on the prompts (ids) both answered."""
    shared = sorted(answers.keys() & parent_answers.keys())
    if not shared:
        return Measure(None, f"no held-out prompt answered by both {model} and {parent}")
    mean, parent_mean = (statistics.fmean(len(texts[p]) for p in shared) for texts in (answers, parent_answers))
    if parent_mean == 0:
        return Measure(None, f"{parent}'s answers are all empty")
    return Measure(mean / parent_mean, f"{model} {mean:.0f} chars vs {parent} {parent_mean:.0f}, mean over "
                   f"{len(shared)} held-out prompts")


def _accuracy_text(name: str, rm: dict) -> str:
    low, high = rm.get("pairwise_accuracy_ci95_low"), rm.get("pairwise_accuracy_ci95_high")
    interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return f"{name} {rm['pairwise_accuracy']:.3f}{interval}"


def rm_accuracy_drop(rm: dict, parent_rm: dict, model: str, parent: str) -> Measure:
    """Pairwise accuracy (metrics/<name>/rm_eval.json) of `parent` minus `model`'s: positive when it fell."""
    missing = [n for n, m in ((parent, parent_rm), (model, rm)) if m.get("pairwise_accuracy") is None]
    if missing:
        return Measure(None, f"no pairwise accuracy for {' and '.join(missing)} (no held-out pair of replies "
                       "with different human ranks and scores)")
    return Measure(parent_rm["pairwise_accuracy"] - rm["pairwise_accuracy"],
                   f"{_accuracy_text(parent, parent_rm)} -> {_accuracy_text(model, rm)}, "
                   f"{rm.get('pairs')} held-out pairs")


def dpo_pairs_loss(train: dict, model: str) -> Measure:
    """The DPO loss of `model` on its own training pairs (metrics/<model>/train.json, measured after training in
    the precision it was trained and is run in): near ln 2 when DPO barely moved the policy."""
    if train.get("carried_forward"):
        return Measure(None, f"{model} is its parent carried forward (no pairs; dpo.allow_empty)")
    if train.get("pairs_loss") is None:
        return Measure(None, f"{model} was trained by SFT on the top responses (pairs.positive_only): no DPO loss")
    return Measure(train["pairs_loss"], f"{model} after {train['steps']} steps on {train['examples']} pairs "
                   f"(ln 2 = 0.693 untrained): reward accuracy {train['pairs_reward_accuracy']:.3f}, margin "
                   f"{train['pairs_reward_margin']:.3f}")


def verdict(guard: str, measure: Measure, cfg: GuardsParams) -> tuple[float | None, str, str]:
    """(threshold, outcome, reason) of one guard: ok, skipped, or, tripped, guards.action (warn | fail)."""
    param, above = THRESHOLDS[guard]
    threshold = getattr(cfg, param)
    if measure.value is None:
        return threshold, "skipped", measure.reason
    if threshold is None:
        return None, "skipped", f"off (guards.{param} is null); {measure.reason}"
    tripped = measure.value > threshold if above else measure.value < threshold
    return threshold, cfg.action if tripped else "ok", measure.reason


def candidate_scores(events: EventLog, iteration: int) -> list[float]:
    """Each judged candidate's mean judge score, as the judge stage recorded it (judges/candidate_scores.py), NULLs (no
    valid sample) left out."""
    if not events.paths(JudgementRecorded, iteration):
        raise SrlmError(f"{events.partition(JudgementRecorded.TABLE, iteration)}: no judgements; "
                        f"run the judge stage of iteration {iteration} first")
    con = iteration_views(events, iteration, (JudgementRecorded,))
    try:
        add_scores_view(con, events, iteration)
        found = con.execute("select score from candidate_scores where score is not null order by candidate_id").fetchall()
    finally:
        con.close()
    return [row[0] for row in found]


def read_answers(events: EventLog, model: str) -> tuple[dict[str, str], set[str]]:
    """({prompt_id: text}, the model hashes that wrote them) of one model's held-out answers."""
    rows = events.read(EvalAnswerGenerated, model, columns=["prompt_id", "text", "model_hash"]).to_pylist()
    if not rows:
        raise SrlmError(f"{events.partition(EvalAnswerGenerated.TABLE, model)}: no held-out answers; "
                        f"run `dvc repro answers@{model}`")
    return {r["prompt_id"]: r["text"] for r in rows}, {r["model_hash"] for r in rows}


def read_metrics(metrics_root: Path, model: str, name: str, stage: str) -> dict:
    """metrics/<model>/<name>.json, which `stage`@<model> writes."""
    found = read_json(metrics_root / model / f"{name}.json")
    if not found:
        raise SrlmError(f"{metrics_root / model / f'{name}.json'}: not found; run `dvc repro {stage}@{model}`")
    return found


def run(params: Params, *, iteration: int, model: str, parent: str, events_root: Path, metrics_root: Path) -> dict:
    cfg = params.guards
    events = EventLog(events_root)
    answers, hashes = read_answers(events, model)
    if len(hashes) != 1:
        raise SrlmError(f"{events.partition(EvalAnswerGenerated.TABLE, model)}: answers by {len(hashes)} different "
                        f"weights; re-run `dvc repro answers@{model}`, which replaces the partition")
    measures = {**judge_collapse(candidate_scores(events, iteration), cfg.top_score, iteration),
                "length_growth": length_growth(answers, read_answers(events, parent)[0], model, parent),
                "rm_accuracy_drop": rm_accuracy_drop(read_metrics(metrics_root, model, "rm_eval", "rm_eval"),
                                                     read_metrics(metrics_root, parent, "rm_eval", "rm_eval"),
                                                     model, parent),
                "dpo_pairs_loss": dpo_pairs_loss(read_metrics(metrics_root, model, "train", "dpo"), model)}
    settings, model_hash = sampling_json(cfg.model_dump()), next(iter(hashes))
    rows = []
    for guard, measure in measures.items():
        threshold, outcome, reason = verdict(guard, measure, cfg)
        rows.append(GuardChecked.create(iteration=iteration, model=model, parent=parent, guard=guard,
                                        value=measure.value, threshold=threshold, outcome=outcome, reason=reason,
                                        model_hash=model_hash, stage=STAGE, seed=None, sampling=settings))
        tripped = outcome in TRIPPED
        (logging.warning if tripped else logging.info)(
            "%s %s: %s (threshold %s): %s", guard, outcome.upper() if tripped else outcome, _number(measure.value),
            _number(threshold), reason)
    events.append_partition(GuardChecked, iteration, rows)
    tripped = [r.guard for r in rows if r.outcome in TRIPPED]
    result = {"model": model, "parent": parent, "iteration": iteration, "action": cfg.action, "tripped": tripped,
              "checks": {r.guard: {"value": _rounded(r.value), "threshold": r.threshold, "outcome": r.outcome,
                                   "reason": r.reason} for r in rows}}
    path = write_json(result, metrics_root / "guards" / f"{model}.json")
    if tripped and cfg.action == "fail":
        raise SrlmError(f"iteration {iteration} ({parent} -> {model}) failed its guards: {', '.join(tripped)} "
                        f"(guards.action: fail). The checks are in {path} and in `srlm sql \"select * from "
                        f"guard_checks where iteration = {iteration}\"`; docs/guards.md says what each points to. "
                        "To accept the iteration as it is, loosen the threshold (null turns a check off) or set "
                        "guards.action: warn, then `dvc repro`")
    return result


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
