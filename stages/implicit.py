"""Stage `implicit@<model>`: implicit reward against the model's reference and the SFT baseline,
scored against the held-out human rankings.

    python stages/implicit.py --model M2 --reference M1 --heldout data/processed/heldout_ranked.parquet \
        --events data/events --metrics metrics/M2
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import pct, run_stage
from srlm_core.steps import implicit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the measured model's name")
    parser.add_argument("--reference", required=True, help="the model it is measured against (besides SFT)")
    parser.add_argument("--heldout", type=Path, required=True, help="heldout_ranked.parquet from the seed stage")
    parser.add_argument("--events", type=Path, required=True,
                        help="event-log root, with the logprobs@ stages' reply_logprobs partitions")
    parser.add_argument("--metrics", type=Path, required=True, help="folder for implicit.json")
    args = parser.parse_args()

    def body(params):
        m = implicit.run(params, model=args.model, reference=args.reference, heldout_path=args.heldout,
                         events_root=args.events, metrics_dir=args.metrics)
        logging.info("%s: human-preferred reply gains more: %s vs %s, %s vs SFT; likelihood ranking %s "
                     "(%d pairs, %d trees)", args.model, pct(m["implicit_accuracy_ref"]), args.reference,
                     pct(m["implicit_accuracy_sft"]), pct(m["likelihood_accuracy"]), m["pairs"], m["trees"])

    run_stage(f"implicit@{args.model}", body)


if __name__ == "__main__":
    main()
