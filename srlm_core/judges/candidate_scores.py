"""A candidate's score: the mean of its valid judge samples (candidate_scores.sql).

The judge stage computes it once, when all of an iteration's judgements are in, and records it as
CandidateScored events; the stages that pick on scores (pairs, guards) read those, checked to cover
every judgement, instead of grouping the judgements again. A log written before the judge stage
recorded scores has them computed from its judgements on the way in, the same way.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SrlmError
from ..log.eventlog import EventLog
from ..log.events import CandidateScored, JudgementRecorded, ids_to_hex
from ..log.query import iteration_views

SQL = Path(__file__).parent / "candidate_scores.sql"


def compute(con: duckdb.DuckDBPyConnection, events: EventLog, iteration: int) -> pa.Table:
    """Every judged candidate's score, spread and valid samples from the `judgements` view of `con`, by
    candidate_id, ids as 32 bytes."""
    scores = con.sql(SQL.read_text()).to_arrow_table()
    ids = scores.column("candidate_id")
    if len(ids) > 1 and pc.any(pc.equal(ids[1:], ids[:-1])).as_py():
        raise SrlmError(f"{events.partition(JudgementRecorded.TABLE, iteration)}: a candidate's judgements "
                        f"name different prompt_ids; re-run the judge stage")
    return scores


def record(events: EventLog, iteration: int, model_hash: str, stage: str) -> int:
    """Record every judged candidate's score of the iteration as CandidateScored events; how many."""
    con = iteration_views(events, iteration, (JudgementRecorded,))
    try:
        scores = compute(con, events, iteration)
    finally:
        con.close()
    for name in ("candidate_id", "prompt_id"):
        scores = scores.set_column(scores.column_names.index(name), name, ids_to_hex(scores.column(name)))
    rows = [CandidateScored.create(**row, iteration=iteration, model_hash=model_hash, stage=stage, seed=None,
                                   sampling=None)
            for row in scores.to_pylist()]
    events.append_partition(CandidateScored, iteration, rows)
    return len(rows)


def add_view(con: duckdb.DuckDBPyConnection, events: EventLog, iteration: int) -> None:
    """A `candidate_scores` view in `con` (which has the iteration's `judgements` view): the recorded
    scores, refused unless they cover exactly the judgements there are; computed from the judgements
    when the judge stage recorded none (a log from before it did)."""
    paths = events.paths(CandidateScored, iteration)
    if not paths:
        con.register("candidate_scores", compute(con, events, iteration))
        return
    files = ", ".join("'" + p.as_posix().replace("'", "''") + "'" for p in paths)
    con.execute(f"create view candidate_scores as select * from read_parquet([{files}])")
    covered = con.execute("select coalesce(sum(samples), 0) from candidate_scores").fetchall()[0][0]
    judged = con.execute("select count(*) from judgements").fetchall()[0][0]
    if covered != judged:
        raise SrlmError(f"{events.partition(CandidateScored.TABLE, iteration)}: the recorded candidate scores "
                        f"cover {covered} judgements, but {events.partition(JudgementRecorded.TABLE, iteration)} "
                        f"holds {judged}; re-run the judge stage of iteration {iteration}")
