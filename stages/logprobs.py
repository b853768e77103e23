"""Stage `logprobs@<model>`: log p(reply | conversation) of every held-out human-ranked reply,
to the event log (`reply_logprobs`, partition model=<name>).

    python stages/logprobs.py --model models/M1 --heldout data/processed/heldout_ranked.parquet \
        --events data/events
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import logprobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model folder whose log-probs are computed")
    parser.add_argument("--heldout", type=Path, required=True, help="heldout_ranked.parquet from the seed stage")
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    args = parser.parse_args()

    def body(params):
        s = logprobs.run(params, model_dir=args.model, heldout_path=args.heldout, events_root=args.events)
        logging.info("%s: %d replies of %d groups scored, %d left out as longer than evaluation.implicit.max_length",
                     args.model.name, s["replies"] - s["too_long"], s["groups"], s["too_long"])

    run_stage(f"logprobs@{args.model.name}", body)


if __name__ == "__main__":
    main()
