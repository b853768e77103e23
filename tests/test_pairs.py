"""AIFT selection in SQL: best vs worst, ties, too few judged, margins, positive-only, the log."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from srlm_core.judges import candidate_scores
from srlm_core.log.eventlog import EventLog
from srlm_core.log.events import (
    CandidateGenerated,
    CandidateScored,
    JudgementRecorded,
    PairBuilt,
    PairSkipped,
    PromptAdded,
)
from srlm_core.params import parse_params
from srlm_core.steps.pairs import run

JUDGE = "j" * 64


def add_prompt(log: EventLog, name: str, scores: list[list[float | None]], files_per_sample: bool = False,
               texts: list[str] | None = None) -> str:
    """A prompt with one candidate per entry of `scores` (its text from `texts` if given), each judged
    once per listed score; the judgements in one file, or in one file per sample index."""
    prompt = PromptAdded.create(iteration=1, source="generated", text=f"prompt {name}", model_hash="g" * 64,
                                origin_id=name, split=None, stage="prompts", seed=1, sampling=None)
    candidates = [CandidateGenerated.create(prompt_id=prompt.prompt_id, iteration=1, model_hash=JUDGE, sample_index=i,
                                            text=texts[i] if texts else f"{name} answer {i}", num_tokens=3,
                                            finish_reason="stop",
                                            stage="candidates", seed=1, sampling=None)
                  for i in range(len(scores))]
    judgements = [JudgementRecorded.create(candidate_id=c.candidate_id, prompt_id=prompt.prompt_id, iteration=1,
                                           model_hash=JUDGE, sample_index=k, template_hash="t" * 64,
                                           raw_output=f"raw {s}", score=s, method="text", stage="judge", seed=1,
                                           sampling=None)
                  for c, samples in zip(candidates, scores) for k, s in enumerate(samples)]
    log.append([prompt])
    log.append(candidates)
    batches = ([[j for j in judgements if j.sample_index == k] for k in range(max(map(len, scores)))]
               if files_per_sample else [judgements])
    for batch in batches:
        if batch:
            log.append(batch)
    return prompt.prompt_id


@pytest.fixture
def log(tmp_path):
    log = EventLog(tmp_path / "events")
    ids = {
        "clear": add_prompt(log, "clear", [[5, 4, 5], [1, 2, None], [3, 3, 3], [2, 2, 2]]),
        "tie": add_prompt(log, "tie", [[3, 3], [3, 3], [3, None], [3, 3]]),
        "few": add_prompt(log, "few", [[4, 4], [None, None], [None], [None, None]]),
        "close": add_prompt(log, "close", [[3, 3, 4], [3, 3, 3], [3, 3, 3], [3, 3, 3]]),
    }
    candidate_scores.record(log, 1, JUDGE, "judge")   # as the judge stage ends
    return log, ids


def rescore(log: EventLog) -> None:
    """Record the candidate scores again after judgements were added, as a re-run judge stage would."""
    for path in log.files(CandidateScored.TABLE):
        path.unlink()
    candidate_scores.record(log, 1, JUDGE, "judge")


def test_pairs_and_skips(tmp_path, log):
    log, ids = log
    summary = run(parse_params({"pairs": {"min_margin": 0.5}}), iteration=1, events_root=log.root,
                  out_dir=tmp_path / "aift")
    pairs = log.read(PairBuilt, 1).to_pylist()
    assert [p["prompt_id"] for p in pairs] == [ids["clear"]]
    pair = pairs[0]
    assert pair["chosen_score"] == pytest.approx(14 / 3) and pair["rejected_score"] == 1.5   # NULL sample ignored
    assert pair["chosen_spread"] == pytest.approx(0.4714, abs=1e-4) and pair["model_hash"] == JUDGE
    skipped = {s["prompt_id"]: s["reason"] for s in log.read(PairSkipped, 1).to_pylist()}
    assert skipped == {ids["tie"]: "tie", ids["few"]: "too_few_judged", ids["close"]: "below_margin"}
    assert summary["pairs"] == 1 and summary["skipped"] == {"tie": 1, "too_few_judged": 1, "below_margin": 1}
    assert (pair["rule"], pair["tolerance"]) == ("best_vs_worst", None)   # the paper's rule unless asked otherwise
    assert (summary["rule"], summary["tolerance"]) == ("best_vs_worst", None)
    train = pq.read_table(tmp_path / "aift" / "train.parquet").to_pylist()
    assert train[0]["chosen"] == "clear answer 0" and train[0]["rejected"] == "clear answer 1"
    scores = log.read(CandidateScored, 1).to_pylist()
    assert len(scores) == 16 and {s["samples"] for s in scores} >= {1, 2, 3}
    unscored = [s for s in scores if s["valid_samples"] == 0]
    assert len(unscored) == 3 and all(s["score"] is None for s in unscored)


def test_without_margin_a_small_gap_is_a_pair(tmp_path, log):
    log, ids = log
    summary = run(parse_params({}), iteration=1, events_root=log.root, out_dir=tmp_path / "aift")
    assert summary["pairs"] == 2 and summary["skipped"] == {"tie": 1, "too_few_judged": 1}


def test_positive_only_writes_sft_data(tmp_path, log):
    log, ids = log
    summary = run(parse_params({"pairs": {"positive_only": True}}), iteration=1, events_root=log.root,
                  out_dir=tmp_path / "aift")
    train = pq.read_table(tmp_path / "aift" / "train.parquet")
    assert summary["mode"] == "sft" and train.column_names == ["prompt_id", "prompt", "completion", "score"]
    assert "clear answer 0" in train.column("completion").to_pylist()


def test_rerun_is_byte_identical(tmp_path, log):
    log, _ = log
    run(parse_params({}), iteration=1, events_root=log.root, out_dir=tmp_path / "a")
    first = {p.name: p.read_bytes() for p in log.files("pairs")}
    for table in ("pairs", "skipped_pairs"):
        for path in log.files(table):
            path.unlink()
    run(parse_params({}), iteration=1, events_root=log.root, out_dir=tmp_path / "b")
    assert {p.name: p.read_bytes() for p in log.files("pairs")} == first
    assert (tmp_path / "a" / "train.parquet").read_bytes() == (tmp_path / "b" / "train.parquet").read_bytes()


def test_select_is_the_same_for_any_thread_count(tmp_path):
    """One file per prompt and judge sample (a candidate's samples are read by different threads),
    six-decimal scores, ties and unparsed samples:
    one thread and several give identical tables, and each score is the exact mean, rounded once."""
    import random
    from fractions import Fraction

    from srlm_core.log.query import iteration_views
    from srlm_core.steps.pairs import select

    rng = random.Random(7)
    log = EventLog(tmp_path / "events")
    for p in range(40):
        scores = [[None if rng.random() < 0.1 else round(rng.choice([rng.uniform(0, 5), rng.randint(0, 5)]), 6)
                   for _ in range(rng.randint(1, 3))] for _ in range(rng.randint(1, 4))]
        if p % 7 == 0:
            scores = [[3.5, 4.25]] * 3   # a tie
        add_prompt(log, f"p{p}", scores, files_per_sample=True)
    tables = {threads: select(log, 1, 0.1, threads=threads) for threads in (1, 2, 4, None)}
    rows = tables[1]
    assert all(other.equals(rows) for other in tables.values())
    assert rows.num_rows == 40 and rows.column("prompt_id").to_pylist() == sorted(rows.column("prompt_id").to_pylist())
    computed = {}
    for threads in (1, 2, 4, None):
        con = iteration_views(log, 1, (JudgementRecorded,), threads)
        computed[threads] = candidate_scores.compute(con, log, 1)
        con.close()
    assert all(other.equals(computed[1]) for other in computed.values())
    candidate_scores.record(log, 1, JUDGE, "judge")
    scores = log.read(CandidateScored, 1)
    assert all(select(log, 1, 0.1, threads=threads).equals(rows) for threads in (1, 4))   # recorded: the same
    samples: dict[str, list[Fraction]] = {}
    for j in log.read(JudgementRecorded, 1).to_pylist():
        samples.setdefault(j["candidate_id"], []).extend([] if j["score"] is None else [Fraction(str(j["score"]))])
    for s in scores.to_pylist():
        valid = samples[s["candidate_id"]]
        assert s["valid_samples"] == len(valid)
        if valid:
            mean = sum(valid) / len(valid)
            assert s["score"] == float(mean)   # correctly rounded, whatever the summation order
            assert s["spread"] == pytest.approx(float(sum((v - mean) ** 2 for v in valid) / len(valid)) ** 0.5,
                                                rel=1e-12, abs=1e-12)
        else:
            assert s["score"] is None and s["spread"] == 0


def test_a_candidate_judged_under_two_prompt_ids_is_refused(tmp_path, log):
    from srlm_core.errors import SrlmError
    from srlm_core.steps.pairs import select

    log, ids = log
    judgement = log.read(JudgementRecorded, 1).to_pylist()[0]
    log.append([JudgementRecorded.create(**{**judgement, "prompt_id": ids["tie"], "sample_index": 9,
                                            "judgement_id": None})])
    with pytest.raises(SrlmError, match="different prompt_ids"):
        rescore(log)
    with pytest.raises(SrlmError, match="different prompt_ids"):   # a log with no recorded scores
        select(log, 1, 0.0)


def test_a_judged_candidate_missing_from_candidates_is_refused(tmp_path, log):
    from srlm_core.errors import SrlmError
    from srlm_core.steps.pairs import select

    log, ids = log
    judgement = log.read(JudgementRecorded, 1).to_pylist()[0]
    log.append([JudgementRecorded.create(**{**judgement, "candidate_id": "f" * 64, "prompt_id": ids["clear"],
                                            "score": 5.0, "judgement_id": None})])
    rescore(log)
    with pytest.raises(SrlmError, match="is not in"):
        select(log, 1, 0.0)


def test_scores_recorded_before_further_judgements_are_refused(tmp_path, log):
    """Judgements added after the judge stage recorded the scores leave them stale: refused, not used."""
    from srlm_core.errors import SrlmError
    from srlm_core.steps.pairs import select

    log, ids = log
    judgement = log.read(JudgementRecorded, 1).to_pylist()[0]
    log.append([JudgementRecorded.create(**{**judgement, "sample_index": 9, "score": 0.0, "judgement_id": None})])
    with pytest.raises(SrlmError, match="cover 39 judgements, but .* holds 40; re-run the judge stage"):
        select(log, 1, 0.0)
    rescore(log)
    assert select(log, 1, 0.0).num_rows == 4


def sft_data(tmp_path, log, **pairs) -> tuple[dict, dict[str, float]]:
    """Run the pairs stage with positive_only (the log's pair events of an earlier run removed first)."""
    for table in ("pairs", "skipped_pairs"):
        for path in log.files(table):
            path.unlink()
    summary = run(parse_params({"pairs": {"positive_only": True, **pairs}}), iteration=1, events_root=log.root,
                  out_dir=tmp_path / "aift")
    train = pq.read_table(tmp_path / "aift" / "train.parquet").to_pylist()
    return summary, {r["prompt_id"]: r["score"] for r in train}


def test_positive_only_keeps_the_chosen_side_of_each_pair(tmp_path, log):
    log, ids = log
    summary, kept = sft_data(tmp_path, log)
    assert kept == {ids["clear"]: pytest.approx(14 / 3), ids["close"]: pytest.approx(10 / 3)}   # not tie, not few
    assert summary["examples"] == 2 and summary["positive_min_score"] is None


def test_positive_min_score_keeps_top_responses_scoring_at_least_it(tmp_path, log):
    """The paper's rule (5: perfect scores only) keeps a top response whatever the prompt's other
    candidates scored: a prompt whose candidates all scored 5 gives no pair, but its 5 is kept."""
    log, ids = log
    ids["perfect"] = add_prompt(log, "perfect", [[5, 5], [5, 5]])
    rescore(log)
    _, kept = sft_data(tmp_path / "5", log, positive_min_score=5)
    assert kept == {ids["perfect"]: 5.0}
    _, kept = sft_data(tmp_path / "4", log, positive_min_score=4)
    assert kept == {ids["perfect"]: 5.0, ids["clear"]: pytest.approx(14 / 3), ids["few"]: 4.0}
    train = pq.read_table(tmp_path / "4" / "aift" / "train.parquet").to_pylist()
    completions = {r["completion"] for r in train}
    assert {"clear answer 0", "few answer 0"} < completions   # each prompt's top response (ties: by id)
    assert len(completions - {"clear answer 0", "few answer 0"} - {"perfect answer 0", "perfect answer 1"}) == 0


def test_positive_min_score_needs_positive_only():
    from srlm_core.errors import SrlmError

    with pytest.raises(SrlmError, match="positive_min_score applies only with pairs.positive_only"):
        parse_params({"pairs": {"positive_min_score": 5}})
    with pytest.raises(SrlmError, match="not true/false"):
        parse_params({"pairs": {"positive_only": True, "positive_min_score": True}})


def test_an_older_version_log_builds_the_same_pairs(tmp_path, log):
    """pairs.select over files of older schema versions (hex-string ids; judgements of version 1,
    without the guard columns; no candidate scores recorded, so they are computed from the judgements)
    picks the same, byte for byte, as over the same events written now."""
    log, _ = log
    old = EventLog(tmp_path / "old")
    for kind in (PromptAdded, CandidateGenerated, JudgementRecorded):
        for path in log.files(kind.TABLE):
            table = log.read(kind, 1).select(kind.schema_at(1).names).cast(kind.schema_at(1))
            folder = old.partition(kind.TABLE, 1)
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, folder / f"part-{path.stem[5:]}.parquet")
            break
    params = parse_params({"pairs": {"min_margin": 0.5}})
    new_summary = run(params, iteration=1, events_root=log.root, out_dir=tmp_path / "new_out")
    old_summary = run(params, iteration=1, events_root=old.root, out_dir=tmp_path / "old_out")
    assert new_summary == old_summary
    for name in ("train.parquet",):
        assert (tmp_path / "new_out" / name).read_bytes() == (tmp_path / "old_out" / name).read_bytes()
    assert log.read(PairBuilt).equals(old.read(PairBuilt))


@pytest.mark.parametrize("value, problem", [(-0.1, "greater than or equal to 0"), (5.5, "less than or equal to 5"),
                                            (True, "not true/false"), (float("nan"), "finite number")])
def test_length_tolerance_is_checked_at_load(value, problem):
    from srlm_core.errors import SrlmError

    with pytest.raises(SrlmError, match=rf"pairs\.length_control\.tolerance: .*{problem}"):
        parse_params({"pairs": {"length_control": {"enabled": True, "tolerance": value}}})
    assert parse_params({"pairs": {"length_control": {"tolerance": 0}}}).pairs.length_control.tolerance == 0


# Length control. One candidate per (score, characters); the text is a letter repeated, unique per candidate.
LENGTHS = {"best_long": (5.0, 40), "near_best_short": (4.5, 10), "far_best_shortest": (4.0, 5),
           "worst_short": (1.0, 8), "near_worst_long": (1.5, 50), "far_worst_longest": (2.0, 60)}


def add_lengths(log: EventLog, name: str, candidates: dict[str, tuple[float, int]]) -> dict[str, str]:
    """A prompt whose candidates have the given (score, length); {text: candidate label}."""
    texts = {chr(ord("a") + i) * chars: label for i, (label, (_, chars)) in enumerate(candidates.items())}
    add_prompt(log, name, [[score] for score, _ in candidates.values()], texts=list(texts))
    return texts


def length_pairs(tmp_path, log: EventLog, labels: dict[str, str], **pairs) -> tuple[dict, list[dict], dict]:
    """Run the pairs stage (pair events of an earlier run removed first): the summary, the pair events
    and {prompt text: (chosen label, rejected label)} from the training data."""
    for table in ("pairs", "skipped_pairs"):
        for path in log.files(table):
            path.unlink()
    out = tmp_path / f"aift{len(list(tmp_path.glob('aift*')))}"
    summary = run(parse_params({"pairs": pairs}), iteration=1, events_root=log.root, out_dir=out)
    train = pq.read_table(out / "train.parquet").to_pylist()
    return summary, log.read(PairBuilt, 1).to_pylist(), {r["prompt"]: (labels[r["chosen"]], labels[r["rejected"]])
                                                          for r in train}


@pytest.fixture
def lengths_log(tmp_path):
    log = EventLog(tmp_path / "events")
    return log, add_lengths(log, "lc", LENGTHS)


def test_length_control_picks_the_shortest_near_best_and_the_longest_near_worst(tmp_path, lengths_log):
    log, labels = lengths_log
    on = {"min_margin": 0.0, "length_control": {"enabled": True, "tolerance": 0.5}}
    summary, pairs, picked = length_pairs(tmp_path, log, labels, **on)
    assert picked == {"prompt lc": ("near_best_short", "near_worst_long")}
    assert [(p["rule"], p["tolerance"], p["chosen_score"], p["rejected_score"]) for p in pairs] == \
        [("length_controlled", 0.5, 4.5, 1.5)]
    assert (summary["rule"], summary["tolerance"], summary["pairs"]) == ("length_controlled", 0.5, 1)
    # off: the paper's best vs worst, whatever the lengths
    summary, pairs, picked = length_pairs(tmp_path, log, labels, min_margin=0.0)
    assert picked == {"prompt lc": ("best_long", "worst_short")} and pairs[0]["rule"] == "best_vs_worst"


@pytest.mark.parametrize("tolerance, chosen, rejected", [
    (0, "best_long", "worst_short"),                  # nothing else is near: the best and the worst
    (0.49, "best_long", "worst_short"),
    (0.5, "near_best_short", "near_worst_long"),      # the bands are closed: a score exactly 0.5 off is near
    (1.0, "far_best_shortest", "far_worst_longest"),
])
def test_the_tolerance_sets_how_far_from_the_best_and_worst_length_may_pick(tmp_path, lengths_log, tolerance,
                                                                            chosen, rejected):
    log, labels = lengths_log
    _, pairs, picked = length_pairs(tmp_path, log, labels, min_margin=0.0,
                                    length_control={"enabled": True, "tolerance": tolerance})
    assert picked == {"prompt lc": (chosen, rejected)}
    assert [(p["rule"], p["tolerance"]) for p in pairs] == [("length_controlled", tolerance)]


def test_length_control_still_needs_the_margin(tmp_path, lengths_log):
    """At tolerance 1 the picks are 4.0 vs 2.0: a margin of 2.5 skips the prompt (best vs worst, 5 vs 1, passes)."""
    log, labels = lengths_log
    summary, pairs, _ = length_pairs(tmp_path, log, labels, min_margin=2.5,
                                     length_control={"enabled": True, "tolerance": 1.0})
    assert pairs == [] and summary["skipped"] == {"below_margin": 1}
    skip = log.read(PairSkipped, 1).to_pylist()[0]
    assert (skip["reason"], skip["top_score"], skip["bottom_score"]) == ("below_margin", 4.0, 2.0)   # the picks'
    assert length_pairs(tmp_path, log, labels, min_margin=2.5)[0]["pairs"] == 1


@pytest.mark.parametrize("candidates", [
    # the shortest near-best scores below the longest near-worst
    {"top_long": (3.0, 30), "mid_short": (2.5, 3), "low_mid": (2.0, 20)},
    # one candidate is both the shortest near-best and the longest near-worst (at tolerance 0.2, which
    # 3.0 - 2.8 is only once float error is rounded off)
    {"top_long": (3.0, 30), "mid": (2.8, 20), "low_short": (2.6, 10)},
], ids=["crossed", "same"])
def test_overlapping_bands_give_no_pair(tmp_path, candidates):
    log = EventLog(tmp_path / "events")
    labels = add_lengths(log, "overlap", candidates)
    tolerance = 1.0 if "mid_short" in candidates else 0.2
    summary, pairs, _ = length_pairs(tmp_path, log, labels, min_margin=0.0,
                                     length_control={"enabled": True, "tolerance": tolerance})
    assert pairs == [] and summary["skipped"] == {"bands_overlap": 1}


def test_length_ties_are_broken_by_score_then_id(tmp_path):
    """Equally short near-best candidates: the higher-scored, then the smaller id; equally long
    near-worst ones: the lower-scored, then the larger id. The same for any thread count."""
    from srlm_core.steps.pairs import select

    log = EventLog(tmp_path / "events")
    prompt_id = add_prompt(log, "ties", [[4.0], [4.0], [4.2], [4.5], [1.0], [1.0], [1.2]],
                           texts=["aaaaa", "bbbbb", "ccccc", "d" * 9, "eeeee", "fffff", "ggggg"])
    by_text = {c["text"]: c["candidate_id"] for c in log.read(CandidateGenerated, 1).to_pylist()}
    tables = {threads: select(log, 1, 0.0, threads=threads, tolerance=0.5) for threads in (1, 2, 4)}
    rows = tables[1]
    assert all(other.equals(rows) for other in tables.values())
    row = rows.to_pylist()[0]
    assert row["prompt_id"] == prompt_id and row["chosen"] == "ccccc"   # 5 chars: 4.2 beats the two 4.0s
    assert row["rejected_id"] == max(by_text["eeeee"], by_text["fffff"])   # 5 chars: the two 1.0s, larger id
    ties = select(log, 1, 0.0, tolerance=0.0).to_pylist()[0]   # only the 4.5 is at the best
    assert (ties["chosen"], ties["rejected_id"]) == ("d" * 9, max(by_text["eeeee"], by_text["fffff"]))


def test_equal_lengths_and_tolerance_0_pick_as_best_vs_worst(tmp_path, log):
    """Every text of the fixture is 14 characters: at tolerance 0 length control picks the paper's pairs
    (ties at the best by the smaller id, at the worst by the larger), only the recorded rule differs."""
    log, _ = log
    off = run(parse_params({}), iteration=1, events_root=log.root, out_dir=tmp_path / "off")
    off_pairs = log.read(PairBuilt, 1).drop_columns(["pair_id", "rule", "tolerance"])
    for table in ("pairs", "skipped_pairs"):
        for path in log.files(table):
            path.unlink()
    on = run(parse_params({"pairs": {"length_control": {"enabled": True, "tolerance": 0}}}), iteration=1,
             events_root=log.root, out_dir=tmp_path / "on")
    assert log.read(PairBuilt, 1).drop_columns(["pair_id", "rule", "tolerance"]).equals(off_pairs)
    assert set(log.read(PairBuilt, 1).column("rule").to_pylist()) == {"length_controlled"}
    assert {k: v for k, v in on.items() if k not in ("rule", "tolerance")} == \
        {k: v for k, v in off.items() if k not in ("rule", "tolerance")}


def test_length_control_rerun_is_byte_identical(tmp_path, lengths_log):
    log, labels = lengths_log
    on = {"min_margin": 0.0, "length_control": {"enabled": True, "tolerance": 0.5}}
    length_pairs(tmp_path, log, labels, **on)
    first = {p.name: p.read_bytes() for p in log.files("pairs")}
    length_pairs(tmp_path, log, labels, **on)
    assert {p.name: p.read_bytes() for p in log.files("pairs")} == first and first
    assert (tmp_path / "aift0" / "train.parquet").read_bytes() == (tmp_path / "aift1" / "train.parquet").read_bytes()


def test_positive_only_with_length_control_keeps_the_shortest_near_best(tmp_path, lengths_log):
    log, labels = lengths_log
    run(parse_params({"pairs": {"positive_only": True, "min_margin": 0.0,
                                "length_control": {"enabled": True, "tolerance": 1.0}}}),
        iteration=1, events_root=log.root, out_dir=tmp_path / "sft")
    train = pq.read_table(tmp_path / "sft" / "train.parquet").to_pylist()
    assert [(labels[r["completion"]], r["score"]) for r in train] == [("far_best_shortest", 4.0)]


def test_length_control_refuses_a_judged_candidate_missing_from_candidates(tmp_path, log):
    from srlm_core.errors import SrlmError
    from srlm_core.steps.pairs import select

    log, ids = log
    judgement = log.read(JudgementRecorded, 1).to_pylist()[0]
    log.append([JudgementRecorded.create(**{**judgement, "candidate_id": "f" * 64, "prompt_id": ids["clear"],
                                            "score": 1.0, "judgement_id": None})])
    rescore(log)
    with pytest.raises(SrlmError, match="is not in"):
        select(log, 1, 0.0, tolerance=0.5)


@pytest.mark.parametrize("length_control", [False, True])
def test_a_gap_exactly_at_the_margin_is_kept_at_any_score_level(tmp_path, length_control):
    """Means of three judge samples are not exact in doubles: 13/3 - 10/3 is 0.9999999999999996 and 14/3 - 11/3
    is 1.0000000000000004. Both gaps are one point, so with min_margin 1 both prompts give a pair."""
    log = EventLog(tmp_path / "events")
    ids = [add_prompt(log, "low", [[5, 4, 4], [4, 3, 3], [4, 4, 4]]),
           add_prompt(log, "high", [[5, 5, 4], [4, 4, 3], [4, 4, 4]])]
    candidate_scores.record(log, 1, JUDGE, "judge")
    pairs = {"min_margin": 1.0, "length_control": {"enabled": length_control, "tolerance": 0.0}}
    summary = run(parse_params({"pairs": pairs}), iteration=1, events_root=log.root, out_dir=tmp_path / "aift")
    assert summary["pairs"] == 2 and sorted(p["prompt_id"] for p in log.read(PairBuilt, 1).to_pylist()) == sorted(ids)
