"""Stage `rm_eval@<model>`: reward-modelling evaluation on the held-out human-ranked groups.

    python stages/rm_eval.py --model models/M1 --groups data/processed/ranked_groups.parquet \
        --events data/events --metrics metrics/M1
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import pct, run_stage
from srlm_core.steps import rm_eval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model folder to evaluate as a judge")
    parser.add_argument("--groups", type=Path, required=True, help="ranked_groups.parquet from the seed stage")
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    parser.add_argument("--metrics", type=Path, required=True, help="folder for rm_eval.json")
    args = parser.parse_args()

    def body(params):
        m = rm_eval.run(params, model_dir=args.model, groups_path=args.groups, events_root=args.events,
                        metrics_dir=args.metrics)
        logging.info("%s: pairwise accuracy %s over %d pairs of %d groups, exact match %s, parse failures %s",
                     args.model.name, pct(m["pairwise_accuracy"]), m["pairs"], m["groups"], pct(m["exact_match"]),
                     pct(m["parse_failure_rate"]))

    run_stage(f"rm_eval@{args.model.name}", body)


if __name__ == "__main__":
    main()
