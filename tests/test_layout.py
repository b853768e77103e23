"""The package layout keeps its rules: one step per DVC stage, named as the stage, and no step
importing another (what two steps share lives in the packages beside `steps/`)."""

from __future__ import annotations

import ast
import re

import yaml

from conftest import REPO

STEPS = REPO / "srlm_core" / "steps"


def test_one_step_module_per_stage_named_as_the_stage():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    modules = {p.stem for p in STEPS.glob("*.py") if p.stem != "__init__"}
    scripts = {re.search(r"stages/(\w+)\.py", s.get("do", s)["cmd"]).group(1) for s in stages.values()}
    assert modules == scripts


def test_no_step_imports_another():
    for path in sorted(STEPS.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                inside = node.level == 1 or (node.module or "").startswith("srlm_core.steps")
                assert not inside, f"{path.name} imports a step: line {node.lineno}"
