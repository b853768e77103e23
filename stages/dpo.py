"""Stage `dpo@<model>`: M(t+1) = DPO on AIFT(Mt) (and, with meta.enabled, Mt's judge pairs) from Mt, reference Mt.

    python stages/dpo.py --prev models/M1 --aift data/aift/M1 --out models/M2 --metrics metrics/M2 \
        --fixed models/M0 --events data/events --judge-pairs data/meta/M1
"""

import argparse
import logging
from pathlib import Path

from srlm_core.steps import dpo
from srlm_core.training.launch import run_training_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prev", type=Path, required=True, help="Mt: initial weights and reference")
    parser.add_argument("--aift", type=Path, required=True, help="AIFT(Mt) folder from the pairs stage")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write, M(t+1)")
    parser.add_argument("--metrics", type=Path, required=True, help="folder for train.json and train_log.csv")
    parser.add_argument("--fixed", type=Path, help="M0: the fixed judge of checkpoint selection (dpo.eval_steps)")
    parser.add_argument("--events", type=Path, help="event-log root: the held-out seed prompts (dpo.eval_steps)")
    parser.add_argument("--judge-pairs", type=Path, help="the meta stage's folder of judge pairs (meta.enabled)")
    args = parser.parse_args()

    def body(params):
        manifest = dpo.run(params, prev_dir=args.prev, aift_dir=args.aift, out_dir=args.out, metrics_dir=args.metrics,
                           judge_dir=args.fixed, events_root=args.events, judge_pairs_dir=args.judge_pairs)
        if manifest is None:   # another rank of a multi-process run; the main one writes the model
            return
        logging.info("wrote %s (hash %s) from %s on %s", args.out, manifest["hash"][:12], args.prev,
                     manifest["training_data"]["name"])

    run_training_stage(f"dpo@{args.out.name}", body)


if __name__ == "__main__":
    main()
