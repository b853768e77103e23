"""Stage `meta@<model>`: Mt meta-judges its judgements of iteration t; judge pairs for DPO (meta.enabled).

    python stages/meta.py --iteration 1 --model models/M1 --events data/events --out data/meta/M1
"""

import argparse
import logging
from pathlib import Path

from srlm_core.stage import run_stage
from srlm_core.steps import meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--model", type=Path, required=True, help="Mt, the judge and meta-judge")
    parser.add_argument("--events", type=Path, required=True, help="event-log root")
    parser.add_argument("--out", type=Path, required=True, help="judge-pairs folder: train.parquet, summary.json")
    args = parser.parse_args()

    def body(params):
        s = meta.run(params, iteration=args.iteration, model_dir=args.model, events_root=args.events, out_dir=args.out)
        if not s["enabled"]:
            logging.info("iteration %d: meta.enabled is false; empty outputs written", args.iteration)
            return
        logging.info("iteration %d: %d of %d eligible candidates meta-judged (%d comparisons, %.0f%% for A); "
                     "%d judge pairs, skipped %s", args.iteration, s["drawn"], s["eligible"], s["comparisons"],
                     100 * (s["first_position_rate"] or 0), s["judge_pairs"], s["skipped"])

    run_stage(f"meta@{args.iteration}", body)


if __name__ == "__main__":
    main()
