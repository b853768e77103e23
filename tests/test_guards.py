"""The guards@ step: each guard trips and passes on constructed judgements, answers and RM metrics; each
threshold moves the verdict; warn records and succeeds, fail records (events, metrics) and then stops
the stage with exit status 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from srlm_core.errors import SrlmError
from srlm_core.hashing import row_id
from srlm_core.judges import candidate_scores
from srlm_core.log.eventlog import EventLog
from srlm_core.log.events import EvalAnswerGenerated, GuardChecked, JudgementRecorded
from srlm_core.log.query import run_query
from srlm_core.params import parse_params
from srlm_core.steps import guards

HEALTHY = [1.0, 2.0, 3.0, 4.0]                 # spread out, none at the top
COLLAPSED = [4.6, 4.8, 5.0, 5.0]               # all at the top, sd 0.17
M2_HASH = "2" * 64


def judged(log: EventLog, iteration: int, scores: list[list[float | None]]) -> None:
    """One candidate per entry of `scores` (two per prompt), judged once per listed sample."""
    log.append([JudgementRecorded.create(candidate_id=row_id("c", iteration, c), prompt_id=row_id("p", c // 2),
                                         iteration=iteration, model_hash="1" * 64, sample_index=k,
                                         template_hash="t" * 64, raw_output=f"Score: {s}", score=s, method="text",
                                         stage="judge", seed=1, sampling=None)
                for c, samples in enumerate(scores) for k, s in enumerate(samples)])
    candidate_scores.record(log, iteration, "1" * 64, "judge")   # as the judge stage ends


def answered(log: EventLog, model: str, chars: list[int], model_hash: str) -> None:
    log.append_partition(EvalAnswerGenerated, model, [
        EvalAnswerGenerated.create(model=model, prompt_id=row_id("eval", i), model_hash=model_hash, text="x" * n,
                                   num_tokens=n, finish_reason="stop", stage="answers", seed=1, sampling=None)
        for i, n in enumerate(chars)])


def rm_metrics(root, model: str, accuracy: float | None) -> None:
    (root / model).mkdir(parents=True, exist_ok=True)
    (root / model / "rm_eval.json").write_text(json.dumps(
        {"model": model, "pairwise_accuracy": accuracy, "pairs": 41,
         "pairwise_accuracy_ci95_low": None if accuracy is None else accuracy - 0.1,
         "pairwise_accuracy_ci95_high": None if accuracy is None else accuracy + 0.1}))


def dpo_metrics(root, model: str, **train) -> None:
    (root / model).mkdir(parents=True, exist_ok=True)
    (root / model / "train.json").write_text(json.dumps(
        {"examples": 8, "steps": 8, "pairs_loss": 0.14, "pairs_reward_accuracy": 1.0, "pairs_reward_margin": 2.0,
         **train}))


def run_dir(tmp_path, scores=HEALTHY, lengths=((500, 500), (520, 480)), accuracies=(0.60, 0.58), train=None):
    """An iteration 1 (M1 -> M2): M1's judge scores, both models' held-out answers and RM accuracies, and
    M2's DPO metrics (`train` overrides them)."""
    log = EventLog(tmp_path / "events")
    judged(log, 1, [[s, s] for s in scores])
    answered(log, "M1", list(lengths[0]), "1" * 64)
    answered(log, "M2", list(lengths[1]), M2_HASH)
    rm_metrics(tmp_path / "metrics", "M1", accuracies[0])
    rm_metrics(tmp_path / "metrics", "M2", accuracies[1])
    dpo_metrics(tmp_path / "metrics", "M2", **(train or {}))
    return tmp_path


def check(tmp_path, guards_params: dict | None = None) -> dict:
    return guards.run(parse_params({"guards": guards_params or {}}), iteration=1, model="M2", parent="M1",
                      events_root=tmp_path / "events", metrics_root=tmp_path / "metrics")


def cleared(tmp_path) -> None:
    """The guard_checks written so far removed, as DVC clears a stage's outputs before it runs again."""
    for path in (tmp_path / "events" / "guard_checks").rglob("*.parquet"):
        path.unlink()


def outcomes(result: dict) -> dict[str, str]:
    return {name: c["outcome"] for name, c in result["checks"].items()}


def test_a_healthy_iteration_passes_every_guard_and_is_in_the_log(tmp_path):
    result = check(run_dir(tmp_path))
    assert outcomes(result) == dict.fromkeys(guards.THRESHOLDS, "ok") and result["tripped"] == []
    checks = result["checks"]
    assert checks["top_share"]["value"] == 0 and checks["score_sd"]["value"] == pytest.approx(1.118034)
    assert checks["length_growth"]["value"] == 1.0 and checks["rm_accuracy_drop"]["value"] == pytest.approx(0.02)
    assert checks["length_growth"]["reason"] == "M2 500 chars vs M1 500, mean over 2 held-out prompts"
    assert checks["rm_accuracy_drop"]["reason"] == "M1 0.600 [0.500, 0.700] -> M2 0.580 [0.480, 0.680], 41 held-out pairs"
    assert checks["dpo_pairs_loss"] == {"value": 0.14, "threshold": 0.6, "outcome": "ok", "reason": (
        "M2 after 8 steps on 8 pairs (ln 2 = 0.693 untrained): reward accuracy 1.000, margin 2.000")}
    assert json.loads((tmp_path / "metrics" / "guards" / "M2.json").read_text()) == result
    rows = EventLog(tmp_path / "events").read(GuardChecked, 1).to_pylist()
    assert [(r["guard"], r["outcome"], r["threshold"]) for r in rows] == [
        ("top_share", "ok", 0.5), ("score_sd", "ok", 0.1), ("length_growth", "ok", 1.5),
        ("rm_accuracy_drop", "ok", 0.15), ("dpo_pairs_loss", "ok", 0.6)]
    assert {(r["model"], r["parent"], r["model_hash"], r["stage"]) for r in rows} == {("M2", "M1", M2_HASH, "guards")}
    assert json.loads(rows[0]["sampling"])["action"] == "warn"
    sql = run_query("select guard, outcome from guard_checks where iteration = 1 and model = 'M2' order by guard",
                    tmp_path / "events")
    assert sql.rows == [("dpo_pairs_loss", "ok"), ("length_growth", "ok"), ("rm_accuracy_drop", "ok"),
                        ("score_sd", "ok"), ("top_share", "ok")]


@pytest.mark.parametrize("inputs, tripped", [
    ({"scores": COLLAPSED}, ["top_share"]),                       # all top-scored; sd 0.17 still above 0.1
    ({"scores": [3.0, 3.0, 3.05, 3.0]}, ["score_sd"]),            # one value: no signal, not at the top
    ({"scores": [5.0, 5.0, 5.0, 5.0]}, ["top_share", "score_sd"]),
    ({"lengths": ((400, 600), (900, 900))}, ["length_growth"]),   # 1.8x
    ({"accuracies": (0.62, 0.40)}, ["rm_accuracy_drop"]),         # 22 points
    ({"train": {"pairs_loss": 0.61}}, ["dpo_pairs_loss"]),       # bf16 rounded the updates away
], ids=["top-share", "score-sd", "both-collapse", "length", "rm-drop", "dpo-loss"])
def test_each_guard_trips_on_its_sign_alone(tmp_path, inputs, tripped):
    result = check(run_dir(tmp_path, **inputs))
    assert result["tripped"] == tripped
    assert outcomes(result) == {g: "warn" if g in tripped else "ok" for g in guards.THRESHOLDS}


@pytest.mark.parametrize("guard, param, passes, trips", [
    ("top_share", "max_top_share", 0.75, 0.74),        # 3 of 4 at the top
    ("score_sd", "min_score_sd", 1.6, 1.7),            # sd 1.65
    ("length_growth", "max_length_growth", 1.2, 1.19),
    ("rm_accuracy_drop", "max_rm_accuracy_drop", 0.05, 0.04),
    ("dpo_pairs_loss", "max_dpo_pairs_loss", 0.14, 0.13),
])
def test_each_threshold_moves_its_verdict(tmp_path, guard, param, passes, trips):
    run_dir(tmp_path, scores=[4.6, 4.8, 5.0, 1.0], lengths=((500, 500), (600, 600)), accuracies=(0.60, 0.55))
    value = check(tmp_path)["checks"][guard]["value"]
    for threshold, outcome in ((passes, "ok"), (trips, "warn")):
        cleared(tmp_path)
        found = check(tmp_path, {param: threshold})["checks"][guard]
        assert (found["outcome"], found["threshold"], found["value"]) == (outcome, threshold, value), threshold


def test_top_score_sets_what_counts_as_the_top():
    scores = [4.6, 4.8, 5.0, 1.0]
    assert guards.judge_collapse(scores, 4.5, 1)["top_share"].value == 0.75
    top = guards.judge_collapse(scores, 4.7, 1)["top_share"]
    assert (top.value, top.reason) == (0.5, "2 of 4 scored candidates have a mean score >= 4.7")


def test_a_null_threshold_skips_its_check_but_keeps_the_value(tmp_path):
    result = check(run_dir(tmp_path, lengths=((400, 600), (900, 900))), {"max_length_growth": None})
    length = result["checks"]["length_growth"]
    assert (length["outcome"], length["threshold"], length["value"]) == ("skipped", None, 1.8)
    assert length["reason"].startswith("off (guards.max_length_growth is null); M2 900 chars vs M1 500")
    assert result["tripped"] == []


def test_nothing_to_measure_is_skipped_with_the_reason(tmp_path):
    log = EventLog(tmp_path / "events")
    judged(log, 1, [[None, None], [None]])
    answered(log, "M1", [500], "1" * 64)
    answered(log, "M2", [500], M2_HASH)
    rm_metrics(tmp_path / "metrics", "M1", 0.6)
    rm_metrics(tmp_path / "metrics", "M2", None)
    dpo_metrics(tmp_path / "metrics", "M2")
    checks = check(tmp_path)["checks"]
    assert {g: (c["outcome"], c["value"]) for g, c in checks.items()} == {
        "top_share": ("skipped", None), "score_sd": ("skipped", None), "length_growth": ("ok", 1.0),
        "rm_accuracy_drop": ("skipped", None), "dpo_pairs_loss": ("ok", 0.14)}
    assert checks["top_share"]["reason"] == "no candidate of iteration 1 has a score"
    assert checks["rm_accuracy_drop"]["reason"].startswith("no pairwise accuracy for M2")


@pytest.mark.parametrize("train, reason", [
    ({"examples": 0, "steps": 0, "carried_forward": 1, "pairs_loss": None}, "M2 is its parent carried forward"),
    ({"pairs_loss": None}, "M2 was trained by SFT on the top responses (pairs.positive_only)"),
], ids=["carried-forward", "positive-only"])
def test_no_dpo_loss_to_hold_is_skipped(tmp_path, train, reason):
    found = check(run_dir(tmp_path, train=train))["checks"]["dpo_pairs_loss"]
    assert (found["outcome"], found["value"]) == ("skipped", None) and found["reason"].startswith(reason)


def test_only_prompts_both_models_answered_are_compared():
    measure = guards.length_growth({"a": "x" * 30, "b": "x" * 99}, {"a": "x" * 10, "c": "x"}, "M2", "M1")
    assert measure.value == 3.0 and measure.reason.endswith("over 1 held-out prompts")
    assert guards.length_growth({"b": "x"}, {"a": "x"}, "M2", "M1").value is None


def test_a_candidate_score_is_the_mean_of_its_valid_samples(tmp_path):
    """As the judge stage recorded it (candidate_scores.sql): [5, 4] is 4.5, top at guards.top_score 4.5;
    [5, None] is 5. A log without recorded scores has them computed the same way."""
    log = EventLog(tmp_path / "events")
    judged(log, 1, [[5.0, 4.0], [5.0, None], [1.0, 2.0], [None, None]])
    assert sorted(guards.candidate_scores(log, 1)) == [1.5, 4.5, 5.0]
    for path in log.files("candidate_scores"):
        path.unlink()
    assert sorted(guards.candidate_scores(log, 1)) == [1.5, 4.5, 5.0]


def test_missing_inputs_are_named(tmp_path):
    run_dir(tmp_path)
    (tmp_path / "metrics" / "M1" / "rm_eval.json").unlink()
    with pytest.raises(SrlmError, match=r"M1/rm_eval\.json: not found; run `dvc repro rm_eval@M1`"):
        check(tmp_path)
    (tmp_path / "metrics" / "M2" / "train.json").unlink()
    rm_metrics(tmp_path / "metrics", "M1", 0.6)
    with pytest.raises(SrlmError, match=r"M2/train\.json: not found; run `dvc repro dpo@M2`"):
        check(tmp_path)


def test_fail_records_everything_then_stops(tmp_path):
    run_dir(tmp_path, lengths=((400, 600), (900, 900)))
    with pytest.raises(SrlmError, match=r"iteration 1 \(M1 -> M2\) failed its guards: length_growth "
                                        r"\(guards\.action: fail\)"):
        check(tmp_path, {"action": "fail"})
    written = json.loads((tmp_path / "metrics" / "guards" / "M2.json").read_text())
    assert written["tripped"] == ["length_growth"] and written["action"] == "fail"
    rows = EventLog(tmp_path / "events").read(GuardChecked, 1).to_pylist()
    assert {r["guard"]: r["outcome"] for r in rows} == {"top_share": "ok", "score_sd": "ok",
                                                        "length_growth": "fail", "rm_accuracy_drop": "ok",
                                                        "dpo_pairs_loss": "ok"}


def test_fail_passes_when_nothing_trips(tmp_path):
    assert check(run_dir(tmp_path), {"action": "fail"})["tripped"] == []


def stage(workdir, action: str) -> subprocess.CompletedProcess:
    (workdir / "params.yaml").write_text(yaml.safe_dump({"guards": {"action": action}}), encoding="utf-8")
    return subprocess.run([sys.executable, str(REPO / "stages" / "guards.py"), "--iteration", "1", "--model", "M2",
                           "--parent", "M1", "--events", "events", "--metrics", "metrics"],
                          cwd=workdir, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                          timeout=120)


def test_the_stage_warns_and_succeeds_or_fails_with_exit_1(tmp_path):
    run_dir(tmp_path, scores=COLLAPSED)
    warned = stage(tmp_path, "warn")
    assert warned.returncode == 0, warned.stderr
    assert "[guards@M2] top_share WARN: 1.000 (threshold 0.500): 4 of 4 scored candidates" in warned.stderr
    assert "tripped top_share (guards.action: warn)" in warned.stderr
    cleared(tmp_path)
    failed = stage(tmp_path, "fail")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "[guards@M2] error: iteration 1 (M1 -> M2) failed its guards: top_share" in failed.stderr
    assert (tmp_path / "metrics" / "guards" / "M2.json").is_file()
    assert len(EventLog(tmp_path / "events").read(GuardChecked, 1)) == 5


def test_dvc_repro_runs_each_guard_before_the_next_iteration_and_before_stats():
    """The order `dvc repro` takes (its own planner, on the repository's dvc.yaml): guards@M2 right after M2
    and M1 are evaluated, before anything of iteration 2, so guards.action: fail stops the loop there."""
    import networkx as nx
    from dvc.repo import Repo
    from dvc.repo.reproduce import plan_repro

    repo = Repo(str(REPO))
    graph = repo.index.graph
    stages = {s.addressing: s for s in repo.index.stages}
    order = [s.addressing for s in plan_repro(graph, list(stages.values()))]
    for name in ("judge@M2", "answers@M2", "answers@M1", "rm_eval@M2", "rm_eval@M1"):
        assert order.index(name) < order.index("guards@M2"), name
    assert order.index("guards@M2") < min(order.index(f"{s}@M3") for s in ("prompts", "candidates", "judge", "dpo"))
    assert all(nx.has_path(graph, stages["stats"], stages[f"guards@{m}"]) for m in ("M2", "M3"))


def test_checks_show_in_srlm_metrics_and_the_report(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from srlm_core.cli import app
    from srlm_core.reporting import report

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    check(run_dir(tmp_path, lengths=((400, 600), (900, 900))))
    shown = json.loads(CliRunner().invoke(app, ["metrics", "--root", str(tmp_path), "--json"]).stdout)["guards"]
    assert [(c["iteration"], c["model"], c["parent"], c["guard"], c["outcome"]) for c in shown] == [
        (1, "M2", "M1", g, "warn" if g == "length_growth" else "ok") for g in sorted(guards.THRESHOLDS)]
    text = CliRunner().invoke(app, ["metrics", "--root", str(tmp_path)]).stdout
    assert "guards after each iteration" in text and "length_growth" in text and "1.800" in text
    monkeypatch.setattr(report, "plot_svgs", lambda root: {})   # dvc plots show needs a pipeline run
    html = report.to_html(report.build(tmp_path, tmp_path / "reports"), "run")
    assert "<h2>Guards</h2>" in html
    assert "<td>length_growth</td><td>1.800</td><td>1.500</td><td>warn</td>" in html


def test_the_dvc_stage_runs_on_its_declared_inputs(tmp_path):
    """`dvc repro -s guards@M2` in a copy of the repository, on hand-made inputs at the paths dvc.yaml
    declares: the outputs it declares appear, and guards.action: fail fails the DVC run after writing them."""
    from pipeline import clone_repo, dvc

    repo = clone_repo(tmp_path / "repo", {"guards": {"action": "fail"}})
    inputs = run_dir(tmp_path / "inputs", scores=COLLAPSED)
    shutil.copytree(inputs / "events", repo / "data" / "events", dirs_exist_ok=True)
    for model in ("M1", "M2"):
        shutil.copytree(inputs / "metrics" / model, repo / "metrics" / model, dirs_exist_ok=True)
    failed = dvc(repo, "repro", "-s", "guards@M2", check=False)
    assert failed.returncode != 0 and "failed its guards: top_share" in failed.stderr + failed.stdout
    assert json.loads((repo / "metrics" / "guards" / "M2.json").read_text())["tripped"] == ["top_share"]
    assert len(EventLog(repo / "data" / "events").read(GuardChecked, 1)) == 5
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("action: fail", "action: warn"))
    dvc(repo, "repro", "-s", "guards@M2")
    assert "guards@M2" in (repo / "dvc.lock").read_text()
    assert "metrics/guards/M2.json" in dvc(repo, "metrics", "show").stdout
