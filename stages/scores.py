"""Stage `scores@<model>`: the fixed judge scores the model's held-out answers one at a time.

    python stages/scores.py --model M2 --models models --events data/events --metrics metrics/M2
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="name of the model whose answers are scored (a key of "
                        "evaluation.models)")
    parser.add_argument("--models", type=Path, required=True, help="folder holding the judge's model")
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    parser.add_argument("--metrics", type=Path, required=True, help="folder for scores.json")
    args = parser.parse_args()

    def body(params):
        m = scores.run(params, model=args.model, models_root=args.models, events_root=args.events,
                       metrics_dir=args.metrics)
        logging.info("%s: mean score %.3f [%.3f, %.3f] over %d answers (%s, %d samples each)", args.model,
                     m["score_mean"], m["score_mean_ci95_low"], m["score_mean_ci95_high"], m["answers"], m["judge"],
                     m["samples"])

    run_stage(f"scores@{args.model}", body)


if __name__ == "__main__":
    main()
