"""Stage `prompts@<model>`: new prompts for iteration t by few-shot prompting, filtered.

    python stages/prompts.py --iteration 1 --model models/M1 --fixed models/M0 \
        --ift data/processed/ift.parquet --events data/events
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--model", type=Path, required=True, help="Mt (the generator when prompts.generator: current)")
    parser.add_argument("--fixed", type=Path, required=True, help="M0 (the generator when prompts.generator: M0)")
    parser.add_argument("--ift", type=Path, required=True, help="IFT parquet: the few-shot examples")
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    args = parser.parse_args()

    def body(params):
        generator = prompts.generator_folder(params.prompts.generator, current=args.model, base=args.fixed)
        s = prompts.run(params, iteration=args.iteration, generator_dir=generator, ift_path=args.ift,
                              events_root=args.events)
        logging.info("iteration %d: kept %d prompts written by %s; rejected %d %s", args.iteration, s["kept"],
                     generator, s["rejected"], s["reasons"])

    run_stage(f"prompts@{args.iteration}", body)


if __name__ == "__main__":
    main()
