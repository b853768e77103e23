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
import re
import types
import typing
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..hashing import row_id

_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
ID_TYPE = pa.binary(32)   # a row id as stored: the 32 bytes of its sha256 (fixed_size_binary(32))
_HEX_ID = re.compile(r"[0-9a-f]{64}")
# byte -> its two hex digits as one little-endian 16-bit value, so the digits land in memory in order
_HEX_PAIRS = np.array([int.from_bytes(f"{b:02x}".encode(), "little") for b in range(256)], dtype="<u2")
_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


class IdEncodingError(ValueError):
    pass


def _chunks(values: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return values.chunks if isinstance(values, pa.ChunkedArray) else [values]


def ids_to_hex(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """32-byte ids (binary) as 64-character lowercase hex strings, the form ids have in Python."""
    out = []
    for chunk in _chunks(values):
        if chunk.null_count:
            raise IdEncodingError("an id column holds nulls")
        chunk = chunk.cast(ID_TYPE) if chunk.type != ID_TYPE else chunk
        n = len(chunk)
        raw = np.frombuffer(chunk.buffers()[1], dtype=np.uint8, count=32 * (chunk.offset + n))[32 * chunk.offset:]
        raw = raw.reshape(n, 32)
        hexed = _HEX_PAIRS[raw]   # one gather per byte: its two digits as one 16-bit value
        offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int32)
        out.append(pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(hexed)))
    return pa.chunked_array(out, pa.string())


def ids_from_hex(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """64-character lowercase hex ids (strings, as in Python and in schema-version-1 files) as 32 bytes."""
    out = []
    for chunk in _chunks(values):
        if chunk.null_count:
            raise IdEncodingError("an id column holds nulls")
        chunk = chunk.cast(pa.large_binary())
        n = len(chunk)
        if n and not pc.all(pc.equal(pc.binary_length(chunk), 64)).as_py():
            raise IdEncodingError("an id is not 64 hex digits")
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64, count=chunk.offset + n + 1)[chunk.offset:]
        start = int(offsets[0]) if n else 0
        text = np.frombuffer(chunk.buffers()[2], dtype=np.uint8, count=start + 64 * n)[start:] if n else \
            np.empty(0, dtype=np.uint8)
        nibbles = _NIBBLE[text.reshape(n, 64)]
        if (nibbles == 255).any():
            raise IdEncodingError("an id is not lowercase hex (0-9, a-f)")
        raw = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
        out.append(pa.FixedSizeBinaryArray.from_buffers(ID_TYPE, n, [None, pa.py_buffer(raw.tobytes())]))
    return pa.chunked_array(out, ID_TYPE)


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
    # Version history (EventLog reads every version, upcasting older files on read):
    #   1: ids as 64-character hex strings;
    #   BINARY_IDS_SINCE (2, or 3 for the judgement tables): the ID_COLUMNS stored as 32 bytes (ID_TYPE);
    #   ADDED_COLUMNS: columns added since (the judgement tables' guard columns in 2, the pairs' rule and
    #   tolerance in 3).
    SCHEMA_VERSION: ClassVar[int] = 2
    PARTITION: ClassVar[str] = "iteration"   # the column whose value names the partition folder
    # Columns added after version 1, each with the schema version that added it: an older file lacks
    # them and reads each as its UPCAST_VALUES entry, or null. An entry there states what every row
    # written before the column existed was (the pairs' rule), so its column is never null.
    ADDED_COLUMNS: ClassVar[dict[str, int]] = {}
    UPCAST_VALUES: ClassVar[dict[str, object]] = {}
    BINARY_IDS_SINCE: ClassVar[int] = 2
    # Columns holding sha256 row ids (this row's own, and references to other rows). In Python (the
    # event classes, EventLog.read) an id is its 64-character lowercase hex string; in the files and
    # in the internal SQL it is 32 bytes; the views for people (`srlm sql`, views.sql) show hex.
    ID_COLUMNS: ClassVar[tuple[str, ...]]

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
        """The schema this version writes."""
        return cls.schema_at(cls.SCHEMA_VERSION).with_metadata(
            {"srlm.table": cls.TABLE, "srlm.schema_version": str(cls.SCHEMA_VERSION)})

    @classmethod
    def schema_at(cls, version: int) -> pa.Schema:
        """The columns (and their types) a file of this table written at schema `version` holds."""
        if not 1 <= version <= cls.SCHEMA_VERSION:
            raise ValueError(f"{cls.TABLE} has schema versions 1 to {cls.SCHEMA_VERSION}, not {version}")
        binary = version >= cls.BINARY_IDS_SINCE
        return pa.schema([pa.field(n, ID_TYPE if binary and n in cls.ID_COLUMNS else _ARROW[t], nullable=nl)
                          for n, t, nl in cls.columns() if version >= cls.ADDED_COLUMNS.get(n, 1)])

    @classmethod
    def v1_schema(cls) -> pa.Schema:
        """The columns a schema-version-1 file of this table holds (ids as hex strings)."""
        return cls.schema_at(1)

    @classmethod
    def python_schema(cls) -> pa.Schema:
        """The current columns with ids as hex strings: what EventLog.read returns by default."""
        return pa.schema([pa.field(n, _ARROW[t], nullable=nl) for n, t, nl in cls.columns()])

    @classmethod
    def version_of(cls, schema: pa.Schema) -> int | None:
        """The schema version whose columns `schema` holds (metadata aside), or None."""
        bare = schema.remove_metadata()
        return next((v for v in range(cls.SCHEMA_VERSION, 0, -1) if bare.equals(cls.schema_at(v))), None)

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
        found += [f"{name} is not a row id (64 lowercase hex digits)" for name in self.ID_COLUMNS
                  if isinstance(getattr(self, name), str) and not _HEX_ID.fullmatch(getattr(self, name))]
        if not found and getattr(self, self.ID_FIELD) != self.compute_id(dataclasses.asdict(self)):
            found.append(f"{self.ID_FIELD} is not the content hash of {', '.join(self.ID_FIELDS)}")
        return found


@dataclass(frozen=True)
class PromptAdded(Event):
    """A prompt entered the run: seed (human), generated (self-instruction) or eval (held out)."""

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("prompt_id",)
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

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("candidate_id", "prompt_id")
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

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("judgement_id", "candidate_id", "prompt_id")
    SCHEMA_VERSION: ClassVar[int] = 3
    ADDED_COLUMNS: ClassVar[dict[str, int]] = {"injection_spans": 2, "neutralised": 2}
    BINARY_IDS_SINCE: ClassVar[int] = 3
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
class CandidateScored(Event):
    """A candidate's score as the judge stage recorded it once all its samples were in: the mean of its
    valid judge samples (null when none parsed), their spread (population standard deviation) and how
    many were valid (candidate_scores.sql). The pairs and guards stages read these instead of
    re-grouping every judgement."""

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("score_id", "candidate_id", "prompt_id")
    TABLE: ClassVar[str] = "candidate_scores"
    ID_FIELD: ClassVar[str] = "score_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("candidate_id", "model_hash", "score", "spread", "valid_samples",
                                            "samples")

    score_id: str
    candidate_id: str
    prompt_id: str
    iteration: int
    model_hash: str
    score: float | None
    spread: float
    valid_samples: int
    samples: int
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int


@dataclass(frozen=True)
class PairBuilt(Event):
    """A preference pair of a prompt's candidates entered AIFT, chosen by `rule`: best_vs_worst (the
    highest- vs the lowest-scored) or length_controlled (the shortest of those within `tolerance` of
    the best vs the longest of those within it of the worst; pairs.length_control)."""

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("pair_id", "prompt_id", "chosen_id", "rejected_id")
    SCHEMA_VERSION: ClassVar[int] = 3
    ADDED_COLUMNS: ClassVar[dict[str, int]] = {"rule": 3, "tolerance": 3}
    UPCAST_VALUES: ClassVar[dict[str, object]] = {"rule": "best_vs_worst"}   # the only rule before version 3
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
    rule: str                # the pair rule that chose it: best_vs_worst | length_controlled
    tolerance: float | None  # length_controlled: pairs.length_control.tolerance; null otherwise


@dataclass(frozen=True)
class PromptRejected(Event):
    """A generated prompt was filtered out; reason is one of REJECT_REASONS in self_instruct."""

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("rejection_id",)
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
    """A prompt gave no preference pair: reason is tie, too_few_judged, below_margin or (length-controlled
    rule only) bands_overlap; top_score and bottom_score are those of the candidates the rule picked."""

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("skip_id", "prompt_id")
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

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("judgement_id", "group_id")
    SCHEMA_VERSION: ClassVar[int] = 3
    ADDED_COLUMNS: ClassVar[dict[str, int]] = {"injection_spans": 2, "neutralised": 2}
    BINARY_IDS_SINCE: ClassVar[int] = 3
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

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("judgement_id", "group_id")
    SCHEMA_VERSION: ClassVar[int] = 3
    ADDED_COLUMNS: ClassVar[dict[str, int]] = {"injection_spans": 2, "neutralised": 2}
    BINARY_IDS_SINCE: ClassVar[int] = 3
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

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("answer_id", "prompt_id")
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
class InstructionAnswerChecked(Event):
    """Verifiable instruction following: a model answered one prompt of evaluation.instructions.prompts
    and code checked the answer against each of the prompt's instructions (no judge)."""

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("answer_id",)
    TABLE: ClassVar[str] = "instruction_answers"
    ID_FIELD: ClassVar[str] = "answer_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("model", "origin_id", "prompt", "model_hash", "seed", "sampling", "text")
    PARTITION: ClassVar[str] = "model"

    answer_id: str
    model: str
    origin_id: str        # the prompt's id in the prompt file
    prompt: str
    model_hash: str
    text: str
    num_tokens: int
    finish_reason: str
    instructions: int     # how many the prompt carries
    followed: int         # how many of them the answer follows
    checks: str           # JSON: [{"kind", "args", "followed"}, ...] in the prompt's order
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

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("game_id", "prompt_id", "answer_a_id", "answer_b_id")
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


@dataclass(frozen=True)
class AnswerScored(Event):
    """Pointwise evaluation: the fixed judge (evaluation.evaluator.model, never trained) scored one
    held-out answer of `model` with the additive 5-point prompt, one row per judge sample."""

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("judgement_id", "prompt_id", "answer_id")
    TABLE: ClassVar[str] = "answer_scores"
    ID_FIELD: ClassVar[str] = "judgement_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("model", "answer_id", "judge_hash", "template_hash", "sample_index",
                                            "method", "seed", "sampling", "raw_output", "score")
    PARTITION: ClassVar[str] = "model"

    judgement_id: str
    model: str            # the model that wrote the answer (the partition), not the judge
    prompt_id: str
    answer_id: str
    judge: str            # the judge's folder under models/, e.g. M0
    judge_hash: str
    sample_index: int
    template_hash: str
    raw_output: str
    score: float | None
    method: str
    injection_spans: int  # judge-directed sentences found in the answer (srlm_core/judges/injection.py)
    neutralised: bool     # whether they were cut from what the judge saw (judge.injection)
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int


@dataclass(frozen=True)
class ReplyLogprobComputed(Event):
    """Implicit-reward evaluation: the summed log-probability log p_model(reply | conversation) of one
    held-out human-ranked reply (data/processed/heldout_ranked.parquet) under `model`, forward passes
    only; tokens and logprob are null when conversation + reply exceed evaluation.implicit.max_length."""

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("logprob_id",)   # group_id, reply_id: dataset message ids
    TABLE: ClassVar[str] = "reply_logprobs"
    ID_FIELD: ClassVar[str] = "logprob_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("model", "group_id", "reply_id", "model_hash", "sampling", "tokens",
                                            "logprob")
    PARTITION: ClassVar[str] = "model"

    logprob_id: str
    model: str
    group_id: str          # the held-out file's group: the message id of the user turn the sibling replies answer
    reply_id: str          # the reply's message id
    model_hash: str
    tokens: int | None     # reply tokens scored
    logprob: float | None  # their summed log-probability (natural log)
    stage: str
    seed: int | None       # always null: forward passes, no sampling
    sampling: str | None   # JSON of the scoring settings (dtype, max_length, batch_size)
    schema_version: int


@dataclass(frozen=True)
class GuardChecked(Event):
    """After iteration t, one guard compared a sign of judge failure or reward hacking with its
    threshold (params.yaml `guards`): the iteration's judge scores collapsing to the top or to one
    value, M(t+1)'s held-out answers growing longer than Mt's, M(t+1) agreeing less than Mt with the
    held-out human rankings. A check that was off or had nothing to measure is `skipped`."""

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("check_id",)
    TABLE: ClassVar[str] = "guard_checks"
    ID_FIELD: ClassVar[str] = "check_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("iteration", "model", "parent", "guard", "value", "threshold", "outcome",
                                            "model_hash")

    check_id: str
    iteration: int
    model: str               # M(t+1), the model iteration t trained
    parent: str              # Mt, the model it was trained from (and that judged iteration t)
    guard: str               # top_share | score_sd | length_growth | rm_accuracy_drop | dpo_pairs_loss
    value: float | None      # what was measured; null when there was nothing to measure
    threshold: float | None  # the guards param it was held against; null when that check is off
    outcome: str             # ok | warn | fail (tripped, as guards.action says) | skipped
    reason: str              # the numbers behind the value, or why the check was skipped
    model_hash: str          # M(t+1)'s weights, as its held-out answers record them
    stage: str
    seed: int | None         # always null: nothing is sampled
    sampling: str | None     # JSON of the guards settings the checks ran under
    schema_version: int


@dataclass(frozen=True)
class MetaJudgementRecorded(Event):
    """Meta-Rewarding: the model compared two of its own judgements of one candidate (shown in this order as
    Judgement A and B) with the meta-judge prompt; p_first is its probability that A is the better one."""

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("meta_judgement_id", "candidate_id", "prompt_id", "first_judgement_id",
                                             "second_judgement_id")
    TABLE: ClassVar[str] = "meta_judgements"
    ID_FIELD: ClassVar[str] = "meta_judgement_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("candidate_id", "first_judgement_id", "second_judgement_id", "model_hash",
                                            "template_hash", "seed", "sampling", "raw_output", "p_first")

    meta_judgement_id: str
    candidate_id: str
    prompt_id: str
    iteration: int
    first_judgement_id: str    # shown as Judgement A
    second_judgement_id: str   # shown as Judgement B
    model_hash: str
    template_hash: str         # the meta-judge template's sha256
    raw_output: str            # the reason it wrote before its verdict
    p_first: float             # P(A) / (P(A) + P(B)) after `Better judgement:`
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int


@dataclass(frozen=True)
class JudgePairBuilt(Event):
    """A judge-training preference pair: of one candidate's judgements, the one the meta-judge preferred most
    (position-debiased win rate) vs the one it preferred least, with the judge prompt the model saw."""

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("judge_pair_id", "candidate_id", "prompt_id", "chosen_judgement_id",
                                             "rejected_judgement_id")
    TABLE: ClassVar[str] = "judge_pairs"
    ID_FIELD: ClassVar[str] = "judge_pair_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("candidate_id", "iteration", "chosen_judgement_id", "rejected_judgement_id",
                                            "chosen_win_rate", "rejected_win_rate", "model_hash", "template_hash")

    judge_pair_id: str
    candidate_id: str
    prompt_id: str
    iteration: int
    chosen_judgement_id: str
    rejected_judgement_id: str
    chosen_win_rate: float     # mean debiased preference for it over the candidate's other judgements
    rejected_win_rate: float
    chosen_points: int         # the score each judgement's text states
    rejected_points: int
    judgements: int            # distinct judgements compared
    prompt: str                # the judge prompt (user message), as the judge saw it
    chosen: str                # the judgement texts trained on (justification closed by `Score: N`)
    rejected: str
    model_hash: str
    template_hash: str         # the meta-judge template's sha256
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int


@dataclass(frozen=True)
class JudgePairSkipped(Event):
    """A candidate drawn for meta-judging gave no judge pair: reason is tie or below_margin."""

    ID_COLUMNS: ClassVar[tuple[str, ...]] = ("skip_id", "candidate_id", "prompt_id")
    TABLE: ClassVar[str] = "skipped_judge_pairs"
    ID_FIELD: ClassVar[str] = "skip_id"
    ID_FIELDS: ClassVar[tuple[str, ...]] = ("candidate_id", "iteration", "reason", "model_hash", "template_hash")

    skip_id: str
    candidate_id: str
    prompt_id: str
    iteration: int
    reason: str
    judgements: int
    top_win_rate: float
    bottom_win_rate: float
    model_hash: str
    template_hash: str
    stage: str
    seed: int | None
    sampling: str | None
    schema_version: int


EVENT_TYPES: tuple[type[Event], ...] = (PromptAdded, CandidateGenerated, JudgementRecorded, CandidateScored, PairBuilt,
                                        PromptRejected, PairSkipped, ReplyJudged, RewardModelJudged,
                                        EvalAnswerGenerated, GamePlayed, AnswerScored, InstructionAnswerChecked,
                                        ReplyLogprobComputed, GuardChecked,
                                        MetaJudgementRecorded, JudgePairBuilt, JudgePairSkipped)
BY_TABLE: dict[str, type[Event]] = {cls.TABLE: cls for cls in EVENT_TYPES}
