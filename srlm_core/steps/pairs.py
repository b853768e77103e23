"""Stage `pairs`: AIFT(Mt) from the judgements of iteration t, selected in DuckDB SQL.

Each prompt's pair is its best vs its worst candidate (pairs.sql, the paper's rule), or with
pairs.length_control the shortest near-best vs the longest near-worst (pairs_length.sql,
Meta-Rewarding's); every pair records the rule. The candidates' scores (the mean of their valid
judge samples) are those the judge stage recorded (judges/candidate_scores.py). Writes PairBuilt / PairSkipped
events and the training data `<out>/train.parquet`: (prompt, chosen, rejected) for DPO, or (prompt,
completion) with the top responses when `pairs.positive_only` is set (the paper's ablation;
`positives` says which).
When no judgement of the iteration has a score (the judge never wrote a valid `Score: N`),
it stops with an SrlmError before writing anything, whatever `dpo.allow_empty` says.
"""

from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SrlmError
from ..hashing import sha256_file
from ..judges.candidate_scores import add_view as add_scores_view
from ..log.eventlog import EventLog
from ..log.events import (
    CandidateGenerated,
    JudgementRecorded,
    PairBuilt,
    PairSkipped,
    PromptAdded,
    ids_to_hex,
)
from ..log.lineage import staging
from ..log.query import iteration_views
from ..params import Params
from ..storage import write_json, write_parquet

STAGE = "pairs"
SQL = Path(__file__).parent / "pairs.sql"
LENGTH_SQL = Path(__file__).parent / "pairs_length.sql"
BEST_VS_WORST, LENGTH_CONTROLLED = "best_vs_worst", "length_controlled"   # PairBuilt.rule


def _hexed(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    """`table` with the id `columns` (32 bytes in the SQL) as hex strings, as Python and the outputs have them."""
    for name in columns:
        index = table.column_names.index(name)
        column = table.column(index)
        valid = pc.is_valid(column)
        if column.null_count:   # a prompt with no judged candidate has no chosen / rejected id
            filled = ids_to_hex(pc.fill_null(column, pa.scalar(bytes(32), column.type)))
            hexed = pc.if_else(valid, filled, pa.scalar(None, pa.string()))
        else:
            hexed = ids_to_hex(column)
        table = table.set_column(index, pa.field(name, pa.string()), hexed)
    return table


# The texts of the selected rows' chosen / rejected candidates and prompts, in the rows' order (pos):
# the narrow rows are the join's build side and the texts stream past them, one text column per
# statement, so no hash table or sort holds more than one text column (the prompts, the smallest,
# last, when the other columns are already held).
TEXTS_SQL = """select t.text from selected s left join {table} t on t.{id} = s.{key} order by s.pos"""
TEXT_COLUMNS = {"chosen": ("candidates", "candidate_id", "chosen_id"),
                "rejected": ("candidates", "candidate_id", "rejected_id"),
                "prompt": ("prompts", "prompt_id", "prompt_id")}
ROW_COLUMNS = ["prompt_id", "prompt", "judged_candidates", "chosen_id", "chosen", "chosen_score", "chosen_spread",
               "rejected_id", "rejected", "rejected_score", "rejected_spread", "skip_reason"]
# For pairs_length.sql: the characters of every scored candidate's text (DuckDB's length() counts
# Unicode code points, as Python's len() does), the texts streamed past the narrow scores.
LENGTHS_SQL = """select s.candidate_id, length(c.text) as chars
                 from candidate_scores s left join candidates c on c.candidate_id = s.candidate_id"""


def _check_join(events: EventLog, iteration: int, table: str, id_column: str, column: pa.ChunkedArray,
                rows: int, nulls: int) -> None:
    """A column joined from `table` on `id_column` has one value per row, and a null only where it should."""
    if len(column) != rows:
        raise SrlmError(f"{events.partition(table, iteration)}: {table} holds a {id_column} more than once")
    if column.null_count != nulls:
        raise SrlmError(f"{events.partition(JudgementRecorded.TABLE, iteration)}: a judged {id_column} is "
                        f"not in {events.partition(table, iteration)}; re-run the judge stage")


def select(events: EventLog, iteration: int, min_margin: float,
           threads: int | None = None, tolerance: float | None = None) -> pa.Table:
    """One row per prompt of the iteration, by prompt_id: its chosen and rejected candidate and why it
    gives no pair, as Arrow, ids as hex strings (the SQL joins, groups and sorts them as 32 bytes; byte
    order is hex order). Chosen and rejected are the best and the worst candidate (pairs.sql), or with a
    `tolerance` the shortest near-best and the longest near-worst (pairs_length.sql), by the candidate
    scores the judge stage recorded. The pair SQL picks on ids, scores (and lengths) only, and the texts
    are joined to its rows afterwards (TEXTS_SQL). The table is the same, bit for bit, for any `threads`
    (exact integer sums, order-free picks, ORDER BY on unique keys)."""
    con = iteration_views(events, iteration, (PromptAdded, CandidateGenerated, JudgementRecorded), threads)
    try:
        add_scores_view(con, events, iteration)
        if tolerance is None:
            rows = con.sql(SQL.read_text(), params={"min_margin": min_margin}).to_arrow_table()
        else:
            lengths = con.sql(LENGTHS_SQL).to_arrow_table()
            scored = con.execute("select count(*) from candidate_scores").fetchall()[0][0]
            _check_join(events, iteration, "candidates", "candidate_id", lengths.column("chars"), scored, 0)
            con.register("candidate_lengths", lengths)
            rows = con.sql(LENGTH_SQL.read_text(),
                           params={"min_margin": min_margin, "tolerance": tolerance}).to_arrow_table()
        con.register("selected", rows.append_column("pos", pa.array(range(rows.num_rows), pa.int64())))
        texts = {}
        for name, (table, id_column, key) in TEXT_COLUMNS.items():
            column = con.sql(TEXTS_SQL.format(table=table, id=id_column, key=key)).to_arrow_table().column(0)
            _check_join(events, iteration, table, id_column, column, rows.num_rows, rows.column(key).null_count)
            texts[name] = column
    finally:
        con.close()
    return _hexed(pa.table({c: texts[c] if c in texts else rows.column(c) for c in ROW_COLUMNS}),
                  ("prompt_id", "chosen_id", "rejected_id"))


def positives(selected: pa.Table, min_score: float | None) -> pa.ChunkedArray:
    """Which prompts give their top response as SFT data under pairs.positive_only. Without a minimum
    score: the prompts that give a pair (the chosen side of each pair). With one: every prompt whose top
    response scores at least that, tied or not; the paper kept only perfect scores (5). The top response
    is the chosen one: with pairs.length_control, the shortest near the best."""
    if min_score is None:
        return pc.is_null(selected.column("skip_reason"))
    return pc.fill_null(pc.greater_equal(selected.column("chosen_score"), min_score), False)


def no_scores_message(params: Params, events: EventLog, iteration: int, judgements: pa.Table) -> str:
    """Why an iteration whose judgements all failed to parse stops here: a judge that never gives
    a score is a failure, not an empty iteration, so this holds whatever dpo.allow_empty says."""
    methods = sorted(set(judgements.column("method").to_pylist()))
    events_flag = "" if events.root == Path("data/events") else f" --events {shlex.quote(str(events.root))}"
    if methods == ["text"]:
        fixes = ("set judge.method: probability in params.yaml (always a number), raise judge.max_new_tokens "
                 f"(now {params.judge.max_new_tokens}) so the justification reaches its `Score: N` line, "
                 "or judge with a larger model")
    else:
        fixes = ("re-run the judge stage (judge.method: probability always gives a number), or judge with a "
                 "larger model")
    return (f"{events.partition(JudgementRecorded.TABLE, iteration)}: none of the {judgements.num_rows} "
            f"judgements of iteration {iteration} has a score (judge.method: {', '.join(methods)}): the judge "
            f"never wrote a valid `Score: N` (a whole number 0-5), so there is nothing to build pairs from; "
            f"nothing written, whatever dpo.allow_empty says. Look at the raw outputs with: "
            f"srlm sql{events_flag} \"select raw_output from judgements where iteration = {iteration} limit 5\". "
            f"Fix: {fixes}")


def run(params: Params, *, iteration: int, events_root: Path, out_dir: Path) -> dict:
    cfg = params.pairs
    events = EventLog(events_root)
    judgements = events.read(JudgementRecorded, iteration, columns=["model_hash", "score", "method"])
    judged_by = set(pc.unique(judgements.column("model_hash")).to_pylist())
    if len(judged_by) != 1:
        raise SrlmError(f"{events.partition(JudgementRecorded.TABLE, iteration)}: expected judgements by one "
                        f"model, found {len(judged_by) or 'none'}; re-run the judge stage")
    if judgements.column("score").null_count == judgements.num_rows:
        raise SrlmError(no_scores_message(params, events, iteration, judgements))
    del judgements
    model_hash = judged_by.pop()
    rule, tolerance = ((LENGTH_CONTROLLED, cfg.length_control.tolerance) if cfg.length_control.enabled
                       else (BEST_VS_WORST, None))
    selected = select(events, iteration, cfg.min_margin, tolerance=tolerance)
    rows = selected.drop_columns(["prompt", "chosen", "rejected"]).to_pylist()   # no texts in Python objects
    common = dict(iteration=iteration, model_hash=model_hash, stage=STAGE, seed=None, sampling=None)
    pairs = [PairBuilt.create(prompt_id=r["prompt_id"], chosen_id=r["chosen_id"], rejected_id=r["rejected_id"],
                              chosen_score=r["chosen_score"], rejected_score=r["rejected_score"],
                              chosen_spread=r["chosen_spread"], rejected_spread=r["rejected_spread"],
                              rule=rule, tolerance=tolerance, **common)
             for r in rows if r["skip_reason"] is None]
    skipped = [PairSkipped.create(prompt_id=r["prompt_id"], reason=r["skip_reason"],
                                  judged_candidates=r["judged_candidates"], top_score=r["chosen_score"],
                                  bottom_score=r["rejected_score"], **common)
               for r in rows if r["skip_reason"] is not None]
    kept = selected.filter(positives(selected, cfg.positive_min_score) if cfg.positive_only
                           else pc.is_null(selected.column("skip_reason")))
    if cfg.positive_only:
        train = pa.table({"prompt_id": kept.column("prompt_id"), "prompt": kept.column("prompt"),
                          "completion": kept.column("chosen"), "score": kept.column("chosen_score")},
                         schema=pa.schema([("prompt_id", pa.string()), ("prompt", pa.string()),
                                           ("completion", pa.string()), ("score", pa.float64())]))
    else:
        columns = ["prompt_id", "prompt", "chosen", "rejected", "chosen_score", "rejected_score"]
        train = kept.select(columns).cast(pa.schema([(c, pa.float64() if c.endswith("score") else pa.string())
                                                     for c in columns]))
    train = train.combine_chunks()
    events.append_partition(PairBuilt, iteration, pairs)
    events.append_partition(PairSkipped, iteration, skipped)
    reasons = dict(Counter(s.reason for s in skipped))
    with staging(out_dir) as tmp:
        write_parquet(train, tmp / "train.parquet")
        summary = {"iteration": iteration, "mode": "sft" if cfg.positive_only else "dpo", "judge_model": model_hash,
                   "prompts": selected.num_rows, "pairs": len(pairs), "skipped": reasons,
                   "train_sha256": sha256_file(tmp / "train.parquet"), "min_margin": cfg.min_margin,
                   "rule": rule, "tolerance": tolerance,
                   "examples": train.num_rows, "positive_min_score": cfg.positive_min_score}
        write_json(summary, tmp / "summary.json")
    return summary
