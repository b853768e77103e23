"""The event log at scale: appending judgements, and the pair-building SQL over many of them.

1. append: JudgementRecorded events built with the real classes (raw_output ~200 chars) and
   written with EventLog.append, one append per iteration as the judge stage does, for several
   iterations: iteration t's append must not cost more because iterations < t exist.
2. pairs: an iteration of judgements (4 candidates x 3 judge samples per prompt, as params.yaml)
   generated straight into the Parquet layout EventLog writes (pyarrow, same schema, same writer
   settings, part-<sha256>.parquet), the candidate scores the judge stage records at its end (timed
   apart), then the pairs stage's own selection, `pairs.select`, timed (`--only pairs`: this part
   alone, no append phase; its result file then holds no docs section).

Every phase runs in a fresh subprocess; its peak memory is that child's ru_maxrss (os.wait4), so
phases do not pollute each other.

    python bench/eventlog_scale.py --out bench/results/eventlog_scale.json [--quick] [--only pairs]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_result  # noqa: E402

SIZES = {
    "full": dict(iterations=5, rows_per_iteration=200_000, pair_judgements=10_000_000, repeats=3),
    "quick": dict(iterations=3, rows_per_iteration=600, pair_judgements=6_000, repeats=1),
}
CANDIDATES_PER_PROMPT = 4     # params.yaml candidates.n
SAMPLES = 3                   # params.yaml judge.samples
PAIRS_TARGET_S = 5.0
PAIRS_TARGET_MIB = 2048
TEXT_CHARS = {"prompt": 150, "candidate": 400, "raw_output": 200}   # prompts <= 400 chars; 128 new tokens
WORDS = ("the response explains each step clearly and gives a correct answer with a short example but misses "
         "one detail about edge cases so it earns four points under the additive rubric overall").split()
MODEL = "a3" * 32
TEMPLATE = "7e" * 32
SAMPLING = json.dumps({"max_new_tokens": 64, "max_prompt_tokens": 128, "max_response_tokens": 192, "samples": 3,
                       "temperature": 0.7, "top_p": 0.9}, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------- children (one phase each)

def peak_now_mib() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def phase_append(root: Path, iterations: int, rows_per_iteration: int) -> dict:
    """Judgement events built like the judge stage builds them, then one EventLog.append per iteration."""
    import random

    from srlm_core.hashing import sha256_text
    from srlm_core.log.eventlog import EventLog
    from srlm_core.log.events import JudgementRecorded

    log = EventLog(root)
    rng = random.Random(0)
    out = []
    for t in range(1, iterations + 1):
        start = time.perf_counter()
        rows = []
        for c in range(rows_per_iteration // SAMPLES):
            candidate_id = sha256_text(f"candidate {t} {c}")
            prompt_id = sha256_text(f"prompt {t} {c // CANDIDATES_PER_PROMPT}")
            for k in range(SAMPLES):
                score = rng.randint(0, 5)
                raw = " ".join(rng.choice(WORDS) for _ in range(40))[:TEXT_CHARS["raw_output"] - 10]
                rows.append(JudgementRecorded.create(
                    candidate_id=candidate_id, prompt_id=prompt_id, iteration=t, model_hash=MODEL, sample_index=k,
                    template_hash=TEMPLATE, raw_output=f"{raw}\nScore: {score}", score=float(score),
                    method="probability", stage="judge", seed=1234 + 1000 * t + 2, sampling=SAMPLING))
        built = time.perf_counter() - start
        rss_before = rss_now_mib()
        start = time.perf_counter()
        path = log.append(rows)
        seconds = time.perf_counter() - start
        out.append({"iteration": t, "rows": len(rows), "build_s": built, "append_s": seconds,
                    "file_mib": path.stat().st_size / 2**20, "rss_before_append_mib": rss_before,
                    "peak_so_far_mib": peak_now_mib()})
        del rows
    return {"iterations": out}


def row_ids(rng, n: int):
    """n random sha256-shaped ids, as EventLog stores them (32 bytes each), without Python objects per row."""
    import numpy as np
    import pyarrow as pa

    from srlm_core.log.events import ID_TYPE
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    return pa.FixedSizeBinaryArray.from_buffers(ID_TYPE, n, [None, pa.py_buffer(raw.tobytes())])


def text_pool(rng, n: int, chars: int):
    import pyarrow as pa
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), size=n * (chars // 4))]
    out, step = [], chars // 4
    for i in range(n):
        out.append(" ".join(words[i * step:(i + 1) * step])[:chars])
    return pa.array(out, pa.string())


class PartWriter:
    """One part file in EventLog's layout: kind's schema, storage.PARQUET_OPTIONS, named by its sha256."""

    def __init__(self, folder: Path, kind):
        import pyarrow.parquet as pq

        from srlm_core.storage import PARQUET_OPTIONS
        options = dict(PARQUET_OPTIONS)
        self.row_group_size = options.pop("row_group_size")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.schema = folder, kind.arrow_schema()
        self.tmp = folder / ".part.partial"
        self.writer = pq.ParquetWriter(self.tmp, self.schema, **options)

    def write(self, columns: dict) -> None:
        import pyarrow as pa
        self.writer.write_table(pa.Table.from_pydict(columns, schema=self.schema), row_group_size=self.row_group_size)

    def close(self) -> Path:
        from srlm_core.hashing import sha256_file
        self.writer.close()
        return self.tmp.rename(self.folder / f"part-{sha256_file(self.tmp)}.parquet")


def phase_generate(root: Path, judgements: int, iteration: int = 1, chunk_prompts: int = 50_000) -> dict:
    """prompts, candidates and judgements of one iteration, columnar (no Python objects per row)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from srlm_core.log.eventlog import EventLog
    from srlm_core.log.events import CandidateGenerated, JudgementRecorded, PromptAdded

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    log = EventLog(root)
    per_prompt = CANDIDATES_PER_PROMPT * SAMPLES
    n_prompts = max(1, -(-judgements // per_prompt))
    pools = {k: text_pool(rng, min(20_000, n_prompts), c) for k, c in TEXT_CHARS.items()}
    writers = {kind: PartWriter(log.partition(kind.TABLE, iteration), kind)
               for kind in (PromptAdded, CandidateGenerated, JudgementRecorded)}

    def const(value, n, type_):
        return pa.array(np.full(n, value), type_) if value is not None else pa.nulls(n, type_)

    def pick(pool, n):
        return pool.take(pa.array(rng.integers(0, len(pool), size=n)))

    for first in range(0, n_prompts, chunk_prompts):
        p = min(chunk_prompts, n_prompts - first)
        c, j = p * CANDIDATES_PER_PROMPT, p * per_prompt
        prompt_ids, candidate_ids = row_ids(rng, p), row_ids(rng, c)
        writers[PromptAdded].write({
            "prompt_id": prompt_ids, "iteration": const(iteration, p, pa.int64()),
            "source": const("generated", p, pa.string()), "text": pick(pools["prompt"], p),
            "model_hash": const(MODEL, p, pa.string()), "origin_id": const(None, p, pa.string()),
            "split": const(None, p, pa.string()), "stage": const("prompts", p, pa.string()),
            "seed": const(1234, p, pa.int64()), "sampling": const(SAMPLING, p, pa.string()),
            "schema_version": const(PromptAdded.SCHEMA_VERSION, p, pa.int64())})
        cand_prompt = prompt_ids.take(pa.array(np.repeat(np.arange(p), CANDIDATES_PER_PROMPT)))
        writers[CandidateGenerated].write({
            "candidate_id": candidate_ids, "prompt_id": cand_prompt, "iteration": const(iteration, c, pa.int64()),
            "model_hash": const(MODEL, c, pa.string()),
            "sample_index": pa.array(np.tile(np.arange(CANDIDATES_PER_PROMPT), p)),
            "text": pick(pools["candidate"], c), "num_tokens": pa.array(rng.integers(20, 129, size=c)),
            "finish_reason": const("stop", c, pa.string()), "stage": const("candidates", c, pa.string()),
            "seed": const(1234, c, pa.int64()), "sampling": const(SAMPLING, c, pa.string()),
            "schema_version": const(CandidateGenerated.SCHEMA_VERSION, c, pa.int64())})
        of_candidate = pa.array(np.repeat(np.arange(c), SAMPLES))
        scores = np.round(rng.uniform(0, 5, size=j), 4)   # judge.method: probability (expected score)
        writers[JudgementRecorded].write({
            "judgement_id": row_ids(rng, j), "candidate_id": candidate_ids.take(of_candidate),
            "prompt_id": cand_prompt.take(of_candidate), "iteration": const(iteration, j, pa.int64()),
            "model_hash": const(MODEL, j, pa.string()), "sample_index": pa.array(np.tile(np.arange(SAMPLES), c)),
            "template_hash": const(TEMPLATE, j, pa.string()),
            "raw_output": pc.binary_join_element_wise(pick(pools["raw_output"], j),
                                                      pc.cast(pa.array(scores), pa.string()), "\nScore: "),
            "score": pa.array(scores), "method": const("probability", j, pa.string()),
            "stage": const("judge", j, pa.string()), "seed": const(1234, j, pa.int64()),
            "sampling": const(SAMPLING, j, pa.string()),
            "schema_version": const(JudgementRecorded.SCHEMA_VERSION, j, pa.int64()),
            "injection_spans": const(0, j, pa.int64()), "neutralised": const(False, j, pa.bool_())})
    files = {kind.TABLE: w.close() for kind, w in writers.items()}
    return {"prompts": n_prompts, "candidates": n_prompts * CANDIDATES_PER_PROMPT, "judgements": n_prompts * per_prompt,
            "seconds": time.perf_counter() - start,
            "file_mib": {t: p.stat().st_size / 2**20 for t, p in files.items()}}


def phase_scores(root: Path, iteration: int = 1) -> dict:
    """What the judge stage does at its end since pair building stopped grouping judgements: every
    candidate's score (candidate_scores.sql over the iteration's judgements, as judges/candidate_scores.py computes
    it), written as the candidate_scores partition. Columnar here, with random score ids as the fixture's
    other ids are; the stage builds one CandidateScored event per candidate in Python, as it does for its
    judgements."""
    import numpy as np
    import pyarrow as pa

    from srlm_core.judges import candidate_scores as scores
    from srlm_core.log.eventlog import EventLog
    from srlm_core.log.events import ID_TYPE, CandidateScored, JudgementRecorded
    from srlm_core.log.query import iteration_views

    log = EventLog(root)
    start = time.perf_counter()
    con = iteration_views(log, iteration, (JudgementRecorded,))
    try:
        table = scores.compute(con, log, iteration)
    finally:
        con.close()
    computed_s = time.perf_counter() - start
    n = table.num_rows
    writer = PartWriter(log.partition(CandidateScored.TABLE, iteration), CandidateScored)
    writer.write({"score_id": row_ids(np.random.default_rng(1), n),
                  "candidate_id": table.column("candidate_id").cast(ID_TYPE),
                  "prompt_id": table.column("prompt_id").cast(ID_TYPE),
                  "iteration": pa.array(np.full(n, iteration)), "model_hash": pa.array(np.full(n, MODEL)),
                  "score": table.column("score"), "spread": table.column("spread"),
                  "valid_samples": table.column("valid_samples"), "samples": table.column("samples"),
                  "stage": pa.array(np.full(n, "judge")), "seed": pa.nulls(n, pa.int64()),
                  "sampling": pa.nulls(n, pa.string()),
                  "schema_version": pa.array(np.full(n, CandidateScored.SCHEMA_VERSION))})
    writer.close()
    return {"candidates": n, "compute_s": computed_s, "seconds": time.perf_counter() - start}


def phase_pairs(root: Path, iteration: int = 1) -> dict:
    """The pairs stage's selection (pairs.select: the recorded candidate scores, pairs.sql, the texts), as
    the stage calls it."""
    from srlm_core.log.eventlog import EventLog
    from srlm_core.steps import pairs

    start = time.perf_counter()
    rows = pairs.select(EventLog(root), iteration, 0.0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "prompts": rows.num_rows, "pairs": rows.column("skip_reason").null_count,
            "result_mib": rows.nbytes / 2**20}


def phase_profile(root: Path, iteration: int = 1) -> dict:
    """EXPLAIN ANALYZE of the statements pairs.select runs (pairs.sql over the recorded candidate scores,
    and the text join for the chosen texts, as for each text column), on a connection set up as it sets
    it up."""
    import pyarrow as pa

    from srlm_core.judges import candidate_scores as scores
    from srlm_core.log.eventlog import EventLog
    from srlm_core.log.events import CandidateGenerated, JudgementRecorded, PromptAdded
    from srlm_core.log.query import iteration_views
    from srlm_core.steps import pairs

    start = time.perf_counter()
    log = EventLog(root)
    con = iteration_views(log, iteration, (PromptAdded, CandidateGenerated, JudgementRecorded))
    scores.add_view(con, log, iteration)
    rows = con.sql(pairs.SQL.read_text(), params={"min_margin": 0.0}).to_arrow_table()
    con.register("selected", rows.append_column("pos", pa.array(range(rows.num_rows), pa.int64())))
    setup_s = time.perf_counter() - start   # includes computing the rows once, unprofiled
    table, id_column, key = pairs.TEXT_COLUMNS["chosen"]
    plans = {}
    for name, sql in (("pairs.sql", pairs.SQL.read_text()),
                      ("chosen texts", pairs.TEXTS_SQL.format(table=table, id=id_column, key=key))):
        con.execute("pragma enable_profiling = 'json'")
        start = time.perf_counter()
        con.execute(f"explain analyze {sql.replace('$min_margin', '0.0')}")
        text = con.fetchall()[0][1]
        plans[name] = {"seconds": time.perf_counter() - start, "operators": top_operators(json.loads(text))}
    return {"setup_s": setup_s, "plans": plans}


def top_operators(profile: dict, limit: int = 6) -> list[dict]:
    """The slowest operators of a DuckDB JSON profile (own time, not including children)."""
    found = []

    def walk(node):
        name = node.get("name") or node.get("operator_name") or node.get("operator_type")
        timing = node.get("timing", node.get("operator_timing"))
        if name and timing is not None:
            found.append({"operator": name.strip(), "seconds": round(timing, 3),
                          "rows": node.get("intermediate_rows", node.get("operator_cardinality"))})
        for child in node.get("children", []):
            walk(child)

    for node in profile.get("operator", []) or [profile]:
        walk(node)
    return sorted(found, key=lambda o: -o["seconds"])[:limit]


PHASES = {"append": phase_append, "generate": phase_generate, "scores": phase_scores, "pairs": phase_pairs,
          "profile": phase_profile}


# ---------------------------------------------------------------- parent

def child(phase: str, workdir: Path, **kwargs) -> tuple[dict, float]:
    """Run one phase in a fresh interpreter; (its result, its peak RSS in MiB)."""
    result = workdir / f"{phase}.{time.monotonic_ns()}.json"
    cmd = [sys.executable, __file__, "--phase", phase, "--phase-args", json.dumps(kwargs), "--phase-result", str(result)]
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed (exit {proc.returncode}): {' '.join(cmd)}")
    return json.loads(result.read_text()), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/eventlog_scale.json")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds), for the smoke test")
    parser.add_argument("--workdir", help="where the event logs go (default: a temporary folder, removed after)")
    parser.add_argument("--only", choices=["pairs"], help="only the pairs part (fixture, pairs.select, profile); "
                        "the result file then has no docs section")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--phase-args", help=argparse.SUPPRESS)
    parser.add_argument("--phase-result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        kwargs = json.loads(args.phase_args)
        kwargs["root"] = Path(kwargs["root"])
        Path(args.phase_result).write_text(json.dumps(PHASES[args.phase](**kwargs)))
        return
    with tempfile.TemporaryDirectory(prefix="srlm-eventlog-scale-", dir=args.workdir) as tmp:
        run(Path(tmp), args)


def run(work: Path, args) -> None:
    size = SIZES["quick" if args.quick else "full"]
    log = lambda msg: print(f"[eventlog_scale] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    if args.only == "pairs":
        return run_pairs_only(work, args, size, log)

    log(f"append: {size['iterations']} iterations x {size['rows_per_iteration']} judgements")
    appended, append_peak = child("append", work, root=str(work / "append"), iterations=size["iterations"],
                                  rows_per_iteration=size["rows_per_iteration"])
    its = appended["iterations"]
    ratio = its[-1]["append_s"] / its[0]["append_s"]
    total_rows = sum(i["rows"] for i in its)

    generated, generate_peak, runs, profile, profile_peak = pairs_part(work, size, log)
    pair_seconds = statistics.median(r[0]["seconds"] for r in runs)
    pair_peak = max(r[1] for r in runs)

    time_met = pair_seconds < PAIRS_TARGET_S
    mem_met = pair_peak < PAIRS_TARGET_MIB
    append_median = statistics.median(i["append_s"] for i in its)
    rows = [
        ["append judgements (1 append per iteration; median of iterations)",
         f"{size['iterations']} x {size['rows_per_iteration']:,}", f"{append_median:.2f}", f"{append_peak:.0f}",
         "iteration t's cost flat", "yes" if ratio < 1.5 else "no"],
        ["build those events (JudgementRecorded.create; median of iterations)",
         f"{size['iterations']} x {size['rows_per_iteration']:,}",
         f"{statistics.median(i['build_s'] for i in its):.2f}", "(same process)", "-", "-"],
        ["generate the pairs fixture (pyarrow, not timed against a target)", f"{generated['judgements']:,}",
         f"{generated['seconds']:.1f}", f"{generate_peak:.0f}", "-", "-"],
        ["the judge stage's candidate scores (candidate_scores.sql; written once, when judging ends)",
         f"{generated['judgements']:,}", f"{generated['scores']['seconds']:.2f}",
         f"{generated['scores']['peak_mib']:.0f}", "-", "-"],
        [f"pair building: pairs.select (median of {size['repeats']} fresh processes)", f"{generated['judgements']:,}",
         f"{pair_seconds:.2f}", f"{pair_peak:.0f}", f"< {PAIRS_TARGET_S:g} s, < {PAIRS_TARGET_MIB} MiB",
         ("yes" if time_met and mem_met else
          f"no: {'time ' + format(pair_seconds / PAIRS_TARGET_S, '.1f') + 'x' if not time_met else ''}"
          f"{', ' if not time_met and not mem_met else ''}"
          f"{'memory ' + format(pair_peak / PAIRS_TARGET_MIB, '.1f') + 'x' if not mem_met else ''}")],
    ]
    per_iter = table(["iteration", "rows", "build s", "append s", "file MiB"],
                     [[i["iteration"], f"{i['rows']:,}", f"{i['build_s']:.2f}", f"{i['append_s']:.2f}",
                       f"{i['file_mib']:.1f}"] for i in its])
    ops = "; ".join(f"{name}: " + ", ".join(f"{o['operator']} {o['seconds']:.2f} s" for o in plan["operators"][:3])
                    for name, plan in profile["plans"].items())
    section = "\n\n".join([
        "## Event log at scale",
        f"{total_rows:,} judgement events appended as {size['iterations']} iterations (one `EventLog.append` per "
        f"iteration, as the judge stage writes it; raw_output ~{TEXT_CHARS['raw_output']} chars), then the pairs "
        f"stage's selection (`pairs.select`: pairs.sql over the candidate scores the judge stage recorded, then "
        f"the texts, in DuckDB) over one iteration of "
        f"{generated['judgements']:,} judgements ({generated['prompts']:,} prompts x {CANDIDATES_PER_PROMPT} "
        f"candidates x {SAMPLES} samples; texts ~{TEXT_CHARS['prompt']}/{TEXT_CHARS['candidate']}/"
        f"{TEXT_CHARS['raw_output']} chars for prompt/candidate/raw_output) written straight into EventLog's "
        f"Parquet layout. Each phase runs in a fresh process; peak MiB is that process's peak RSS.",
        table(["what", "rows", "median s", "peak MiB", "target", "met?"], rows),
        f"Append cost per iteration (last/first: **{ratio:.2f}**; an append reads back only its own partition's "
        f"ids, never earlier iterations):",
        per_iter,
        f"Where the time goes (EXPLAIN ANALYZE, DuckDB's default threads as `pairs.select` runs): setup "
        f"(views, the recorded scores checked against the judgements, pairs.sql once, unprofiled) "
        f"{profile['setup_s']:.2f} s; {ops}.",
        "Commands:\n\n```\npython bench/eventlog_scale.py --out bench/results/eventlog_scale.json\n"
        "python bench/eventlog_scale.py --out /tmp/quick.json --quick   # smoke test (tests/test_bench_eventlog.py)\n```",
    ])
    data = {"quick": args.quick, "sizes": size, "append": {"iterations": its, "peak_mib": append_peak,
                                                          "ratio_last_first": ratio},
            "generate": {**generated, "peak_mib": generate_peak},
            "pairs": {"median_s": pair_seconds, "runs": [{**r[0], "peak_mib": r[1]} for r in runs],
                      "peak_mib": pair_peak, "target_s": PAIRS_TARGET_S, "target_mib": PAIRS_TARGET_MIB,
                      "time_met": time_met, "memory_met": mem_met},
            "profile": {**profile, "peak_mib": profile_peak}}
    write_result(args.out, "eventlog_scale", section, data)
    print(section)


def pairs_part(work: Path, size: dict, log) -> tuple:
    """Generate the pairs fixture, time pairs.select in `repeats` fresh processes, profile it."""
    log(f"generate: {size['pair_judgements']} judgements")
    pairs_root = work / "pairs"
    generated, generate_peak = child("generate", work, root=str(pairs_root), judgements=size["pair_judgements"])
    log("the judge stage's candidate scores")
    scored, scored_peak = child("scores", work, root=str(pairs_root))
    generated = {**generated, "scores": {**scored, "peak_mib": scored_peak}}
    runs = []
    for r in range(size["repeats"]):
        log(f"pairs.select run {r + 1}/{size['repeats']}")
        runs.append(child("pairs", work, root=str(pairs_root)))
    log("profile (EXPLAIN ANALYZE)")
    profile, profile_peak = child("profile", work, root=str(pairs_root))
    return generated, generate_peak, runs, profile, profile_peak


def run_pairs_only(work: Path, args, size: dict, log) -> None:
    """`--only pairs`: the pairs part alone; a plain summary, no docs section (not for docs/benchmarks.md)."""
    generated, generate_peak, runs, profile, profile_peak = pairs_part(work, size, log)
    seconds = [r[0]["seconds"] for r in runs]
    pair_seconds, pair_peak = statistics.median(seconds), max(r[1] for r in runs)
    summary = (f"pairs.select over {generated['judgements']:,} judgements: median {pair_seconds:.2f} s of "
               f"{', '.join(f'{s:.2f}' for s in seconds)}; peak {pair_peak:.0f} MiB (targets < {PAIRS_TARGET_S:g} s, "
               f"< {PAIRS_TARGET_MIB} MiB); generate {generated['seconds']:.1f} s, {generate_peak:.0f} MiB; "
               f"the judge stage's candidate scores {generated['scores']['seconds']:.2f} s, "
               f"{generated['scores']['peak_mib']:.0f} MiB")
    data = {"quick": args.quick, "only": "pairs", "sizes": size, "generate": {**generated, "peak_mib": generate_peak},
            "pairs": {"median_s": pair_seconds, "runs": [{**r[0], "peak_mib": r[1]} for r in runs],
                      "peak_mib": pair_peak, "target_s": PAIRS_TARGET_S, "target_mib": PAIRS_TARGET_MIB,
                      "time_met": pair_seconds < PAIRS_TARGET_S, "memory_met": pair_peak < PAIRS_TARGET_MIB},
            "profile": {**profile, "peak_mib": profile_peak}}
    write_result(args.out, "eventlog_scale", "", data)
    print(summary)
    print(json.dumps(profile, indent=1))


if __name__ == "__main__":
    main()
