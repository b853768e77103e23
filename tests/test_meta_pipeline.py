"""meta.enabled under `dvc repro`: meta@M2 runs between judge@M2 and dpo@M2, and M2 trains on both kinds of
pairs. One iteration on a copy of the repo with the tiny random model (6 minutes on 2 busy cores)."""

from __future__ import annotations

import json
import sys

import pytest
from pipeline import clone_repo, dvc, merge, run, srlm
from test_pipeline import SMALL


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_model_dir, dvc_cache):
    params = merge({"model": {"base": str(tiny_model_dir)}, **SMALL},
                   {"meta": {"enabled": True, "max_new_tokens": 8}, "dpo": {"max_length": 1024}})
    root = clone_repo(tmp_path_factory.mktemp("meta-repo"), params, dvc_cache)
    dvc(root, "repro", "dpo@M2")
    return root


def test_m2_trains_on_actor_and_judge_pairs(repo):
    summary = json.loads((repo / "data/meta/M1/summary.json").read_text())
    metrics = json.loads((repo / "metrics/M2/train.json").read_text())
    assert summary["enabled"] and summary["comparisons"] > 0 and summary["judge_pairs"] > 0
    # the default ratio 1.0: as many judge pairs as actor pairs, when there are enough
    assert metrics["judge_pairs"] == min(summary["judge_pairs"], metrics["actor_pairs"]) > 0
    manifest = json.loads((repo / "models/M2/manifest.json").read_text())
    assert manifest["training_data"]["name"] == "AIFT(M1) + judge pairs(M1)"
    rows = json.loads(srlm(repo, "sql", "select count(*) as n, count(distinct candidate_id) as c from meta_judgements",
                           "--format", "json").stdout)
    assert rows == [{"n": summary["comparisons"], "c": summary["drawn"]}]
    assert json.loads(dvc(repo, "status", "meta@M2", "dpo@M2", "--json").stdout) == {}


def test_the_meta_judge_rerun_with_other_seeds(repo, tmp_path):
    """experiments/meta_seed_noise.py rebuilds the stage's comparisons, reproduces the recorded judge pairs
    with the run's own seed (it exits non-zero otherwise) and counts how often other seeds pick the same."""
    out = tmp_path / "noise.json"
    run(repo, sys.executable, "experiments/meta_seed_noise.py", "--run", ".", "--iteration", "1", "--seeds", "7", "8",
        "--out", str(out))
    report = json.loads(out.read_text())
    summary = json.loads((repo / "data/meta/M1/summary.json").read_text())
    assert report["summary"]["reruns"] == 2 * summary["drawn"]
    assert 0 <= report["summary"]["same_pair"] <= report["summary"]["same_chosen"] <= report["summary"]["reruns"]
    assert set(report["picks"]) == {str(report["run_seed"]), "7", "8"}
