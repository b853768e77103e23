"""experiments/arm.py: an experiment arm is a clone beside the repository with changed params and the
repository's DVC cache."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("arm", REPO / "experiments" / "arm.py")
arm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(arm)

PARAMS = """\
seed: 1234                # global seed
meta:
  enabled: false          # Meta-Rewarding
pairs:
  length_control:
    enabled: false
    tolerance: 0.25
evaluation:
  rm_max_groups: null     # all
"""


def test_set_values_reads_yaml_and_refuses_unknown_keys():
    params = {"meta": {"enabled": False}, "dpo": {"max_length": 512}, "evaluation": {"models": ["SFT"]}}
    out = arm.set_values(params, ["meta.enabled=true", "dpo.max_length=800", "evaluation.models=[SFT, M1]"])
    assert out == {"meta": {"enabled": True}, "dpo": {"max_length": 800}, "evaluation": {"models": ["SFT", "M1"]}}
    with pytest.raises(SystemExit, match="no key meta.enabeld"):
        arm.set_values(params, ["meta.enabeld=true"])
    with pytest.raises(SystemExit, match="no section 'nope'"):
        arm.set_values(params, ["nope.x=1"])
    with pytest.raises(SystemExit, match="expected dotted.key=value"):
        arm.set_values(params, ["meta.enabled"])


def test_make_arm_clones_with_changed_params_and_the_shared_cache(tmp_path):
    root = tmp_path / "srlm"
    root.mkdir()
    (root / "params.yaml").write_text(PARAMS)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=root, check=True)
    (root / "metrics").mkdir()
    (root / "metrics" / "m.json").write_text("{}")
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "an earlier run"], cwd=root, check=True)
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n# the run\n")   # the run's lock and metrics,
    (root / "metrics" / "m.json").write_text('{"run": 1}')                        # not committed

    out = arm.make_arm("lc", root / "params.yaml", ["pairs.length_control.enabled=true"], root=root)

    assert out == tmp_path / "srlm-arm-lc"
    assert (out / "params.yaml").read_text() == PARAMS.replace("    enabled: false\n", "    enabled: true\n")
    assert (out / "dvc.lock").read_text() == (root / "dvc.lock").read_text()
    assert (out / "metrics" / "m.json").read_text() == '{"run": 1}'
    local = (out / ".dvc" / "config.local").read_text()
    assert f"dir = {root / '.dvc' / 'cache'}" in local and 'type = "hardlink,copy"' in local
    with pytest.raises(SystemExit, match="exists"):
        arm.make_arm("lc", root / "params.yaml", [], root=root)
