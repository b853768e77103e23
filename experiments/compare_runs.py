"""Paired differences between two runs' models on the same held-out items (run B minus run A),
or between two models of one run.

Two runs of the loop (e.g. the default and one with meta-judging and length control) evaluate
their models on the same held-out data, so a model of B can be compared with a model of A item by
item: the fixed judge's score per prompt, reward-modelling agreement per ranked group, verifiable
instructions per prompt, answer length per prompt, and the implicit reward against the SFT baseline
per human-ranked sibling pair (does log p_model - log p_SFT rise more for the reply people
preferred), also as the margin at equal length (which a gain that only grows with length cannot
move). Each difference has a 95% bootstrap interval over the shared items (groups for reward
modelling, as `rm_eval` resamples them; trees for the implicit reward, as `implicit` does). A model given
as `X:Y` compares A's X with B's Y; with --b left out, B is A, so `--models SFT:M3` is M3 minus
SFT in one run.

    python experiments/compare_runs.py --a /path/to/run_off --b /path/to/run_on --models M2 M3
    python experiments/compare_runs.py --a /path/to/run --models SFT:M1 M1:M3 SFT:M3
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np

from srlm_core.log.query import HEX
from srlm_core.reporting.implicit_metrics import sibling_pairs
from srlm_core.reporting.pointwise import paired
from srlm_core.reporting.win_rate import bootstrap_mean

RESAMPLES, SEED = 2000, 0


def key(column: str) -> str:
    """An id column as text that matches across schema versions: a 32-byte id (version 2 on) as its hex,
    an older file's hex string (or a dataset's own id) as it is."""
    blob = f"CAST({column} AS BLOB)"
    return f"CASE WHEN octet_length({blob}) = 32 THEN {HEX.format(blob)} ELSE decode({blob}) END"


def table(run: Path, name: str, model: str) -> str:
    folder = run / "data" / "events" / name / f"model={model}"
    if not any(folder.rglob("*.parquet")):
        raise SystemExit(f"{folder}: no events; run the evaluation stages of {model} in {run}")
    return f"read_parquet('{folder.as_posix()}/**/*.parquet', union_by_name = true)"


def check_current(con, run: Path, model: str) -> None:
    """Refuse a run whose evaluation of `model` is older than the model (an arm whose evaluation
    stages have not re-run yet still holds the baseline's events, which would compare as +0.000)."""
    manifest = run / "models" / model / "manifest.json"
    if not manifest.is_file():
        raise SystemExit(f"{manifest}: missing; run `dvc repro` (or `dvc checkout`) in {run}")
    want = json.loads(manifest.read_text())["hash"]
    stale = []
    for name, stage in (("eval_answers", "answers"), ("instruction_answers", "instructions"),
                        ("rm_judgements", "rm_eval"), ("reply_logprobs", "logprobs")):
        found = con.sql(f"select distinct {key('model_hash')} from {table(run, name, model)}").fetchall()
        if {h for (h,) in found} != {want}:
            stale.append(f"{stage}@{model}")
    answers = f"select {key('answer_id')} from {table(run, 'eval_answers', model)}"
    orphans = con.sql(f"select count(*) from {table(run, 'answer_scores', model)} "
                      f"where {key('answer_id')} not in ({answers})").fetchall()
    if orphans[0][0]:
        stale.append(f"scores@{model}")
    if stale:
        raise SystemExit(f"{run}: the events of {', '.join(stale)} are not those of models/{model} (hash "
                         f"{want[:12]}); run `dvc repro {' '.join(stale)}` there first")


def per_prompt(con, run: Path, model: str) -> dict[str, dict[str, float]]:
    """prompt id -> the fixed judge's mean score, the answer's characters, instructions followed."""
    scores = dict(con.sql(f"select {key('prompt_id')}, avg(score) from {table(run, 'answer_scores', model)} "
                          f"group by 1").fetchall())
    chars = dict(con.sql(f"select {key('prompt_id')}, length(text) from {table(run, 'eval_answers', model)}")
                 .fetchall())
    followed = {o: (f, n) for o, f, n in con.sql(
        f"select origin_id, followed, json_array_length(checks) from "
        f"{table(run, 'instruction_answers', model)}").fetchall()}
    return {"score": scores, "chars": chars, "followed": followed}


def rm_groups(con, run: Path, model: str) -> dict[str, tuple[int, int]]:
    """group id -> (ranked sibling pairs, pairs the judge orders as people did), as rm_metrics counts them."""
    rows = con.sql(f"""
        with replies as (select {key('group_id')} as g, reply_id, human_rank, avg(score) as score
                         from {table(run, 'rm_judgements', model)} group by all)
        select a.g, count(*), sum(case when a.score > b.score then 1 else 0 end)
        from replies a join replies b on a.g = b.g and a.human_rank < b.human_rank
        group by a.g""").fetchall()
    return {g: (int(n), int(k)) for g, n, k in rows}


def implicit_pairs(con, run: Path, model: str) -> list[tuple[str, float, float]]:
    """(tree, r(better) - r(worse), d) for implicit_metrics' human-ranked sibling pairs over the held-out replies
    both models scored: r the implicit reward against the SFT baseline, d the better reply's tokens minus the
    worse one's, per 100."""
    heldout = (run / "data" / "processed" / "heldout_ranked.parquet").as_posix()
    names = ["tree_id", "group_id", "rank", "reward", "tokens"]
    rows = [dict(zip(names, row)) for row in con.sql(f"""
        select h.tree_id, h.group_id, h.rank, m.logprob - s.logprob, m.tokens
        from read_parquet('{heldout}') h
        join {table(run, 'reply_logprobs', model)} m on {key('m.reply_id')} = h.reply_id
        join {table(run, 'reply_logprobs', 'SFT')} s on {key('s.reply_id')} = h.reply_id
        where m.logprob is not null and s.logprob is not null""").fetchall()]
    return [(better["tree_id"], better["reward"] - worse["reward"], (better["tokens"] - worse["tokens"]) / 100)
            for better, worse in sibling_pairs(rows)]


def implicit_trees(pairs: list[tuple[str, float, float]]) -> dict[str, tuple[int, float]]:
    """tree -> (pairs, pairs whose preferred reply gains more implicit reward, ties 1/2)."""
    trees: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for tree_id, margin, _ in pairs:
        tree = trees[tree_id]
        tree[0] += 1
        tree[1] += 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0
    return {t: (n, k) for t, (n, k) in trees.items()}


def margin_at_equal_length(a: list[tuple[str, float, float]], b: list[tuple[str, float, float]]) -> dict:
    """B's implicit margin at equal length minus A's (implicit_metrics' implicit_margin_lc_sft: the intercept of
    margin = alpha + beta d), over the same trees, resampling trees (paired)."""
    shared = sorted({t for t, _, _ in a} & {t for t, _, _ in b})
    by_tree = {name: {t: np.array([(m, d) for tree, m, d in pairs if tree == t]) for t in shared}
               for name, pairs in (("a", a), ("b", b))}

    def alpha(rows: np.ndarray) -> float:
        margins, d = rows[:, 0], rows[:, 1]
        if np.ptp(d) == 0:
            return float(margins.mean())
        beta = np.cov(d, margins, bias=True)[0, 1] / d.var()
        return float(margins.mean() - beta * d.mean())

    def fit(trees) -> tuple[float, float]:
        return tuple(alpha(np.concatenate([by_tree[name][t] for t in trees])) for name in ("a", "b"))

    fa, fb = fit(shared)
    picks = np.random.default_rng(SEED).integers(0, len(shared), size=(RESAMPLES, len(shared)))
    diffs = [(lambda ab: ab[1] - ab[0])(fit([shared[i] for i in row])) for row in picks]
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"a": round(fa, 6), "b": round(fb, 6), "diff": round(fb - fa, 6), "ci95_low": round(float(low), 6),
            "ci95_high": round(float(high), 6), "items": len(shared)}


def interval(diffs: np.ndarray) -> dict:
    low, high = bootstrap_mean(diffs, RESAMPLES, SEED)
    return {"diff": round(float(diffs.mean()), 6), "ci95_low": low, "ci95_high": high, "items": len(diffs)}


def pooled_difference(a: dict[str, tuple[int, float]], b: dict[str, tuple[int, float]]) -> dict:
    """B's pooled accuracy minus A's over the same groups, resampling groups (paired)."""
    shared = sorted(set(a) & set(b))
    counts = np.array([[a[g][0], a[g][1], b[g][1]] for g in shared], dtype=float)
    picks = np.random.default_rng(SEED).integers(0, len(counts), size=(RESAMPLES, len(counts)))
    pooled = counts[picks].sum(axis=1)
    diffs = (pooled[:, 2] - pooled[:, 1]) / pooled[:, 0]
    low, high = np.percentile(diffs, [2.5, 97.5])
    total = counts.sum(axis=0)
    return {"a": round(total[1] / total[0], 6), "b": round(total[2] / total[0], 6),
            "diff": round((total[2] - total[1]) / total[0], 6),
            "ci95_low": round(float(low), 6), "ci95_high": round(float(high), 6), "items": len(shared)}


def compare(run_a: Path, run_b: Path, model: str, model_b: str | None = None) -> dict:
    """B's `model_b` (default: `model`) minus A's `model`, item by item."""
    model_b = model_b or model
    con = duckdb.connect()
    check_current(con, run_a, model)
    check_current(con, run_b, model_b)
    a, b = per_prompt(con, run_a, model), per_prompt(con, run_b, model_b)
    out = {}
    for key in ("score", "chars"):
        d = paired(b[key], a[key], resamples=RESAMPLES, seed=SEED)
        out[key] = {"diff": d["score_diff"], "ci95_low": d["score_diff_ci95_low"],
                    "ci95_high": d["score_diff_ci95_high"], "items": d["score_prompts"]}
    shared = sorted(set(a["followed"]) & set(b["followed"]))
    everything = [(a["followed"][p][0] == a["followed"][p][1], b["followed"][p][0] == b["followed"][p][1])
                  for p in shared]
    out["prompt_level"] = interval(np.array([int(y) - int(x) for x, y in everything], dtype=float))
    out["instruction_level"] = pooled_difference({p: (a["followed"][p][1], a["followed"][p][0]) for p in shared},
                                                 {p: (b["followed"][p][1], b["followed"][p][0]) for p in shared})
    out["rm_accuracy"] = pooled_difference(rm_groups(con, run_a, model), rm_groups(con, run_b, model_b))
    pairs_a, pairs_b = implicit_pairs(con, run_a, model), implicit_pairs(con, run_b, model_b)
    out["implicit_vs_sft"] = pooled_difference(implicit_trees(pairs_a), implicit_trees(pairs_b))
    out["implicit_margin_lc_vs_sft"] = margin_at_equal_length(pairs_a, pairs_b)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="run A's repository (the baseline)")
    parser.add_argument("--b", type=Path, help="run B's repository (default: run A)")
    parser.add_argument("--models", nargs="+", default=["M2", "M3"],
                        help="models compared: X (A's X vs B's X) or X:Y (A's X vs B's Y)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    results = {m: compare(args.a, args.b or args.a, *m.split(":", 1)) for m in args.models}
    print("| model | fixed-judge score B - A | RM accuracy B - A | implicit acc. vs SFT B - A "
          "| implicit margin at equal length B - A (nats) "
          "| IF prompt-level B - A | IF instruction-level B - A | answer chars B - A |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m, r in results.items():
        cell = {k: f"{v['diff']:+.3f} [{v['ci95_low']:+.3f}, {v['ci95_high']:+.3f}] ({v['items']})"
                for k, v in r.items()}
        print(f"| {m} | {cell['score']} | {cell['rm_accuracy']} | {cell['implicit_vs_sft']} "
              f"| {cell['implicit_margin_lc_vs_sft']} | {cell['prompt_level']} "
              f"| {cell['instruction_level']} | {cell['chars'].replace('.000', '')} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
