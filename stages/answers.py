"""Stage `answers@<model>`: the model answers the held-out evaluation prompts.

    python stages/answers.py --model models/M1 --events data/events
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model folder that answers")
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    args = parser.parse_args()

    def body(params):
        s = answers.run(params, model_dir=args.model, events_root=args.events)
        logging.info("%s: %d answers, mean %.0f characters (%d cut at evaluation.answers.max_new_tokens)",
                     args.model.name, s["answers"], s["mean_chars"], s["cut_at_max_tokens"])

    run_stage(f"answers@{args.model.name}", body)


if __name__ == "__main__":
    main()
