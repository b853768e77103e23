"""Would a cheaper pointwise judge resolve as much? Direct digit scoring against the `scores@` stage.

`scores@<model>` has the fixed judge (M0) write a justification, 3 samples at T 0.7 of up to 64
tokens, then reads the expected digit after `Score: `. This script scores the same committed
answers with no justification: `Score: ` forced right after the judge prompt, one forward pass per
answer, deterministic. It prints each model's mean and per-prompt spread under both, their
per-prompt correlation, and the paired differences of the matchups with 95% bootstrap intervals
(resampling prompts, as the report does). docs/time-budget.md has the result on the committed run.

    python experiments/direct_scores.py --repo .

It needs a repository where `dvc repro scores@<model>` has run for every evaluated model (the
answers and their committed scores are read from the event log). About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from srlm_core.engine.backend import open_generator  # noqa: E402
from srlm_core.judges.runs import make_judge  # noqa: E402
from srlm_core.log.eventlog import EventLog  # noqa: E402
from srlm_core.log.events import AnswerScored, EvalAnswerGenerated, PromptAdded  # noqa: E402
from srlm_core.params import load_params  # noqa: E402
from srlm_core.reporting import pointwise  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path("."), help="a run's repository")
    args = parser.parse_args()
    params = load_params(args.repo / "params.yaml")
    events = EventLog(args.repo / "data" / "events")
    texts = {p["prompt_id"]: p["text"] for p in events.read(PromptAdded, 0).to_pylist()}
    judge_name = params.evaluation.evaluator.model
    gen = open_generator(params.generation, args.repo / "models" / judge_name)
    judge = make_judge(gen, params.judge)
    direct, sampled = {}, {}
    start = time.time()
    for model in params.evaluation.models:
        answers = events.read(EvalAnswerGenerated, model).to_pylist()
        prompts = [gen.tokenizer(judge.prompt_text(texts[a["prompt_id"]], a["text"]) + "Score: ",
                                 add_special_tokens=False).input_ids for a in answers]
        direct[model] = {a["prompt_id"]: s for a, s in zip(answers, gen.expected_digit(prompts, judge.digits))}
        by_prompt: dict = {}
        for row in events.read(AnswerScored, model).to_pylist():
            by_prompt.setdefault(row["prompt_id"], []).append(row["score"])
        sampled[model] = {p: float(np.mean(s)) for p, s in by_prompt.items()}
    print(f"direct scoring by {judge_name}: {sum(map(len, direct.values()))} answers in {time.time() - start:.1f} s")
    for model in params.evaluation.models:
        keys = sorted(direct[model])
        d = np.array([direct[model][k] for k in keys])
        s = np.array([sampled[model][k] for k in keys])
        print(f"{model}: direct mean {d.mean():.3f} sd {d.std():.3f}; scores@ mean {s.mean():.3f} sd {s.std():.3f}; "
              f"per-prompt correlation {np.corrcoef(d, s)[0, 1]:.2f}")
    seed = params.seed
    for name, m in params.evaluation.matchups.items():
        for label, source in (("direct", direct), ("scores@", sampled)):
            r = pointwise.paired(source[m.a], source[m.b], resamples=params.evaluation.bootstrap, seed=seed)
            low, high = r["score_diff_ci95_low"], r["score_diff_ci95_high"]
            spread = np.std(list(source[m.a].values()) + list(source[m.b].values()))
            print(f"{name} {label:8s} {r['score_diff']:+.3f} [{low:+.3f}, {high:+.3f}], width {high - low:.3f} "
                  f"= {(high - low) / spread:.2f} per-prompt sd")


if __name__ == "__main__":
    main()
