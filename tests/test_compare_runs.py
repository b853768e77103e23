"""experiments/compare_runs.py: paired run-B-minus-run-A differences on the same held-out items."""

from __future__ import annotations

import importlib.util
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("compare_runs", REPO / "experiments" / "compare_runs.py")
compare_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_runs)


def write(run, table, rows, model="M2"):
    folder = run / "data" / "events" / table / f"model={model}"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-0.parquet")


TOKENS = (10, 20, 40)   # the replies' lengths, best first


def make_run(run, *, scores, chars, followed, rm_scores, logprobs=(0, 0, 0), model="M2"):
    """Two prompts p0/p1 (one answer each, two judge samples), two instruction prompts with two
    instructions each, one ranked group of three replies (human ranks 0 < 1 < 2) in one tree, which
    the SFT baseline gives log-prob 0 each and `model` `logprobs`; every event by `model`'s weights
    (models/<model>/manifest.json's hash)."""
    weights = f"hash-of-{model}"
    (run / "models" / model).mkdir(parents=True)
    (run / "models" / model / "manifest.json").write_text(json.dumps({"hash": weights}))
    write(run, "answer_scores", [{"prompt_id": p, "answer_id": f"a-{p}", "score": s + d}
                                 for p, s in zip(("p0", "p1"), scores) for d in (-0.5, 0.5)], model)
    write(run, "eval_answers", [{"prompt_id": p, "answer_id": f"a-{p}", "text": "x" * n, "model_hash": weights}
                                for p, n in zip(("p0", "p1"), chars)], model)
    write(run, "instruction_answers", [{"origin_id": o, "followed": f, "checks": json.dumps([{}, {}]),
                                        "model_hash": weights} for o, f in zip(("i0", "i1"), followed)], model)
    write(run, "rm_judgements", [{"group_id": "g", "reply_id": f"r{rank}", "human_rank": rank, "score": s,
                                  "model_hash": weights} for rank, s in enumerate(rm_scores)], model)
    heldout = run / "data" / "processed" / "heldout_ranked.parquet"
    if not heldout.exists():
        heldout.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([{"tree_id": "t", "group_id": "g", "reply_id": f"r{rank}", "rank": rank}
                                             for rank in range(3)]), heldout)
        write(run, "reply_logprobs", [{"reply_id": f"r{rank}", "logprob": 0.0, "tokens": TOKENS[rank],
                                       "model_hash": "hash-of-SFT"} for rank in range(3)], "SFT")
    if model != "SFT":
        write(run, "reply_logprobs", [{"reply_id": f"r{rank}", "logprob": float(lp), "tokens": TOKENS[rank],
                                       "model_hash": weights} for rank, lp in enumerate(logprobs)], model)


def test_a_run_against_itself_differs_by_nothing(tmp_path):
    make_run(tmp_path, scores=(2, 3), chars=(10, 20), followed=(2, 1), rm_scores=(3, 2, 1))
    result = compare_runs.compare(tmp_path, tmp_path, "M2")
    assert {k: v["diff"] for k, v in result.items()} == {
        "score": 0, "chars": 0, "prompt_level": 0, "instruction_level": 0, "rm_accuracy": 0, "implicit_vs_sft": 0,
        "implicit_margin_lc_vs_sft": 0}
    assert result["rm_accuracy"]["a"] == 1.0      # 3 > 2 > 1 agrees with ranks 0 < 1 < 2 on all 3 pairs


def test_differences_are_b_minus_a_item_by_item(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_run(a, scores=(2, 3), chars=(10, 20), followed=(2, 1), rm_scores=(3, 2, 1))
    make_run(b, scores=(3, 3), chars=(14, 20), followed=(2, 2), rm_scores=(1, 2, 3), logprobs=(-1, -2, -3))
    result = compare_runs.compare(a, b, "M2")
    assert result["score"]["diff"] == pytest.approx(0.5)          # judge samples averaged per prompt first
    assert result["chars"]["diff"] == pytest.approx(2.0)
    assert result["prompt_level"]["diff"] == pytest.approx(0.5)   # i1 now follows both of its instructions
    assert result["instruction_level"]["diff"] == pytest.approx(0.25)
    assert (result["rm_accuracy"]["a"], result["rm_accuracy"]["b"]) == (1.0, 0.0)
    assert result["rm_accuracy"]["diff"] == -1.0
    # A's M2 did not move from SFT (every pair a tie, 1/2); B's gained most on the best reply: all 3 pairs
    assert (result["implicit_vs_sft"]["a"], result["implicit_vs_sft"]["b"]) == (0.5, 1.0)
    # B's margins (1, 2, 1 nats) against the token differences (-0.1, -0.3, -0.2 per 100 tokens): least squares
    # slope -5, intercept (the margin at equal length) 4/3 - (-5) x (-0.2) = 1/3
    assert result["implicit_margin_lc_vs_sft"]["b"] == pytest.approx(1 / 3, abs=1e-6)
    assert result["implicit_margin_lc_vs_sft"]["a"] == 0


def test_an_evaluation_older_than_the_model_is_refused(tmp_path):
    """An arm whose evaluation stages have not re-run still holds the baseline's events: refused, naming
    the stages to re-run, instead of comparing as +0.000."""
    make_run(tmp_path, scores=(2, 3), chars=(10, 20), followed=(2, 1), rm_scores=(3, 2, 1))
    (tmp_path / "models" / "M2" / "manifest.json").write_text(json.dumps({"hash": "retrained"}))
    with pytest.raises(SystemExit, match=r"answers@M2, instructions@M2, rm_eval@M2, logprobs@M2 are not those of "
                                         r"models/M2"):
        compare_runs.compare(tmp_path, tmp_path, "M2")
    make_run(tmp_path / "b", scores=(2, 3), chars=(10, 20), followed=(2, 1), rm_scores=(3, 2, 1))
    path = tmp_path / "b" / "data" / "events" / "answer_scores" / "model=M2" / "part-0.parquet"
    rows = pq.read_table(path).to_pylist()
    pq.write_table(pa.Table.from_pylist([{**r, "answer_id": "an older answer"} for r in rows]), path)
    with pytest.raises(SystemExit, match=r"scores@M2 are not"):
        compare_runs.compare(tmp_path / "b", tmp_path / "b", "M2")


def test_a_model_without_events_is_named(tmp_path):
    make_run(tmp_path, scores=(2, 3), chars=(10, 20), followed=(2, 1), rm_scores=(3, 2, 1))
    with pytest.raises(SystemExit, match="M3"):
        compare_runs.compare(tmp_path, tmp_path, "M3")


def test_two_models_of_one_run(tmp_path):
    """`X:Y` compares A's X with B's Y; with one run that is Y minus X on the same items."""
    make_run(tmp_path, scores=(2, 3), chars=(10, 20), followed=(2, 1), rm_scores=(3, 2, 1), model="SFT")
    make_run(tmp_path, scores=(3, 3), chars=(14, 20), followed=(2, 2), rm_scores=(1, 2, 3), logprobs=(1, 2, 3),
             model="M3")
    result = compare_runs.compare(tmp_path, tmp_path, "SFT", "M3")
    assert result["score"]["diff"] == pytest.approx(0.5) and result["rm_accuracy"]["diff"] == -1.0
    assert result["implicit_vs_sft"]["diff"] == -0.5   # SFT against itself ties (1/2); M3 favours the worst


def test_ids_match_across_schema_versions(tmp_path):
    """A run whose ids are 32 bytes (schema version 2) pairs with one whose ids are hex strings (version 1)."""
    ids = {name: bytes([n]) * 32 for n, name in enumerate(("p0", "p1"))}
    a, b = tmp_path / "a", tmp_path / "b"
    make_run(a, scores=(2, 3), chars=(10, 20), followed=(2, 1), rm_scores=(3, 2, 1))
    make_run(b, scores=(3, 3), chars=(14, 20), followed=(2, 2), rm_scores=(1, 2, 3))
    for run, encode in ((a, lambda p: ids[p]), (b, lambda p: ids[p].hex())):
        for table in ("answer_scores", "eval_answers"):   # prompt ids re-encoded; answer ids stay as written
            path = run / "data" / "events" / table / "model=M2" / "part-0.parquet"
            rows = pq.read_table(path).to_pylist()
            pq.write_table(pa.Table.from_pylist([{**r, "prompt_id": encode(r["prompt_id"])} for r in rows]), path)
    result = compare_runs.compare(a, b, "M2")
    assert result["score"]["items"] == 2 and result["score"]["diff"] == pytest.approx(0.5)
