"""How much of the meta-judge's choice is sampling noise: the comparisons a run's `meta` stage made
for one iteration (same model, same judgements, same candidates drawn), made again with other seeds.

The meta-judge samples a reason before its verdict, so another seed gives other reasons and other
verdict probabilities. For each drawn candidate this prints the judge pair (best, worst judgement by
position-debiased win rate) under the run's own seed and under each other seed, how often the pair
and the chosen judgement stay the same, the chance rates of both (a meta-judge whose verdicts carry
no information), and the spread of each judgement's win rate across seeds: the noise that
`meta.min_win_margin` would have to exceed. The run's own seed must reproduce its recorded judge
pairs; the script checks that first.

    python experiments/meta_seed_noise.py --run . --iteration 1 --seeds 101 202 --out noise.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from srlm_core.engine.backend import open_generator
from srlm_core.judges.meta_pairs import pick, win_rates
from srlm_core.log.eventlog import EventLog
from srlm_core.log.events import JudgePairBuilt
from srlm_core.params import load_params
from srlm_core.steps import meta as step


def comparisons(run: Path, iteration: int):
    """The meta stage's plan for `iteration` of `run`, built by the stage's own `plan`."""
    params = load_params(run / "params.yaml")
    events = EventLog(run / "data" / "events")
    model_dir = run / "models" / next(it.prev for it in params.iterations.values() if it.t == iteration)
    p = step.plan(params, events, iteration, open_generator(params.generation, model_dir), model_dir, run)
    return p.meta_judge, params.meta.batch_size, p.seed, p.drawn, p.shown, p.pairs, p.comparisons, events


def picks(meta_judge, batch_size, seed, drawn, shown, plan, items) -> dict:
    verdicts = meta_judge.compare(items, seed=seed, batch_size=batch_size, label=f"meta-judging, seed {seed}")
    p_first = {cid: {} for cid in drawn}
    for (cid, i, j), verdict in zip(plan, verdicts):
        p_first[cid][i, j] = verdict.p_first
    out = {}
    for cid in drawn:
        rates = win_rates(len(shown[cid]), p_first[cid])
        best, worst, _ = pick(rates, 0.0)
        out[cid] = {"rates": rates, "chosen": shown[cid][best].judgement_id,
                    "rejected": shown[cid][worst].judgement_id, "gap": rates[best] - rates[worst],
                    "judgements": len(rates)}
    return out


def summarise(runs: dict[int, dict], own: int) -> dict:
    others = [s for s in runs if s != own]
    same_pair = same_chosen = reversed_ = total = 0
    chance_pair = chance_chosen = 0.0
    spreads = []
    for cid, mine in runs[own].items():
        n = mine["judgements"]
        for s in others:
            theirs = runs[s][cid]
            total += 1
            same_pair += (theirs["chosen"], theirs["rejected"]) == (mine["chosen"], mine["rejected"])
            same_chosen += theirs["chosen"] == mine["chosen"]
            reversed_ += (theirs["chosen"], theirs["rejected"]) == (mine["rejected"], mine["chosen"])
            chance_pair += 1 / (n * (n - 1))
            chance_chosen += 1 / n
        spreads += [statistics.pstdev(runs[s][cid]["rates"][k] for s in runs) for k in range(n)]
    return {"reruns": total, "same_pair": same_pair, "same_pair_by_chance": round(chance_pair, 2),
            "same_chosen": same_chosen, "same_chosen_by_chance": round(chance_chosen, 2), "reversed": reversed_,
            "win_rate_sd_mean": statistics.mean(spreads), "win_rate_sd_max": max(spreads),
            "gap_mean": {s: statistics.mean(r["gap"] for r in runs[s].values()) for s in runs}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("."), help="a run folder whose meta stage ran")
    parser.add_argument("--iteration", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="seeds other than the run's own")
    parser.add_argument("--out", type=Path, help="write every seed's picks and the summary here (JSON)")
    args = parser.parse_args()
    out = args.out.resolve() if args.out else None
    os.chdir(args.run)   # params.yaml's paths (templates, models) are relative to the run folder
    meta_judge, batch_size, own, drawn, shown, plan, items, events = comparisons(Path("."), args.iteration)
    if not drawn:
        raise SystemExit(f"{args.run}: iteration {args.iteration} has no meta-judged candidates (meta.enabled?)")
    runs = {seed: picks(meta_judge, batch_size, seed, drawn, shown, plan, items) for seed in [own, *args.seeds]}
    recorded = {r["candidate_id"]: (r["chosen_judgement_id"], r["rejected_judgement_id"])
                for r in events.read(JudgePairBuilt, args.iteration).to_pylist()}
    again = {cid: (p["chosen"], p["rejected"]) for cid, p in runs[own].items() if cid in recorded}
    if again != recorded:
        raise SystemExit(f"{args.run}: the run's own seed {own} did not reproduce its recorded judge pairs; "
                         "the model, params or code differ from the run's")
    summary = summarise(runs, own)
    print(json.dumps(summary, indent=2))
    if out:
        out.write_text(json.dumps({"run_seed": own, "summary": summary, "picks": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
