"""One arm of an experiment: this repository's code with some params changed, run beside it.

Makes a clone next to the repository (so `../shared` still resolves) with the repository's
uncommitted changes to tracked files (its dvc.lock, metrics and reports when the run there is
not committed), writes its params.yaml (this repository's, or --params, with each --set
applied, comments kept), and points its DVC cache at this repository's, so every stage whose
inputs are unchanged (M0, the SFT baseline, M1, the first iteration's data and their
evaluation, when the changes only touch later stages) is restored by `dvc checkout` instead of
recomputed. --run then runs `dvc repro` there. Compare the arm with another run item by item
with experiments/compare_runs.py.

    python experiments/arm.py meta --set meta.enabled=true --set dpo.max_length=800 --run
    python experiments/compare_runs.py --a . --b ../<this folder>-arm-meta
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]


def set_values(params: dict, assignments: list[str]) -> dict:
    """params with each `dotted.key=value` applied (value read as YAML: true, 800, null, [a, b]); a key
    that params does not already hold is refused, so a typo cannot silently leave an arm unchanged."""
    yaml = YAML(typ="safe")
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep:
            raise SystemExit(f"--set {assignment}: expected dotted.key=value (e.g. meta.enabled=true)")
        *parents, leaf = key.split(".")
        node = params
        for name in parents:
            if not isinstance(node.get(name), dict):
                raise SystemExit(f"--set {assignment}: params has no section {name!r} on the way to {key}")
            node = node[name]
        if leaf not in node:
            raise SystemExit(f"--set {assignment}: params has no key {key} (check the spelling in params.yaml)")
        node[leaf] = yaml.load(raw)
    return params


def make_arm(name: str, params_file: Path, assignments: list[str], root: Path = ROOT) -> Path:
    """The arm's clone, ready for `dvc repro`: `root`'s tracked files as they are, the arm's params, its cache."""
    arm = root.parent / f"{root.name}-arm-{name}"
    if arm.exists():
        raise SystemExit(f"{arm} exists: remove it, or run `dvc repro` in it to resume that arm")
    yaml = YAML()   # round trip: the arm's params.yaml keeps the comments that explain each key
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    params = set_values(yaml.load(params_file.read_text()), assignments)
    subprocess.run(["git", "clone", "-q", str(root), str(arm)], check=True)
    with (arm / "params.yaml").open("w") as out:
        yaml.dump(params, out)
    # The run's working tree, committed or not (a run in a clone with edited params is not): its
    # dvc.lock, so that `dvc checkout` below restores what that run produced, and the outputs git
    # tracks (metrics/, reports/stats.json: DVC does not cache them), so those stages are current too.
    changed = subprocess.run(["git", "diff", "--name-only", "-z", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.split("\0")
    for name in filter(None, changed):
        if name != "params.yaml" and (root / name).is_file():
            shutil.copy2(root / name, arm / name)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "cache", "dir", "--local", str(root / ".dvc" / "cache")], cwd=arm, check=True)
    subprocess.run([*dvc, "config", "--local", "cache.type", "hardlink,copy"], cwd=arm, check=True)
    # Stages the cache lacks (not yet run in `root`) stay missing; `dvc repro` builds them.
    subprocess.run([*dvc, "checkout", "--quiet"], cwd=arm, check=False, stderr=subprocess.DEVNULL)
    return arm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the arm's name: its clone is ../<repo>-arm-<name>")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                        help="params to start from (default: this repository's params.yaml)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="a param to change, dotted (repeat): --set pairs.length_control.enabled=true")
    parser.add_argument("--run", action="store_true", help="then run `dvc repro` in the arm")
    args = parser.parse_args()
    arm = make_arm(args.name, args.params, args.assignments)
    print(f"arm {args.name}: {arm}")
    if args.run:
        env = {**os.environ, "PYTHONPATH": str(arm),   # the arm's code, not this repository's editable install
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=arm, env=env, check=True)
        print(f"compare: python experiments/compare_runs.py --a {ROOT} --b {arm}")


if __name__ == "__main__":
    main()
