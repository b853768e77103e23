"""Stage `seed`: OASST export -> IFT, ranked groups, split, and the iteration-0 prompts.

    python stages/seed.py --out data/processed --events data/events
"""

import argparse
import logging

from srlm_core.stage import run_stage
from srlm_core.steps import seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="folder for ift/ranked_groups parquet and summary.json")
    parser.add_argument("--events", required=True, help="event-log root")
    args = parser.parse_args()

    def body(params):
        summary = seed.run(params.data, args.out, args.events)
        logging.info("%d IFT examples, ranked groups %s, dropped %s", summary["ift_examples"],
                     summary["ranked_groups_by_split"], summary["dropped"])

    run_stage("seed", body)


if __name__ == "__main__":
    main()
