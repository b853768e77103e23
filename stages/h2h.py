"""Stage `h2h@<matchup>`: head-to-head games between two models, judged by the fixed evaluator.

    python stages/h2h.py --matchup M2_vs_M1 --models models --events data/events --metrics metrics/h2h
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import h2h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matchup", required=True, help="key of evaluation.matchups in params.yaml")
    parser.add_argument("--models", type=Path, required=True, help="folder holding the local evaluator's model")
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    parser.add_argument("--metrics", type=Path, required=True, help="folder for <matchup>.json")
    args = parser.parse_args()

    def body(params):
        m = h2h.run(params, matchup=args.matchup, models_root=args.models, events_root=args.events,
                    metrics_dir=args.metrics)
        logging.info("%s: %s wins %d, ties %d, loses %d of %d games; win rate %.1f%% [%.1f, %.1f] (%s)",
                     args.matchup, m["a"], m["wins"], m["ties"], m["losses"], m["games"], 100 * m["win_rate"],
                     100 * m["win_rate_ci95_low"], 100 * m["win_rate_ci95_high"], m["evaluator"])

    run_stage(f"h2h@{args.matchup}", body)


if __name__ == "__main__":
    main()
