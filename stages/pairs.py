"""Stage `pairs@<model>`: AIFT(Mt), best vs worst candidate per prompt (or the shortest near-best vs the
longest near-worst: pairs.length_control), selected in DuckDB.

    python stages/pairs.py --iteration 1 --events data/events --out data/aift/M1
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    parser.add_argument("--out", type=Path, required=True, help="AIFT folder: train.parquet and summary.json")
    args = parser.parse_args()

    def body(params):
        s = pairs.run(params, iteration=args.iteration, events_root=args.events, out_dir=args.out)
        logging.info("iteration %d: %d pairs from %d prompts (%s data); skipped %s", args.iteration, s["pairs"],
                     s["prompts"], s["mode"], s["skipped"])

    run_stage(f"pairs@{args.iteration}", body)


if __name__ == "__main__":
    main()
