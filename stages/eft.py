"""Stage `eft`: the SFT baseline judges train-split human-ranked replies; agreeing groups become EFT data.

    python stages/eft.py --judge models/SFT --groups data/processed/ranked_groups.parquet \
        --events data/events --out data/eft
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import eft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge", type=Path, required=True, help="the SFT baseline model folder")
    parser.add_argument("--groups", type=Path, required=True, help="ranked_groups.parquet from the seed stage")
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    parser.add_argument("--out", type=Path, required=True, help="folder for train.parquet and summary.json")
    args = parser.parse_args()

    def body(params):
        s = eft.run(params, judge_dir=args.judge, groups_path=args.groups, events_root=args.events, out_dir=args.out)
        logging.info("judged %d replies of %d groups (parse rate %.0f%%); kept %d groups, dropped %s; "
                     "%d EFT examples%s", s["judged_replies"], s["judged_groups"], 100 * s["parse_rate"],
                     s["kept_groups"], s["dropped_groups"], s["examples"],
                     f" (fallback: {s['fallback']})" if s["fallback"] else "")

    run_stage("eft", body)


if __name__ == "__main__":
    main()
