"""`srlm join`: run one training stage on another machine of a multi-node run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from ..errors import SrlmError
from ..training.launch import MACHINE_RANK

TRAINING_SCRIPTS = ("stages/sft.py", "stages/dpo.py")   # the stages that launch ranks (run_training_stage)


def stage_command(repo: Path, stage: str) -> str:
    """The command dvc.yaml gives `stage` (e.g. dpo@M2), its ${...} filled in as `dvc repro` runs it."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        found = {s.addressing: s.cmd for s in dvc_repo.index.stages}
    if stage not in found:
        training = sorted(a for a, cmd in found.items() if any(s in cmd for s in TRAINING_SCRIPTS))
        raise SrlmError(f"{repo / 'dvc.yaml'} has no stage {stage!r}; its training stages: {', '.join(training)}")
    cmd = found[stage]
    if not any(script in cmd for script in TRAINING_SCRIPTS):
        raise SrlmError(f"{stage} is not a training stage ({cmd.split()[1]}); only {', '.join(TRAINING_SCRIPTS)} "
                        "spread over several machines")
    return cmd


def join(
    stage: str = typer.Argument(..., help="The training stage as dvc.yaml names it, e.g. dpo@M2."),
    machine_rank: int = typer.Option(..., "--machine-rank", min=1, help="This machine's rank (1, 2, ...; the "
                                     "machine running `dvc repro` is 0)."),
    repo: Path = typer.Option(Path("."), "--repo", help="The repository, as on machine 0 (a shared filesystem)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the command instead of running it."),
) -> None:
    """Take part in a training stage that `dvc repro` runs on machine 0, with train.accelerate_config set to a
    config for several machines (configs/accelerate/multi_node_*.yaml): run the stage's own command here as
    machine MACHINE_RANK, so its ranks join machine 0's. Global rank 0, on machine 0, writes the model.

    Example: srlm join dpo@M2 --machine-rank 1   (on the second machine, while machine 0 runs `dvc repro`)
    """
    cmd = stage_command(repo, stage)
    if dry_run:
        print(f"{MACHINE_RANK}={machine_rank} {cmd}")
        return
    env = dict(os.environ, **{MACHINE_RANK: str(machine_rank)})
    sys.exit(subprocess.run(cmd, shell=True, cwd=repo, env=env).returncode)
