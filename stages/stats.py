"""Stage `stats`: per-iteration statistics and the tables behind `dvc plots` and `srlm report`.

    python stages/stats.py --events data/events --metrics metrics --out reports
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics folder written by the other stages")
    parser.add_argument("--out", type=Path, required=True, help="folder for stats.json and plots/")
    args = parser.parse_args()

    def body(params):
        result = stats.run(params, events_root=args.events, metrics_root=args.metrics, out_dir=args.out)
        for name, row in result["iterations"].items():
            logging.info("%s: %s prompts kept of %s, %s pairs, candidates %.0f chars, chosen %s vs rejected %s chars",
                         name, row["prompts_kept"], row["prompts_generated"], row["prompts_paired"],
                         row["candidate_chars"] or 0, row["chosen_chars"], row["rejected_chars"])

    run_stage("stats", body)


if __name__ == "__main__":
    main()
