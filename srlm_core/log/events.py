"""The event types: frozen facts, one per event-log table.

Each event is named in the past tense, carries a content-derived id (sha256 over the
fields that define it), the ids of its inputs, the producing model's hash and the
lineage columns (stage, seed, sampling parameters, schema version). The Arrow schema of
each table is derived from the dataclass, so it is defined exactly once.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from ..hashing import row_id

_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def sampling_json(sampling: dict | None) -> str | None:
    """Canonical JSON for sampling parameters, so equal settings give equal ids."""
    return None if sampling is None else json.dumps(sampling, sort_keys=True, separators=(",", ":"))


@functools.cache
def _columns(cls: type) -> tuple[tuple[str, type, bool], ...]:
    return cls._resolve_columns()


@dataclass(frozen=True)
class Event:
    TABLE: ClassVar[str]
    ID_FIELD: ClassVar[str]
    ID_FIELDS: ClassVar[tuple[str, ...]]
    SCHEMA_VERSION: ClassVar[int] = 1
    PARTITION: ClassVar[str] = "iteration"   # the column whose value names the partition folder
    # Nullable columns added after schema version 1: a version-1 file lacks them and reads them as null.
    ADDED_COLUMNS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def create(cls, **fields):
        """Build an event, computing its id from ID_FIELDS and filling the schema version."""
        fields.setdefault("schema_version", cls.SCHEMA_VERSION)
        fields[cls.ID_FIELD] = cls.compute_id(fields)
        return cls(**fields)

    @classmethod
    def compute_id(cls, fields: dict) -> str:
        return row_id(cls.TABLE, *(fields.get(name) for name in cls.ID_FIELDS))

    @classmethod
    def columns(cls) -> list[tuple[str, type, bool]]:
        """(name, python type, nullable) for every column, in schema order."""
        return list(_columns(cls))   # resolving the annotations costs ~1 ms; problems() asks per row

    @classmethod
    def _resolve_columns(cls) -> tuple[tuple[str, type, bool], ...]:
        hints = typing.get_type_hints(cls)
        out = []
        for field in dataclasses.fields(cls):
            hint = hints[field.name]
            args = typing.get_args(hint)
            nullable = isinstance(hint, types.UnionType) and type(None) in args
            base = next(a for a in args if a is not type(None)) if nullable else hint
            out.append((field.name, base, nullable))
        return tuple(out)

    @classmethod
    def arrow_schema(cls) -> pa.Schema:
        return pa.schema([pa.field(n, _ARROW[t], nullable=nl) for n, t, nl in cls.columns()],
                         metadata={"srlm.table": cls.TABLE, "srlm.schema_version": str(cls.SCHEMA_VERSION)})

    @classmethod
    def v1_schema(cls) -> pa.Schema:
        """The columns a schema-version-1 file of this table holds."""
        schema = cls.arrow_schema()
        return pa.schema([f for f in schema if f.name not in cls.ADDED_COLUMNS])

    def problems(self) -> list[str]:
        """Why this row is invalid (empty when valid)."""
        found = []
        for name, kind, nullable in self.columns():
            value = getattr(self, name)
            if value is None:
                if not nullable:
                    found.append(f"{name} is null")
            elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                if not (kind is float and isinstance(value, int) and not isinstance(value, bool)):
                    found.append(f"{name} is {type(value).__name__}, expected {kind.__name__}")
        if not found and getattr(self, self.ID_FIELD) != self.compute_id(dataclasses.asdict(self)):
            found.append(f"{self.ID_FIELD} is not the content hash of {', '.join(self.ID_FIELDS)}")
        return found


@dataclass(frozen=True)
class PromptAdded(Event):
    """A prompt entered the run: seed (human), generated (self-instruction) or eval (held out)."""

    TABLE: ClassVar[str] = "prompts"
    ID_FIELD: ClassVar[str] = "prompt_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("iteration", "source", "origin_id", "text", "model_hash")

    prompt_id: str
    iteration: int
    source: str
    text: str
    model_hash: str | None
    origin_id: str | None
    split: str | None
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int


@dataclass(frozen=True)
class CandidateGenerated(Event):
    """A model sampled one response to a prompt."""

    TABLE: ClassVar[str] = "candidates"
    ID_FIELD: ClassVar[str] = "candidate_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("prompt_id", "iteration", "model_hash", "sample_index",
                                            "seed", "sampling", "text")

    candidate_id: str
    prompt_id: str
    iteration: int
    model_hash: str
    sample_index: int
    text: str
    num_tokens: int
    finish_reason: str
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int


@dataclass(frozen=True)
class JudgementRecorded(Event):
    """A model judged one candidate once; score is null when the output could not be parsed."""

    SCHEMA_VERSION: ClassVar[int] = 2
    ADDED_COLUMNS: ClassVar[tuple[str, ...]] = ("injection_spans", "neutralised")
    TABLE: ClassVar[str] = "judgements"
    ID_FIELD: ClassVar[str] = "judgement_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("candidate_id", "model_hash", "template_hash", "sample_index",
                                            "method", "seed", "sampling", "raw_output", "score")

    judgement_id: str
    candidate_id: str
    prompt_id: str
    iteration: int
    model_hash: str
    sample_index: int
    template_hash: str
    raw_output: str
    score: float | None
    method: str
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int
    injection_spans: int | None = None   # judge-directed sentences found in the judged text (srlm_core/judges/injection.py)
    neutralised: bool | None = None      # whether they were cut from what the judge saw (judge.injection)


@dataclass(frozen=True)
class PairBuilt(Event):
    """A preference pair (highest- vs lowest-scored candidate of a prompt) entered AIFT."""

    TABLE: ClassVar[str] = "pairs"
    ID_FIELD: ClassVar[str] = "pair_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("prompt_id", "iteration", "chosen_id", "rejected_id",
                                            "chosen_score", "rejected_score")

    pair_id: str
    prompt_id: str
    iteration: int
    chosen_id: str
    rejected_id: str
    chosen_score: float
    rejected_score: float
    chosen_spread: float
    rejected_spread: float
    model_hash: str
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int


@dataclass(frozen=True)
class PromptRejected(Event):
    """A generated prompt was filtered out; reason is one of REJECT_REASONS in self_instruct."""

    TABLE: ClassVar[str] = "rejected_prompts"
    ID_FIELD: ClassVar[str] = "rejection_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("iteration", "request_index", "sample_index", "raw_output", "model_hash")

    rejection_id: str
    iteration: int
    request_index: int
    sample_index: int
    raw_output: str
    text: str | None
    reason: str
    detail: str | None
    model_hash: str
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int


@dataclass(frozen=True)
class PairSkipped(Event):
    """A prompt gave no preference pair: reason is tie, too_few_judged or below_margin."""

    TABLE: ClassVar[str] = "skipped_pairs"
    ID_FIELD: ClassVar[str] = "skip_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("prompt_id", "iteration", "reason", "model_hash")

    skip_id: str
    prompt_id: str
    iteration: int
    reason: str
    judged_candidates: int
    top_score: float | None
    bottom_score: float | None
    model_hash: str
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int


@dataclass(frozen=True)
class ReplyJudged(Event):
    """A model judged one human-written reply of a ranked group (EFT data, reward-model evaluation)."""

    SCHEMA_VERSION: ClassVar[int] = 2
    ADDED_COLUMNS: ClassVar[tuple[str, ...]] = ("injection_spans", "neutralised")
    TABLE: ClassVar[str] = "reply_judgements"
    ID_FIELD: ClassVar[str] = "judgement_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("reply_id", "model_hash", "template_hash", "sample_index", "method",
                                            "seed", "sampling", "raw_output", "score")

    judgement_id: str
    group_id: str
    reply_id: str
    human_rank: int
    split: str
    iteration: int
    model_hash: str
    sample_index: int
    template_hash: str
    raw_output: str
    score: float | None
    method: str
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int
    injection_spans: int | None = None   # judge-directed sentences found in the judged text (srlm_core/judges/injection.py)
    neutralised: bool | None = None      # whether they were cut from what the judge saw (judge.injection)


@dataclass(frozen=True)
class RewardModelJudged(Event):
    """Reward-modelling evaluation: a model judged one reply of a held-out human-ranked group."""

    SCHEMA_VERSION: ClassVar[int] = 2
    ADDED_COLUMNS: ClassVar[tuple[str, ...]] = ("injection_spans", "neutralised")
    TABLE: ClassVar[str] = "rm_judgements"
    ID_FIELD: ClassVar[str] = "judgement_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("model", "reply_id", "model_hash", "template_hash", "sample_index",
                                            "method", "seed", "sampling", "raw_output", "score")
    PARTITION: ClassVar[str] = "model"

    judgement_id: str
    model: str
    group_id: str
    reply_id: str
    human_rank: int
    model_hash: str
    sample_index: int
    template_hash: str
    raw_output: str
    score: float | None
    method: str
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int
    injection_spans: int | None = None   # judge-directed sentences found in the judged text (srlm_core/judges/injection.py)
    neutralised: bool | None = None      # whether they were cut from what the judge saw (judge.injection)


@dataclass(frozen=True)
class EvalAnswerGenerated(Event):
    """Instruction-following evaluation: a model answered one held-out prompt."""

    TABLE: ClassVar[str] = "eval_answers"
    ID_FIELD: ClassVar[str] = "answer_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("model", "prompt_id", "model_hash", "seed", "sampling", "text")
    PARTITION: ClassVar[str] = "model"

    answer_id: str
    model: str
    prompt_id: str
    model_hash: str
    text: str
    num_tokens: int
    finish_reason: str
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int


@dataclass(frozen=True)
class GamePlayed(Event):
    """One head-to-head game: the evaluator compared model a's and model b's answers to one
    prompt in both orders (ab: a's answer shown as Response A; ba: shown as Response B).
    A verdict names the preferred position (A/B) or is NULL when it could not be read; the
    outcome is a or b only when both orders prefer the same model, else tie."""

    TABLE: ClassVar[str] = "h2h_games"
    ID_FIELD: ClassVar[str] = "game_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("matchup", "answer_a_id", "answer_b_id", "evaluator", "evaluator_hash",
                                            "template_hash", "raw_ab", "raw_ba")
    PARTITION: ClassVar[str] = "matchup"

    game_id: str
    matchup: str
    prompt_id: str
    model_a: str
    model_b: str
    answer_a_id: str
    answer_b_id: str
    evaluator: str
    evaluator_hash: str
    template_hash: str
    raw_ab: str
    verdict_ab: str | None
    raw_ba: str
    verdict_ba: str | None
    outcome: str
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int


EVENT_TYPES: tuple[type[Event], ...] = (PromptAdded, CandidateGenerated, JudgementRecorded, PairBuilt,
                                        PromptRejected, PairSkipped, ReplyJudged, RewardModelJudged,
                                        EvalAnswerGenerated, GamePlayed)
BY_TABLE: dict[str, type[Event]] = {cls.TABLE: cls for cls in EVENT_TYPES}
