"""End to end: `dvc repro` on a copy of the repo with a tiny model; reproducible to the byte."""

from __future__ import annotations

import json

import pytest

from pipeline import clone_repo, dvc, srlm


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_model_dir):
    root = clone_repo(tmp_path_factory.mktemp("repo"), {"model": {"base": str(tiny_model_dir)}})
    dvc(root, "repro")
    return root


def test_dag_shows_the_stages(repo):
    dag = dvc(repo, "dag").stdout
    assert "base" in dag and "seed" in dag


def test_outputs_and_queries(repo):
    assert (repo / "models" / "M0" / "manifest.json").is_file()
    rows = json.loads(srlm(repo, "sql", "select source, count(*) as n from prompts group by 1 order by 1",
                           "--format", "json").stdout)
    assert rows == [{"source": "eval", "n": 16}, {"source": "seed", "n": 50}]
    assert "ok:" in srlm(repo, "verify").stdout
    assert json.loads(srlm(repo, "lineage", "models/M0", "--json").stdout)[0]["name"] == "M0"


def test_forced_rerun_is_byte_identical(repo):
    before = (repo / "dvc.lock").read_text()
    dvc(repo, "repro", "-f")
    assert (repo / "dvc.lock").read_text() == before


def test_params_diff_between_commits(repo):
    dvc(repo, "repro")
    from pipeline import git

    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run")
    text = (repo / "params.yaml").read_text().replace("ift_max: 3200", "ift_max: 20")
    (repo / "params.yaml").write_text(text)
    diff = dvc(repo, "params", "diff").stdout
    assert "data.ift_max" in diff and "3200" in diff and "20" in diff
    assert "seed" in dvc(repo, "status").stdout
