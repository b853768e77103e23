"""Stage `instructions@<model>`: judge-free instruction following, answers checked by code.

    python stages/instructions.py --model models/M1 --events data/events --metrics metrics/M1
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import instructions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model folder that answers")
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    parser.add_argument("--metrics", type=Path, required=True, help="folder for instructions.json")
    args = parser.parse_args()

    def body(params):
        m = instructions.run(params, model_dir=args.model, events_root=args.events, metrics_dir=args.metrics)
        logging.info("%s: %d of %d prompts followed fully (%.1f%% [%.1f, %.1f]), %d of %d instructions (%.1f%%)",
                     args.model.name, m["prompts_followed"], m["prompts"], 100 * m["prompt_accuracy"],
                     100 * m["prompt_accuracy_ci95_low"], 100 * m["prompt_accuracy_ci95_high"],
                     m["instructions_followed"], m["instructions"], 100 * m["instruction_accuracy"])

    run_stage(f"instructions@{args.model.name}", body)


if __name__ == "__main__":
    main()
