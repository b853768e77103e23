"""Stage `h2h@<matchup>`: the fixed evaluator compares two models' answers to every shared
held-out prompt in both orders; each game goes to the event log (`h2h_games`, partition
matchup=<name>) and the counts and win rate to a DVC metrics file, marked uninformative when the
evaluator's position bias fails the gate (reporting/position_bias.py). The first
`calibration_games` are played first, and when they already fail the gate the rest are skipped.
The same file holds the position-free reading: the per-prompt difference of the two models'
pointwise scores (stage scores@<model>)."""

from __future__ import annotations

from pathlib import Path

from ..errors import SrlmError
from ..journal import Journal
from ..judges.evaluator import make_evaluator
from ..log.eventlog import EventLog
from ..log.events import AnswerScored, EvalAnswerGenerated, GamePlayed, PromptAdded
from ..params import Params
from ..reporting import length_control, pointwise, position_bias, win_rate
from ..reporting.rm_metrics import reply_scores
from ..seeds import stage_seed
from ..storage import write_json

STAGE = "h2h"


def _answers(events: EventLog, model: str) -> dict[str, dict]:
    rows = events.read(EvalAnswerGenerated, model).to_pylist()
    if not rows:
        raise SrlmError(f"{events.partition(EvalAnswerGenerated.TABLE, model)}: no answers from {model}; "
                        f"run `dvc repro answers@{model}` first")
    return {r["prompt_id"]: r for r in rows}


def _scores(events: EventLog, model: str, answers: dict[str, dict]) -> dict[str, float]:
    """Per prompt, the mean of the fixed judge's samples for the model's answer (stage scores@<model>)."""
    where = events.partition(AnswerScored.TABLE, model)
    samples: dict[str, list] = {}
    for row in events.read(AnswerScored, model).to_pylist():
        if answers.get(row["prompt_id"], {}).get("answer_id") != row["answer_id"]:
            raise SrlmError(f"{where}: score {row['judgement_id']} is for answer {row['answer_id']}, not one of "
                            f"{model}'s current answers; run `dvc repro scores@{model}`")
        samples.setdefault(row["prompt_id"], []).append(row["score"])
    if not samples:
        raise SrlmError(f"{where}: no scores of {model}'s answers; run `dvc repro scores@{model}` first")
    return {p: reply_scores(s) for p, s in samples.items()}


def _length_controlled(answers_a: dict, answers_b: dict, scores_a: dict, scores_b: dict, games: list,
                       informative: bool, *, resamples: int, seed: int) -> dict:
    """The score difference and (when the games are informative) the win rate at equal answer length."""
    chars = lambda prompts: length_control.length_differences(  # noqa: E731
        [len(answers_a[p]["text"]) for p in prompts], [len(answers_b[p]["text"]) for p in prompts])
    scored = sorted(set(scores_a) & set(scores_b))
    d = chars(scored)
    out = {"length_diff_chars": round(float(d.mean()) * 100, 3),
           **length_control.score_difference([scores_a[p] - scores_b[p] for p in scored], d,
                                             resamples=resamples, seed=seed)}
    if informative and games:
        out.update(length_control.win_rate([win_rate.POINTS[g.outcome] for g in games],
                                           chars([g.prompt_id for g in games]), resamples=resamples, seed=seed))
    else:   # a position-biased evaluator's games say nothing, with or without length control
        out.update({"win_rate_lc": None, "win_rate_lc_ci95_low": None, "win_rate_lc_ci95_high": None,
                    "win_length_term": None})
    return out


def run(params: Params, *, matchup: str, models_root: Path, events_root: Path, metrics_dir: Path) -> dict:
    cfg = params.evaluation
    if matchup not in cfg.matchups:
        raise SrlmError(f"params.yaml: evaluation.matchups has no {matchup!r}")
    a, b = cfg.matchups[matchup].a, cfg.matchups[matchup].b
    events = EventLog(events_root)
    answers_a, answers_b = _answers(events, a), _answers(events, b)
    scores_a, scores_b = _scores(events, a, answers_a), _scores(events, b, answers_b)   # before any game is played
    texts = {p["prompt_id"]: p["text"] for p in events.read(PromptAdded, 0).to_pylist()}
    shared = sorted(set(answers_a) & set(answers_b))
    if not shared:
        raise SrlmError(f"{a} and {b} answered no prompt in common; re-run their answers stages with the same "
                        "evaluation.answers params")
    seed = stage_seed(params.seed, "h2h")
    evaluator = make_evaluator(cfg.evaluator, models_root, seed, params.generation)
    items = {p: (texts[p], answers_a[p]["text"], answers_b[p]["text"]) for p in shared}
    journal = Journal(f"h2h@{matchup}", {"evaluator": evaluator.hash, "template": evaluator.template.hash,
                                          "settings": cfg.evaluator.model_dump(), "seed": seed,
                                          "items": [items[p] for p in shared]})
    gate = dict(max_rate=cfg.evaluator.max_first_position_rate, resamples=cfg.bootstrap, seed=seed)

    def play(prompts: list[str], part: str) -> list[tuple]:
        """(verdict ab, verdict ba) per prompt: a's answer shown first, then second."""
        ab = [items[p] for p in prompts]
        ba = [(prompt, answer_b, answer_a) for prompt, answer_a, answer_b in ab]
        verdicts = evaluator.compare(ab + ba, label=f"{matchup}: {len(prompts)} games x 2 orders ({part})",
                                     journal=journal.child(part))
        return list(zip(verdicts[:len(prompts)], verdicts[len(prompts):]))

    calibration = shared[:cfg.evaluator.calibration_games]
    played = play(calibration, "calibration") if calibration else []
    if not calibration or position_bias.check([(x.choice, y.choice) for x, y in played], **gate)["informative"]:
        played += play(shared[len(calibration):], "games") if len(shared) > len(calibration) else []
    games = [GamePlayed.create(matchup=matchup, prompt_id=p, model_a=a, model_b=b,
                               answer_a_id=answers_a[p]["answer_id"], answer_b_id=answers_b[p]["answer_id"],
                               evaluator=evaluator.name, evaluator_hash=evaluator.hash,
                               template_hash=evaluator.template.hash, raw_ab=v_ab.raw, verdict_ab=v_ab.choice,
                               raw_ba=v_ba.raw, verdict_ba=v_ba.choice,
                               outcome=win_rate.outcome(v_ab.choice, v_ba.choice), stage=STAGE, seed=seed,
                               sampling=None)
             for p, (v_ab, v_ba) in zip(shared, played)]
    events.append_partition(GamePlayed, matchup, games)
    summary = win_rate.summarise([g.outcome for g in games], [v.choice for v_ab, v_ba in played for v in (v_ab, v_ba)],
                                 resamples=cfg.bootstrap, seed=seed,
                                 preferences=[win_rate.preference(v_ab.p_a, v_ba.p_a) for v_ab, v_ba in played])
    bias = position_bias.check([(x.choice, y.choice) for x, y in played], **gate)
    metrics = {"matchup": matchup, "a": a, "b": b, "evaluator": evaluator.name, **summary, **bias,
               "games_skipped": len(shared) - len(played),
               **pointwise.paired(scores_a, scores_b, resamples=cfg.bootstrap, seed=seed),
               **_length_controlled(answers_a, answers_b, scores_a, scores_b, games, bias["informative"],
                                    resamples=cfg.bootstrap, seed=seed)}
    write_json(metrics, metrics_dir / f"{matchup}.json")
    journal.clear()
    return metrics
