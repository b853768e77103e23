"""What every stage script shares: load params, run, report errors without a traceback."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from .errors import SrlmError
from .params import Params, load_params


def run_stage(name: str, body: Callable[[Params], object], params_path: str = "params.yaml") -> None:
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s")
    try:
        body(load_params(params_path))
    except SrlmError as exc:
        print(f"[{name}] error: {exc}", file=sys.stderr)
        sys.exit(1)
