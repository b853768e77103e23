"""Stage `base`: the base model M0 as a standard safetensors checkpoint.

    python stages/base.py --out models/M0
"""

import argparse
import logging

from srlm_core.stage import run_stage
from srlm_core.steps import base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="model folder to write")
    args = parser.parse_args()

    def body(params):
        manifest = base.run(params.model, args.out, params.generation.dtype)
        logging.info("wrote %s (hash %s) from %s", args.out, manifest["hash"][:12], manifest["source"]["location"])

    run_stage("base", body)


if __name__ == "__main__":
    main()
