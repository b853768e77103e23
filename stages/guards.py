"""Stage `guards@<model>`: after the iteration that trained <model>, check its judge scores, answer length
and RM accuracy against params.yaml `guards`; warn, or with guards.action: fail stop the run.

    python stages/guards.py --iteration 1 --model M2 --parent M1 --events data/events --metrics metrics
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import guards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--model", required=True, help="the model the iteration trained, M(t+1)")
    parser.add_argument("--parent", required=True, help="the model it was trained from, Mt")
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    parser.add_argument("--metrics", type=Path, required=True,
                        help="metrics root: reads <model>/rm_eval.json and its parent's, writes guards/<model>.json")
    args = parser.parse_args()

    def body(params):
        result = guards.run(params, iteration=args.iteration, model=args.model, parent=args.parent,
                            events_root=args.events, metrics_root=args.metrics)
        logging.info("iteration %d (%s -> %s): %s", args.iteration, args.parent, args.model,
                     f"tripped {', '.join(result['tripped'])} (guards.action: warn)" if result["tripped"]
                     else "no guard tripped")

    run_stage(f"guards@{args.model}", body)


if __name__ == "__main__":
    main()
