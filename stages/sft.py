"""Stages `sft_baseline` (M0 + IFT) and `sft` (M0 + IFT + EFT -> M1).

    python stages/sft.py --base models/M0 --ift data/processed/ift.parquet [--eft data/eft] \
        --out models/M1 --metrics metrics/M1
"""

import argparse
import logging
from pathlib import Path

from srlm_core.steps import sft
from srlm_core.training.launch import run_training_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="model to fine-tune")
    parser.add_argument("--ift", type=Path, required=True, help="IFT parquet from the seed stage")
    parser.add_argument("--eft", type=Path, help="EFT folder from the eft stage (omit for the SFT baseline)")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--metrics", type=Path, required=True, help="folder for train.json and train_log.csv")
    args = parser.parse_args()

    def body(params):
        manifest = sft.run(params, name=args.out.name, base_dir=args.base, ift_path=args.ift, eft_dir=args.eft,
                           out_dir=args.out, metrics_dir=args.metrics)
        if manifest is None:   # another rank of a multi-process run; the main one writes the model
            return
        logging.info("wrote %s (hash %s) from %s on %s", args.out, manifest["hash"][:12], args.base,
                     manifest["training_data"]["name"])

    run_training_stage(args.out.name, body)


if __name__ == "__main__":
    main()
