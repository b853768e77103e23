"""Crash-resume for long stages: finished chunks kept in a scratch area keyed by the input hash.

DVC deletes a stage's outputs before running it, so work that must survive a killed run
lives outside them, in `.srlm/journal/<stage>/<input hash>/` (`SRLM_SCRATCH` moves `.srlm`).
The hash covers everything a chunk's result depends on (model hash, sampling, seed, batch
size, the inputs themselves), so a journal is only ever replayed into the run that would
have produced it; a changed input gives a new key and starts afresh. Each chunk is one
atomically written JSON file, so a kill leaves whole chunks or none. A stage clears its
journal once its outputs are written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, TypeVar

from .hashing import row_id
from .storage import atomic_write_bytes

log = logging.getLogger(__name__)
T = TypeVar("T")


def scratch_root() -> Path:
    return Path(os.environ.get("SRLM_SCRATCH", ".srlm"))


class Journal:
    def __init__(self, stage: str, key: dict, root: Path | None = None):
        self.stage, self.root = stage, root or scratch_root()
        self.stage_dir = self.root / "journal" / stage
        self.dir = self.stage_dir / row_id("journal", key)
        self.reused = 0

    def child(self, name: str) -> "Journal":
        """A journal for one part of the stage (e.g. one round of prompt writing), cleared with it."""
        return Journal(self.stage, {"within": self.dir.name, "part": name}, self.root)

    def _path(self, index: int) -> Path:
        return self.dir / f"chunk-{index:06d}.json"

    def get(self, index: int):
        """The stored result of chunk `index`, or None when it has not finished."""
        try:
            value = json.loads(self._path(index).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        if value is not None:   # a stored null is recomputed by chunk(), so it is not reuse
            self.reused += 1
        return value

    def put(self, index: int, value) -> None:
        atomic_write_bytes(self._path(index), json.dumps(value, ensure_ascii=False).encode("utf-8"))

    def report(self, total: int) -> None:
        if self.reused:
            log.info("resumed: %d of %d chunks taken from %s", self.reused, total, self.dir)

    def chunk(self, index: int, compute: Callable[[], T], encode: Callable[[T], object],
              decode: Callable[[object], T]) -> T:
        """Chunk `index`: taken from the journal when a run finished it, else computed and stored."""
        done = self.get(index)
        if done is not None:
            return decode(done)
        result = compute()
        self.put(index, encode(result))
        return result

    def clear(self) -> None:
        """Drop every journal of this stage (this key's and any left by runs with other inputs)."""
        shutil.rmtree(self.stage_dir, ignore_errors=True)
