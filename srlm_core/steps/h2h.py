"""Stage `h2h@<matchup>`: the fixed evaluator compares two models' answers to every shared
held-out prompt in both orders; each game goes to the event log (`h2h_games`, partition
matchup=<name>) and the counts and win rate to a DVC metrics file."""

from __future__ import annotations

from pathlib import Path

from ..errors import SrlmError
from ..journal import Journal
from ..judges.evaluator import make_evaluator
from ..log.eventlog import EventLog
from ..log.events import EvalAnswerGenerated, GamePlayed, PromptAdded
from ..params import Params
from ..reporting import win_rate
from ..seeds import stage_seed
from ..storage import write_json

STAGE = "h2h"


def _answers(events: EventLog, model: str) -> dict[str, dict]:
    rows = events.read(EvalAnswerGenerated, model).to_pylist()
    if not rows:
        raise SrlmError(f"{events.partition(EvalAnswerGenerated.TABLE, model)}: no answers from {model}; "
                        f"run `dvc repro answers@{model}` first")
    return {r["prompt_id"]: r for r in rows}


def run(params: Params, *, matchup: str, models_root: Path, events_root: Path, metrics_dir: Path) -> dict:
    cfg = params.evaluation
    if matchup not in cfg.matchups:
        raise SrlmError(f"params.yaml: evaluation.matchups has no {matchup!r}")
    a, b = cfg.matchups[matchup].a, cfg.matchups[matchup].b
    events = EventLog(events_root)
    answers_a, answers_b = _answers(events, a), _answers(events, b)
    texts = {p["prompt_id"]: p["text"] for p in events.read(PromptAdded, 0).to_pylist()}
    shared = sorted(set(answers_a) & set(answers_b))
    if not shared:
        raise SrlmError(f"{a} and {b} answered no prompt in common; re-run their answers stages with the same "
                        "evaluation.answers params")
    seed = stage_seed(params.seed, "h2h")
    evaluator = make_evaluator(cfg.evaluator, models_root, seed, params.generation)
    ab = [(texts[p], answers_a[p]["text"], answers_b[p]["text"]) for p in shared]
    ba = [(prompt, answer_b, answer_a) for prompt, answer_a, answer_b in ab]
    journal = Journal(f"h2h@{matchup}", {"evaluator": evaluator.hash, "template": evaluator.template.hash,
                                          "settings": cfg.evaluator.model_dump(), "seed": seed, "items": ab + ba})
    verdicts = evaluator.compare(ab + ba, label=f"{matchup}: {len(shared)} games x 2 orders", journal=journal)
    first, second = verdicts[:len(shared)], verdicts[len(shared):]
    games = [GamePlayed.create(matchup=matchup, prompt_id=p, model_a=a, model_b=b,
                               answer_a_id=answers_a[p]["answer_id"], answer_b_id=answers_b[p]["answer_id"],
                               evaluator=evaluator.name, evaluator_hash=evaluator.hash,
                               template_hash=evaluator.template.hash, raw_ab=v_ab.raw, verdict_ab=v_ab.choice,
                               raw_ba=v_ba.raw, verdict_ba=v_ba.choice,
                               outcome=win_rate.outcome(v_ab.choice, v_ba.choice), stage=STAGE, seed=seed,
                               sampling=None)
             for p, v_ab, v_ba in zip(shared, first, second)]
    events.append_partition(GamePlayed, matchup, games)
    summary = win_rate.summarise([g.outcome for g in games], [v.choice for v in verdicts],
                                 resamples=cfg.bootstrap, seed=seed,
                                 preferences=[win_rate.preference(v_ab.p_a, v_ba.p_a)
                                              for v_ab, v_ba in zip(first, second)])
    metrics = {"matchup": matchup, "a": a, "b": b, "evaluator": evaluator.name, **summary}
    write_json(metrics, metrics_dir / f"{matchup}.json")
    journal.clear()
    return metrics
