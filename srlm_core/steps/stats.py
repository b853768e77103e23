"""Stage `stats`: per-iteration statistics from the event log and the evaluation metrics,
gathered into one DVC metrics file and the tables that `dvc plots` and `srlm report` draw.

Writes under reports/:
  stats.json            per iteration (prompts written/filtered/paired, lengths, scores,
                        margins), per model (reward-modelling, implicit-reward metrics, answer
                        length and pointwise score, verifiable instruction following, its
                        training run's final figures, the share of answers that changed) and
                        per matchup (the paired score difference and whether the games are
                        informative)
  plots/iterations.csv  one row per iteration (the same numbers as stats.json)
  plots/scores.csv      judge score histogram: iteration, bin (lower edge, width 0.5), count
  plots/models.csv      one row per evaluated model, in evaluation.models order
  plots/h2h.csv         one row per matchup: win rate (empty where the games are uninformative), paired
                        score difference, their intervals
  plots/training.csv    loss by step of every trained model (SFT, M1: SFT; M2...: DPO)
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ..log.query import connect
from ..params import Params
from ..storage import atomic_write_bytes, read_json, write_json

ITERATION_SQL = Path(__file__).parent / "iteration_stats.sql"
RM_KEYS = ("pairwise_accuracy", "pairwise_accuracy_ci95_low", "pairwise_accuracy_ci95_high", "exact_match",
           "spearman", "kendall", "top_scored_5", "parse_failure_rate", "tie_rate", "groups", "pairs",
           "text_parse_rate", "text_parse_rate_ci95_low", "text_parse_rate_ci95_high")
TRAIN_KEYS = ("steps", "final_loss", "pairs_loss", "pairs_reward_accuracy", "pairs_reward_margin")
CHANGE_KEYS = ("parent", "answers_compared", "answers_changed")
IMPLICIT_KEYS = ("reference", "implicit_accuracy_ref", "implicit_accuracy_ref_ci95_low",
                 "implicit_accuracy_ref_ci95_high", "implicit_margin_ref", "implicit_accuracy_sft",
                 "implicit_accuracy_sft_ci95_low", "implicit_accuracy_sft_ci95_high", "implicit_margin_sft",
                 "implicit_margin_lc_ref", "implicit_margin_lc_ref_ci95_low", "implicit_margin_lc_ref_ci95_high",
                 "implicit_length_slope_ref", "implicit_margin_lc_sft", "implicit_margin_lc_sft_ci95_low",
                 "implicit_margin_lc_sft_ci95_high", "implicit_length_slope_sft",
                 "likelihood_accuracy", "likelihood_accuracy_per_token")
SCORE_KEYS = ("score_mean", "score_mean_ci95_low", "score_mean_ci95_high")
IF_KEYS = ("prompt_accuracy", "prompt_accuracy_ci95_low", "prompt_accuracy_ci95_high", "instruction_accuracy",
           "instruction_accuracy_ci95_low", "instruction_accuracy_ci95_high")
WIN_RATE_KEYS = ("win_rate", "win_rate_ci95_low", "win_rate_ci95_high")
H2H_KEYS = ("a", "b", "games", "wins", "ties", "losses", "win_rate", "win_rate_ci95_low", "win_rate_ci95_high",
            "decisive_rate", "first_position_rate", "mean_preference", "mean_preference_ci95_low",
            "mean_preference_ci95_high", "first_position_rate_ci95_low", "first_position_rate_ci95_high",
            "informative", "games_skipped", "score_a", "score_b", "score_diff", "score_diff_ci95_low",
            "score_diff_ci95_high", "score_a_higher", "score_b_higher", "length_diff_chars", "score_diff_lc",
            "score_diff_lc_ci95_low", "score_diff_lc_ci95_high", "score_length_slope", "win_rate_lc",
            "win_rate_lc_ci95_low", "win_rate_lc_ci95_high", "win_length_term")


def _clean(value):
    """Plain JSON numbers: NaN (an empty average) becomes null, floats are rounded for stable files."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    return value


def _rows(con, sql: str) -> list[dict]:
    result = con.sql(sql)
    return [{k: _clean(v) for k, v in zip(result.columns, row)} for row in result.fetchall()]


def write_csv(rows: list[dict], path: Path, columns: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def answer_changes(params: Params, con) -> dict[str, dict]:
    """For each iteration's model: the share of held-out prompts it answers differently from the model
    it was trained from (same prompts, same sampling seed), so a DPO that leaves the policy where it
    was shows as 0. Only iterations whose parent is evaluated too."""
    evaluated = set(params.evaluation.models)
    out = {}
    for name, it in params.iterations.items():
        if name in evaluated and it.prev in evaluated:
            compared, changed = con.execute(
                "select count(*), avg((c.text <> p.text)::int) from eval_answers c join eval_answers p "
                "using (prompt_id) where c.model = ? and p.model = ?", [name, it.prev]).fetchone()
            out[name] = {"parent": it.prev, "answers_compared": compared, "answers_changed": _clean(changed)}
    return out


def model_rows(params: Params, con, metrics_root: Path) -> list[dict]:
    answers = {r["model"]: r for r in _rows(con, "select model, count(*) as answers, avg(length(text)) as answer_chars, "
                                                 "avg(num_tokens) as answer_tokens from eval_answers group by all")}
    changes = answer_changes(params, con)
    rows = []
    for order, name in enumerate(params.evaluation.models):
        rm = read_json(metrics_root / name / "rm_eval.json")
        train = read_json(metrics_root / name / "train.json")
        implicit = read_json(metrics_root / name / "implicit.json")
        scores = read_json(metrics_root / name / "scores.json")
        followed = read_json(metrics_root / name / "instructions.json")
        lengths = answers.get(name, {})
        rows.append({"model": name, "order": order, **{k: rm.get(k) for k in RM_KEYS},
                     **{k: implicit.get(k) for k in IMPLICIT_KEYS},
                     **{k: lengths.get(k) for k in ("answers", "answer_chars", "answer_tokens")},
                     **{f"train_{k}": train.get(k) for k in TRAIN_KEYS},
                     **{k: changes.get(name, {}).get(k) for k in CHANGE_KEYS},
                     **{k: scores.get(k) for k in SCORE_KEYS},
                     **{k: followed.get(k) for k in IF_KEYS}})
    return rows


def h2h_rows(params: Params, metrics_root: Path) -> list[dict]:
    rows = []
    for name in params.evaluation.matchups:
        found = read_json(metrics_root / "h2h" / f"{name}.json")
        if found:
            rows.append({"matchup": name, **{k: found.get(k) for k in H2H_KEYS}})
    return rows


def training_rows(params: Params, metrics_root: Path) -> list[dict]:
    rows = []
    for name in ["SFT", "M1", *params.iterations]:
        log = metrics_root / name / "train_log.csv"
        if log.is_file():
            with log.open(newline="") as f:
                rows += [{"model": name, "step": int(r["step"]), "loss": float(r["loss"])}
                         for r in csv.DictReader(f) if r.get("loss")]
    return rows


def run(params: Params, *, events_root: Path, metrics_root: Path, out_dir: Path) -> dict:
    con = connect(events_root)
    iterations = _rows(con, ITERATION_SQL.read_text())
    reasons = _rows(con, "select iteration, reason, count(*) as n from rejected_prompts group by all order by all")
    for row in iterations:
        row["rejected_by_reason"] = {r["reason"]: r["n"] for r in reasons if r["iteration"] == row["iteration"]}
    scores = _rows(con, "select iteration, floor(score * 2) / 2 as bin, count(*) as judgements from judgements "
                        "where score is not null group by all order by all")
    models, games, training = model_rows(params, con, metrics_root), h2h_rows(params, metrics_root), \
        training_rows(params, metrics_root)
    plots = out_dir / "plots"
    write_csv(iterations, plots / "iterations.csv", [c for c in iterations[0] if c != "rejected_by_reason"]
              if iterations else ["iteration"])
    write_csv(scores, plots / "scores.csv", ["iteration", "bin", "judgements"])
    write_csv(models, plots / "models.csv", ["model", "order", *RM_KEYS, *IMPLICIT_KEYS, "answers", "answer_chars",
                                             "answer_tokens", *(f"train_{k}" for k in TRAIN_KEYS), *CHANGE_KEYS,
                                             *SCORE_KEYS, *IF_KEYS])
    # The plot leaves an uninformative matchup's win rate empty, as win_rate_lc is: drawn, its 0.5 would read as
    # "no difference" where the evaluator only named a position (stats.json keeps the figures and the gate).
    write_csv([dict(r, **dict.fromkeys(WIN_RATE_KEYS)) if r["informative"] is False else r for r in games],
              plots / "h2h.csv", ["matchup", *H2H_KEYS])
    write_csv(training, plots / "training.csv", ["model", "step", "loss"])
    stats = {"iterations": {f"iteration_{r['iteration']}": {k: v for k, v in r.items() if k != "iteration"}
                            for r in iterations},
             "models": {r["model"]: {k: v for k, v in r.items() if k not in ("model", "order")} for r in models},
             "matchups": {r["matchup"]: {k: v for k, v in r.items() if k != "matchup"} for r in games}}
    write_json(stats, out_dir / "stats.json")
    return stats
