"""Stage `judge@<model>`: Mt judges each candidate of iteration t `judge.samples` times.

    python stages/judge.py --iteration 1 --model models/M1 --events data/events
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--model", type=Path, required=True, help="Mt, the judge")
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    args = parser.parse_args()

    def body(params):
        s = judge.run(params, iteration=args.iteration, model_dir=args.model, events_root=args.events)
        mean = "n/a" if s["mean_score"] is None else f"{s['mean_score']:.2f}"
        logging.info("iteration %d: %d judgements, %d with a score (%.0f%%), mean score %s", args.iteration,
                     s["judgements"], s["parsed"], 100 * s["parse_rate"], mean)

    run_stage(f"judge@{args.iteration}", body)


if __name__ == "__main__":
    main()
