"""The meta-judge (Meta-Rewarding): its template, verdicts in both orders, position debiasing, the
best-vs-worst judge pairs and their skip reasons, the event tables and views, and DPO's mix of actor
and judge pairs."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from srlm_core.errors import SrlmError
from srlm_core.judges.judge import Template
from srlm_core.judges.meta import STOP, MetaTemplate, rubric, verdict_tail
from srlm_core.judges.meta_pairs import distinct, draw, orders, pick, spread, win_rates
from srlm_core.log.eventlog import EventLog
from srlm_core.log.events import (
    CandidateGenerated,
    JudgementRecorded,
    JudgePairBuilt,
    JudgePairSkipped,
    MetaJudgementRecorded,
    PromptAdded,
)
from srlm_core.log.lineage import read_manifest
from srlm_core.params import parse_params
from srlm_core.steps import meta

JUDGE_TEMPLATE = "srlm_core/templates/judge_additive_v2.txt"
META_TEMPLATE = "srlm_core/templates/meta_judge_v1.txt"


def test_template_renders_every_field():
    template = MetaTemplate.load(META_TEMPLATE)
    the_rubric = rubric(Template.load(JUDGE_TEMPLATE).text)
    assert the_rubric.startswith("Review the user's question") and the_rubric.endswith("insightful answer.")
    assert "{prompt}" not in the_rubric and "User:" not in the_rubric
    text = template.fill(the_rubric, "QUESTION", "RESPONSE", "JUDGEMENT-ONE", "JUDGEMENT-TWO")
    for value in (the_rubric, "QUESTION", "RESPONSE", "JUDGEMENT-ONE", "JUDGEMENT-TWO"):
        assert text.count(value) == 1
    assert "{" not in text and text.index("JUDGEMENT-ONE") < text.index("JUDGEMENT-TWO")
    assert text.rstrip().endswith('"Better judgement: A" or "Better judgement: B".')


def test_a_template_without_a_placeholder_is_refused(tmp_path):
    bad = tmp_path / "meta.txt"
    bad.write_text("{rubric} {prompt} {response} {judgement_a}")
    with pytest.raises(SrlmError, match=r"\{judgement_b\} placeholder exactly once \(it holds it 0 times\)"):
        MetaTemplate.load(str(bad))


def test_the_verdict_is_forced_when_the_reason_lacks_it():
    assert verdict_tail("A follows the rubric. Better judgement:") == ""
    assert verdict_tail("A follows the rubric.") == f"\n{STOP}"


def test_verdicts_are_the_next_token_probabilities_of_a_and_b(tiny32):
    """The shared-prefix fast path gives P(A) as a plain forward pass over the whole prompt, the reason
    (the greedy tokens, as generated: re-encoding their text may merge newlines) and the forced
    `Better judgement:` does; and prefix + suffix tokenizes as the whole prompt."""
    import torch

    from srlm_core.engine.backend import Sampling
    from srlm_core.engine.transformers_backend import TransformersGenerator
    from srlm_core.judges.meta import Comparison, MetaJudge

    model, tokenizer, model_hash = tiny32
    gen = TransformersGenerator(model, tokenizer, model_hash)
    judge = MetaJudge(gen, MetaTemplate.load(META_TEMPLATE), rubric(Template.load(JUDGE_TEMPLATE).text),
                      Sampling(0.0, 1.0, 5))
    items = [Comparison("How do I boil an egg?", "Eight minutes.", "Useful.\nScore: 4", "Vague.\nScore: 1"),
             Comparison("What is 2+2?", "4", "Vague.\nScore: 1", "Useful.\nScore: 4")]
    encode = lambda text: tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
    verdicts = judge.compare(items, seed=0, batch_size=2)
    for item, verdict in zip(items, verdicts):
        prompt = encode(judge.prompt_text(item))
        assert prompt == judge.prefix_ids + judge.suffix_ids(item)
        with torch.inference_mode():
            reason = model.generate(torch.tensor([prompt]), max_new_tokens=5, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)[0, len(prompt):].tolist()
        assert tokenizer.decode(reason, skip_special_tokens=True) == verdict.raw_output
        forced = prompt + reason + encode(verdict_tail(verdict.raw_output))
        (p_a, _), = gen.choice_probs([forced], judge.verdicts)
        assert verdict.p_first == pytest.approx(p_a, abs=1e-4)


def judgement(candidate: str, index: int, raw: str, score: float | None) -> dict:
    return {"judgement_id": f"{candidate}-{index}", "sample_index": index, "raw_output": raw, "score": score}


def test_distinct_judgements_drop_repeats_and_unscored():
    rows = [judgement("c", 2, "Fine.", 2.8), judgement("c", 0, "Fine.", 3.2),
            judgement("c", 1, "Unclear.", None), judgement("c", 3, "Weak.", 1.4)]
    shown = distinct(rows)
    # "Fine." closed by its rounded score is the same text as sample 2's: one judgement, the earlier sample
    assert [(s.judgement_id, s.text, s.points) for s in shown] == [("c-0", "Fine.\nScore: 3", 3),
                                                                    ("c-3", "Weak.\nScore: 1", 1)]


def test_draw_takes_the_most_uncertain_first_or_a_seeded_shuffle():
    eligible = {"a": spread([1, 1, 2]), "b": spread([0, 5, 5]), "c": spread([3, 3, None]), "d": spread([2, 4, 3])}
    assert draw(eligible, 3, "spread", seed=1) == ["b", "d", "a"]
    shuffled = draw(eligible, 4, "random", seed=1)
    assert sorted(shuffled) == ["a", "b", "c", "d"] and draw(eligible, 4, "random", seed=1) == shuffled
    assert {tuple(draw(eligible, 4, "random", seed=s)) for s in range(6)} != {tuple(shuffled)}
    assert draw(dict(reversed(list(eligible.items()))), 4, "random", seed=1) == shuffled   # read order is irrelevant


def test_every_pair_is_played_in_both_orders():
    assert orders(3) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]


def test_a_meta_judge_that_always_prefers_position_a_gives_a_tie():
    for bias in (1.0, 0.83, 0.61):
        rates = win_rates(3, {o: bias for o in orders(3)})
        assert rates == [0.5, 0.5, 0.5]
        assert pick(rates, 0.0)[2] == "tie"


def test_best_vs_worst_and_the_skip_reasons():
    # judgement 1 beats both others in either position; 0 and 2 each win only when shown first (even)
    p = {(0, 1): 0.2, (1, 0): 0.9, (0, 2): 0.7, (2, 0): 0.7, (1, 2): 0.8, (2, 1): 0.3}
    rates = win_rates(3, p)
    assert rates == [0.325, 0.8, 0.375]
    assert pick(rates, 0.0) == (1, 0, None)
    assert pick(rates, 0.5) == (1, 0, "below_margin")
    assert pick([0.6, 0.4, 0.6, 0.4], 0.0) == (0, 3, None)   # ties broken: earliest best, latest worst


# The stage on the tiny model: a log of iteration 1 judged by it.

CANDIDATE_JUDGEMENTS = {
    "spread": [("Relevant but thin.", 2.0), ("Complete and clear.", 4.6), ("Off topic.", 0.4)],
    "narrow": [("Relevant.", 3.0), ("Relevant and clear.", 3.4), ("Relevant.", 3.0)],
    "same": [("Good.", 4.0), ("Good.", 4.0), ("Good.", 4.0)],   # one distinct judgement: nothing to compare
}


@pytest.fixture
def log(tmp_path, tiny_srlm_model):
    model_hash, template_hash = read_manifest(tiny_srlm_model)["hash"], Template.load(JUDGE_TEMPLATE).hash
    log = EventLog(tmp_path / "events")
    prompt = PromptAdded.create(iteration=1, source="generated", text="How do I boil an egg?", model_hash=None,
                                origin_id="p", split=None, stage="prompts", seed=1, sampling=None)
    log.append([prompt])
    candidates, judgements = [], []
    for i, (name, samples) in enumerate(CANDIDATE_JUDGEMENTS.items()):
        c = CandidateGenerated.create(prompt_id=prompt.prompt_id, iteration=1, model_hash=model_hash, sample_index=i,
                                      text=f"Answer {name}: eight minutes in boiling water.", num_tokens=8,
                                      finish_reason="stop", stage="candidates", seed=1, sampling=None)
        candidates.append(c)
        judgements += [JudgementRecorded.create(candidate_id=c.candidate_id, prompt_id=prompt.prompt_id, iteration=1,
                                                model_hash=model_hash, sample_index=k, template_hash=template_hash,
                                                raw_output=raw, score=score, method="probability", stage="judge",
                                                seed=1, sampling=None)
                       for k, (raw, score) in enumerate(samples)]
    log.append(candidates)
    log.append(judgements)
    return log, {c.text.split(":")[0].removeprefix("Answer "): c.candidate_id for c in candidates}


def params(**meta_cfg):
    return parse_params({"meta": {"enabled": True, "max_new_tokens": 4, "batch_size": 6, **meta_cfg}})


def test_disabled_does_no_work(tmp_path):
    events = EventLog(tmp_path / "events")
    summary = meta.run(parse_params({}), iteration=1, model_dir=tmp_path / "no-model", events_root=events.root,
                       out_dir=tmp_path / "meta")
    assert summary["enabled"] is False and summary["judge_pairs"] == 0
    assert pq.read_table(tmp_path / "meta" / "train.parquet").num_rows == 0
    for kind in (MetaJudgementRecorded, JudgePairBuilt, JudgePairSkipped):
        assert events.partition(kind.TABLE, 1).is_dir() and events.read(kind, 1).num_rows == 0


def test_every_comparison_has_a_verdict_in_both_orders(tmp_path, log, tiny_srlm_model):
    log, ids = log
    summary = meta.run(params(), iteration=1, model_dir=tiny_srlm_model, events_root=log.root,
                       out_dir=tmp_path / "meta")
    assert (summary["candidates"], summary["eligible"], summary["drawn"]) == (3, 2, 2)
    assert summary["comparisons"] == 6 + 2   # 3 judgements: 6 orders; 2 distinct ("Relevant." twice): 2
    rows = log.read(MetaJudgementRecorded, 1).to_pylist()
    assert len(rows) == 8 and {r["candidate_id"] for r in rows} == {ids["spread"], ids["narrow"]}
    assert all(0.0 <= r["p_first"] <= 1.0 for r in rows)
    shown = {(r["first_judgement_id"], r["second_judgement_id"]) for r in rows}
    assert all((b, a) in shown for a, b in shown)   # both orders of every pair
    pairs, skipped = log.read(JudgePairBuilt, 1).to_pylist(), log.read(JudgePairSkipped, 1).to_pylist()
    assert len(pairs) + len(skipped) == 2 == summary["judge_pairs"] + sum(summary["skipped"].values())
    train = pq.read_table(tmp_path / "meta" / "train.parquet")
    assert train.num_rows == len(pairs)
    for pair in pairs:
        assert pair["chosen_win_rate"] > pair["rejected_win_rate"]
        assert pair["prompt"].startswith("Review the user's question") and "How do I boil an egg?" in pair["prompt"]
        assert pair["chosen"].endswith(f"Score: {pair['chosen_points']}")
    assert json.loads((tmp_path / "meta" / "summary.json").read_text())["judge_pairs"] == len(pairs)


def test_a_position_biased_meta_judge_gives_no_pair(tmp_path, log, tiny_srlm_model, monkeypatch):
    """The model always answers A whichever judgement is shown first: every pair ties, none is built."""
    from srlm_core.judges import meta as meta_judge

    monkeypatch.setattr(meta_judge.MetaJudge, "_batch",
                        lambda self, suffixes, seed: [meta_judge.Verdict("A.", 0.9) for _ in suffixes])
    log, _ = log
    summary = meta.run(params(), iteration=1, model_dir=tiny_srlm_model, events_root=log.root,
                       out_dir=tmp_path / "meta")
    assert summary["first_position_rate"] == 1.0
    assert summary["judge_pairs"] == 0 and summary["skipped"] == {"tie": 2}
    assert log.read(JudgePairBuilt, 1).num_rows == 0


def test_the_events_read_in_sql_and_diff(tmp_path, log, tiny_srlm_model):
    from srlm_core.log.query import run_query
    from srlm_core.reporting.diff import diff

    log, _ = log
    meta.run(params(), iteration=1, model_dir=tiny_srlm_model, events_root=log.root, out_dir=tmp_path / "meta")
    result = run_query("select count(*), count(distinct candidate_id), min(length(meta_judgement_id)) "
                       "from meta_judgements", log.root)
    assert result.rows == [(8, 2, 64)]
    result = run_query("select (select count(*) from judge_pairs) + (select count(*) from skipped_judge_pairs)",
                       log.root)
    assert result.rows == [(2,)]
    same = diff("meta_judgements@1", "meta_judgements@1", log.root)
    assert same["a"]["rows"] == 8 and same["overlap"]["key"] == "prompt text" and "p_first" in same["scores"]
    pairs = diff("judge_pairs@1", "judge_pairs@1", log.root)
    assert pairs["overlap"]["key"] == "prompt text" and {"chosen", "rejected"} <= pairs["lengths"].keys()


def test_a_judgement_by_another_model_is_refused(tmp_path, tiny_srlm_model):
    log = EventLog(tmp_path / "events")
    log.append([JudgementRecorded.create(candidate_id="c" * 64, prompt_id="d" * 64, iteration=1, model_hash="e" * 64,
                                         sample_index=0, template_hash=Template.load(JUDGE_TEMPLATE).hash,
                                         raw_output="Fine.", score=3.0, method="probability", stage="judge", seed=1,
                                         sampling=None)])
    with pytest.raises(SrlmError, match="not all made with the model"):
        meta.run(params(), iteration=1, model_dir=tiny_srlm_model, events_root=log.root, out_dir=tmp_path / "meta")


def test_meta_and_positive_only_do_not_mix():
    with pytest.raises(SrlmError, match="meta.enabled trains on judge pairs"):
        parse_params({"meta": {"enabled": True}, "pairs": {"positive_only": True}})


# DPO for M(t+1): actor pairs and judge pairs together.

def pair_table(name: str, n: int, prompt: str = "q") -> pa.Table:
    return pa.table({"prompt": [f"{prompt}{i}" for i in range(n)], "chosen": [f"{name} good {i}" for i in range(n)],
                     "rejected": [f"{name} bad {i}" for i in range(n)]})


@pytest.mark.parametrize("ratio, used", [(1.0, 3), (0.5, 2), (0.25, 1), (0.0, 0), (None, 3)])
def test_the_mix_follows_judge_pair_ratio(ratio, used):
    from srlm_core.steps.dpo import mixed

    rows, count = mixed(pair_table("actor", 4), pair_table("judge", 3), ratio)
    assert count == used and rows.num_rows == 4 + used
    assert rows.column("chosen").to_pylist() == [f"actor good {i}" for i in range(4)] + [
        f"judge good {i}" for i in range(used)]


def test_judge_pairs_that_do_not_fit_are_left_out(tiny_srlm_model):
    from transformers import AutoTokenizer

    from srlm_core.steps.dpo import fitting

    pairs = pa.concat_tables([pair_table("short", 2), pair_table("long", 1, prompt="word " * 80)])
    kept, too_long = fitting(pairs, AutoTokenizer.from_pretrained(tiny_srlm_model), 64)
    assert too_long == 1 and kept.column("chosen").to_pylist() == ["short good 0", "short good 1"]


def judge_pairs_dir(tmp_path, n: int):
    folder = tmp_path / "meta"
    folder.mkdir()
    pq.write_table(pair_table("judge", n), folder / "train.parquet")
    return folder


@pytest.mark.parametrize("ratio, judge_pairs", [(0.5, 1), (None, 3)])
def test_dpo_trains_on_both_kinds_and_counts_them(tmp_path, tiny_srlm_model, ratio, judge_pairs):
    from srlm_core.steps import dpo
    from srlm_core.storage import write_json

    aift = tmp_path / "aift"
    aift.mkdir()
    pq.write_table(pair_table("actor", 2), aift / "train.parquet")
    write_json({"mode": "dpo", "skipped": {}, "judge_model": "j"}, aift / "summary.json")
    cfg = {"meta": {"enabled": True, "judge_pair_ratio": ratio},
           "dpo": {"max_steps": 1, "batch_size": 2, "grad_accum": 1, "max_length": 64}}
    manifest = dpo.run(parse_params(cfg), prev_dir=tiny_srlm_model, aift_dir=aift, out_dir=tmp_path / "M2",
                       metrics_dir=tmp_path / "metrics", judge_pairs_dir=judge_pairs_dir(tmp_path, 3))
    metrics = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert (metrics["actor_pairs"], metrics["judge_pairs"], metrics["examples"]) == (2, judge_pairs, 2 + judge_pairs)
    data = manifest["training_data"]
    assert data["name"] == "AIFT(M1) + judge pairs(M1)" and len(data["files"]) == 2
    assert data["judge_pairs"] == judge_pairs and manifest["params"]["meta"]["judge_pair_ratio"] == ratio


def test_dpo_refuses_judge_pairs_none_of_which_fits(tmp_path, tiny_srlm_model):
    from srlm_core.steps import dpo
    from srlm_core.storage import write_json

    aift = tmp_path / "aift"
    aift.mkdir()
    pq.write_table(pair_table("actor", 2), aift / "train.parquet")
    write_json({"mode": "dpo", "skipped": {}, "judge_model": "j"}, aift / "summary.json")
    folder = tmp_path / "meta"
    folder.mkdir()
    pq.write_table(pair_table("judge", 2, prompt="word " * 80), folder / "train.parquet")
    with pytest.raises(SrlmError, match="none of the 2 judge pairs fits in dpo.max_length 64"):
        dpo.run(parse_params({"meta": {"enabled": True}, "dpo": {"max_length": 64}}), prev_dir=tiny_srlm_model,
                aift_dir=aift, out_dir=tmp_path / "M2", metrics_dir=tmp_path / "metrics", judge_pairs_dir=folder)
