"""dvc.yaml lists, for every stage, each project file the stage runs (srlm_core/code_deps.py), so no
code change can leave an output stale while `dvc status` calls it current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from srlm_core.code_deps import closure

SCRIPT = re.compile(r"python (stages/\w+\.py)")


def stages(dvc_yaml: dict) -> dict[str, dict]:
    return {name: stage.get("do", stage) for name, stage in dvc_yaml["stages"].items()}


def missing(dvc_yaml: dict, root: Path) -> dict[str, list[str]]:
    """{stage: project files it runs that its deps do not cover (a listed folder covers its files)}."""
    out = {}
    for name, stage in stages(dvc_yaml).items():
        script = SCRIPT.search(" ".join(stage["cmd"].split())).group(1)
        deps = [d for d in stage.get("deps", []) if isinstance(d, str)]
        needed = closure(root / script, root)
        absent = [f for f in needed if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]
        if absent:
            out[name] = absent
    return out


def test_every_stage_depends_on_the_code_it_runs():
    assert missing(yaml.safe_load((REPO / "dvc.yaml").read_text()), REPO) == {}


def test_a_removed_dependency_is_found():
    dvc_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stages(dvc_yaml)["pairs"]["deps"].remove("srlm_core/steps/pairs.sql")
    stages(dvc_yaml)["candidates"]["deps"].remove("srlm_core/log/events.py")
    assert missing(dvc_yaml, REPO) == {"pairs": ["srlm_core/steps/pairs.sql"], "candidates": ["srlm_core/log/events.py"]}


@pytest.mark.parametrize("source, found", [
    ("from srlm_core.judges import judge\n", {"srlm_core/__init__.py", "srlm_core/judges/__init__.py",
                                             "srlm_core/judges/judge.py", "srlm_core/engine/prompts.py"}),
    ("def f():\n    from srlm_core.cli import sql\n", {"srlm_core/__init__.py", "srlm_core/cli/__init__.py",
                                                      "srlm_core/cli/sql.py"}),
    ("import json\nfrom rich import print\n", set()),
])
def test_imports_are_followed_wherever_they_are(tmp_path, source, found):
    script = REPO / "stages" / "_probe_for_test.py"
    script.write_text(source)
    try:
        deps = set(closure(script, REPO)) - {"stages/_probe_for_test.py"}
    finally:
        script.unlink()
    assert found <= deps and (found or not deps)
