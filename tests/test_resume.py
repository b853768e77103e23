"""Crash-resume: journals of finished chunks, training checkpoints, and real SIGKILLs under `dvc repro`.

The kill tests run the DAG up to judge@M2 on the tiny model once (the reference), then
force one stage at a time, SIGKILL its whole process group once the journal holds k
finished chunks (or the trainer a checkpoint), re-run `dvc repro` and compare.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pytest
from pipeline import BIN, clone_repo, dvc, srlm
from transformers import TrainerCallback

from srlm_core.engine import runtime
from srlm_core.engine.backend import Sampling
from srlm_core.engine.transformers_backend import sample
from srlm_core.hashing import folder_hash
from srlm_core.journal import Journal
from srlm_core.params import parse_params
from srlm_core.training import sft


def test_journal_keys_chunks_by_input(tmp_path):
    journal = Journal("candidates@1", {"model": "m", "prompts": [[1, 2]]}, root=tmp_path)
    assert journal.get(0) is None
    journal.put(0, [["text", 3, "stop"]])
    again = Journal("candidates@1", {"model": "m", "prompts": [[1, 2]]}, root=tmp_path)
    assert again.get(0) == [["text", 3, "stop"]] and again.reused == 1
    assert Journal("candidates@1", {"model": "other", "prompts": [[1, 2]]}, root=tmp_path).get(0) is None
    assert not list(journal.dir.glob(".*"))          # no temporary file left beside the chunk
    again.clear()
    assert not (tmp_path / "journal" / "candidates@1").exists()


def test_a_stored_null_is_not_counted_as_reused(tmp_path):
    Journal("s", {"k": 1}, root=tmp_path).put(0, None)
    again = Journal("s", {"k": 1}, root=tmp_path)
    assert again.get(0) is None and again.reused == 0   # chunk() computes it again


def test_sampling_replays_journaled_chunks_without_generating_them(tiny_srlm_model, tmp_path):
    model, tokenizer, _ = runtime.load(tiny_srlm_model)
    prompts = [tokenizer(f"prompt number {i}").input_ids for i in range(5)]
    args = dict(n=2, sampling=Sampling(0.7, 0.9, 8), seed=3, batch_size=2)
    clean = sample(model, tokenizer, prompts, **args)
    journal = Journal("s", {"k": 1}, root=tmp_path)
    sample(model, tokenizer, prompts[:4], **args, journal=journal)      # "killed" after chunks 0 and 1
    calls = []
    generate = model.generate
    model.generate = lambda **kw: calls.append(1) or generate(**kw)
    resumed = sample(model, tokenizer, prompts, **args, journal=Journal("s", {"k": 1}, root=tmp_path))
    assert resumed == clean and len(calls) == 1                            # only chunk 2 was generated


def test_training_resumes_from_its_checkpoint_to_the_same_model(tiny_srlm_model, tmp_path, monkeypatch):
    params = parse_params({"sft": {"max_steps": 4, "batch_size": 2, "grad_accum": 1, "max_length": 64},
                           "train": {"checkpoint_minutes": 0}})
    examples = sft.conversations(pa.table({"prompt": [f"question {i}" for i in range(8)],
                                           "completion": [f"answer {i} " * (i + 1) for i in range(8)]}))
    kw = dict(name="S", base_dir=tiny_srlm_model, examples=examples, data_name="IFT", data_files=[],
              cfg=params.sft, train_cfg=params.train, seed=0, metrics_dir=tmp_path / "m", params_record={})
    sft.train(out_dir=tmp_path / "clean" / "S", **kw)

    class Killed(Exception):
        pass

    class KillAfterSecondCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise Killed

    build = sft.build_trainer

    def with_kill(*a, **k):
        trainer = build(*a, **k)
        trainer.add_callback(KillAfterSecondCheckpoint())
        return trainer
    monkeypatch.setattr(sft, "build_trainer", with_kill)
    with pytest.raises(Killed):
        sft.train(out_dir=tmp_path / "resumed" / "S", **kw)
    monkeypatch.setattr(sft, "build_trainer", build)
    sft.train(out_dir=tmp_path / "resumed" / "S", **kw)
    assert folder_hash(tmp_path / "resumed" / "S", ["manifest.json"]) == \
        folder_hash(tmp_path / "clean" / "S", ["manifest.json"])


# ---- real kills under dvc repro ---------------------------------------------------------------

PARAMS = {
    "sft": {"batch_size": 2, "grad_accum": 1, "max_steps": 6, "max_length": 128},
    "train": {"checkpoint_minutes": 0},
    "pairs": {"min_margin": 0.0},   # a random model's scores differ by less than the default margin
    "eft": {"max_groups": 4, "min_examples": 1},
    "prompts": {"num_prompts": 6, "requests_per_round": 2, "max_rounds": 12, "min_words": 1,
                "max_new_tokens": 16},
    "candidates": {"max_new_tokens": 24, "batch_size": 1},
    "judge": {"samples": 2, "max_new_tokens": 12, "max_prompt_tokens": 48, "max_response_tokens": 48,
              "batch_size": 1},
}
# stage, its journal folder, the outputs to compare, the kill points (finished chunks)
GENERATION = [
    ("prompts@M2", "prompts@1", ["data/events/prompts/iteration=1", "data/events/rejected_prompts/iteration=1"],
     [2]),
    ("candidates@M2", "candidates@1", ["data/events/candidates/iteration=1"], [3]),
    ("judge@M2", "judge@1", ["data/events/judgements/iteration=1"], [4]),
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tiny_model_dir, dvc_cache):
    root = clone_repo(tmp_path_factory.mktemp("resume"), {"model": {"base": str(tiny_model_dir)}, **PARAMS}, dvc_cache)
    dvc(root, "repro", "judge@M2")
    return root


def snapshot(repo: Path, outs: list[str]) -> dict[str, str]:
    return {out: folder_hash(repo / out) for out in outs}


def env(repo: Path) -> dict:
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(repo),
                SRLM_SCRATCH=str(repo / ".srlm"))


def kill_when(repo: Path, stage: str, done, timeout: float = 300) -> None:
    """Start `dvc repro -f -s stage` in its own process group and SIGKILL the group once done() holds."""
    proc = subprocess.Popen([str(BIN / "dvc"), "repro", "-f", "-s", stage], cwd=repo, env=env(repo),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not done():
        assert proc.poll() is None, f"{stage} finished before the kill point"
        assert time.monotonic() < deadline, f"{stage}: kill point not reached in {timeout} s"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def rerun(repo: Path, stage: str) -> str:
    """`dvc repro` after the kill, forced: otherwise DVC would check out the reference run's outputs
    from its cache ("is cached - skipping run"). After a first-time crash there is no finished run
    to restore, and the stage runs, as here."""
    result = dvc(repo, "repro", "-f", "-s", stage)
    return result.stdout + result.stderr


def assert_log_is_readable(repo: Path) -> None:
    """What a reader sees after a kill: only whole event files (verify), views that open."""
    assert srlm(repo, "verify").stdout.startswith("ok: ")
    srlm(repo, "sql", "select count(*) from candidates")


@pytest.mark.parametrize("stage,journal,outs,points", GENERATION, ids=[g[0] for g in GENERATION])
def test_a_killed_generation_stage_resumes_to_identical_outputs(repo, stage, journal, outs, points):
    reference = snapshot(repo, outs)
    folder = repo / ".srlm" / "journal" / journal
    chunks = lambda: sorted(folder.rglob("chunk-*.json"))  # noqa: E731
    for k in points:
        kill_when(repo, stage, lambda: len(chunks()) >= k)
        finished = len(chunks())
        assert finished >= k and folder.exists()            # killed mid-stage: the journal was not cleared
        assert_log_is_readable(repo)
        reused = sum(int(n) for n in re.findall(r"resumed: (\d+) of \d+ chunks", rerun(repo, stage)))
        assert reused == finished                            # every finished chunk taken, none redone
        assert snapshot(repo, outs) == reference             # byte-identical: nothing duplicated or lost
        assert not folder.exists()                           # cleared once the outputs are written
    assert dvc(repo, "status", stage).stdout.strip().endswith("up to date.")


def test_a_killed_training_stage_resumes_from_its_checkpoint(repo):
    reference = folder_hash(repo / "models" / "M1")
    folder = repo / ".srlm" / "journal" / "train@M1"
    kill_when(repo, "sft", lambda: any(p.is_file() for p in folder.glob("*/checkpoint-3/trainer_state.json")))
    assert not (repo / "models" / "M1").exists()           # DVC removed it; nothing half-written in its place
    assert_log_is_readable(repo)
    assert re.search(r"resuming from \S+checkpoint-[3-5]", rerun(repo, "sft"))
    assert folder_hash(repo / "models" / "M1") == reference  # same weights and manifest as the clean run
    assert not folder.exists()
    manifest = json.loads((repo / "models" / "M1" / "manifest.json").read_text())
    assert manifest["parent"]["name"] == "M0"
