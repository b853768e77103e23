"""Stage `candidates@<model>`: Mt samples N responses to each new prompt of iteration t.

    python stages/candidates.py --iteration 1 --model models/M1 --events data/events
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--model", type=Path, required=True, help="Mt")
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    args = parser.parse_args()

    def body(params):
        s = candidates.run(params, iteration=args.iteration, model_dir=args.model, events_root=args.events)
        logging.info("iteration %d: %d candidates for %d prompts (%d cut at candidates.max_new_tokens)",
                     args.iteration, s["candidates"], s["prompts"], s["cut_at_max_tokens"])

    run_stage(f"candidates@{args.iteration}", body)


if __name__ == "__main__":
    main()
