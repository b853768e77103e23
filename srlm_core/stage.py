"""What every stage script shares: load params, run, report errors without a traceback."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from .errors import SrlmError
from .params import Params, load_params


def pct(share: float | None) -> str:
    """A share as a percentage for a stage's log line; "n/a" where there was nothing to count."""
    return "n/a" if share is None else f"{100 * share:.1f}%"


def run_stage(name: str, body: Callable[[Params], object], params_path: str = "params.yaml") -> None:
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s")
    try:
        body(load_params(params_path))
    except SrlmError as exc:
        print(f"[{name}] error: {exc}", file=sys.stderr)
        sys.exit(1)
