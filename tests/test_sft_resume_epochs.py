"""SFT's group_by_length order across epochs: a resume inside epoch 2 trains the same examples in the same
order as the uninterrupted run (sft.EpochSeededLengthGroupedSampler), and epoch 1 draws as transformers does."""

from __future__ import annotations

import pyarrow as pa
import pytest
import torch
from transformers import TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from srlm_core.hashing import folder_hash
from srlm_core.params import parse_params
from srlm_core.training import sft


def test_first_epoch_draws_as_transformers_and_later_ones_from_their_own_seed():
    lengths = [(7 * i) % 23 + 1 for i in range(90)]           # several megabatches
    torch.manual_seed(5)
    plain = list(LengthGroupedSampler(4, lengths=lengths))
    torch.manual_seed(5)
    ours = sft.EpochSeededLengthGroupedSampler(4, lengths, seed=3)
    ours.set_epoch(0)
    assert list(ours) == plain                                 # epoch 0: the global RNG, as before
    ours.set_epoch(1)
    torch.manual_seed(0)
    second = list(ours)
    torch.manual_seed(1)
    assert list(ours) == second and sorted(second) == list(range(90))   # independent of the global RNG
    ours.set_epoch(2)
    assert list(ours) != second


def test_resume_in_the_second_epoch_gives_the_uninterrupted_model(tiny_srlm_model, tmp_path, monkeypatch):
    params = parse_params({"sft": {"epochs": 2, "batch_size": 2, "grad_accum": 1, "max_length": 64},
                           "train": {"checkpoint_minutes": 0}})
    examples = sft.conversations(pa.table({"prompt": [f"question {i}" for i in range(8)],
                                           "completion": [f"answer {i} " * (i + 1) for i in range(8)]}))
    kw = dict(name="S", base_dir=tiny_srlm_model, examples=examples, data_name="IFT", data_files=[],
              cfg=params.sft, train_cfg=params.train, seed=0, metrics_dir=tmp_path / "m", params_record={})

    class Killed(Exception):
        pass

    class KillInSecondEpoch(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 6:                        # 4 steps an epoch: 2 done in the second
                raise Killed

    build = sft.build_trainer
    batches: list[list[int]] = []

    def recording(kill: bool):
        def build_recording(*a, **k):
            trainer = build(*a, **k)
            collate = trainer.data_collator
            trainer.data_collator = lambda rows: batches.append([len(r["input_ids"]) for r in rows]) or collate(rows)
            if kill:
                trainer.add_callback(KillInSecondEpoch())
            return trainer
        return build_recording

    monkeypatch.setattr(sft, "build_trainer", recording(False))
    sft.train(out_dir=tmp_path / "clean" / "S", **kw)
    clean = batches[:]
    assert len(clean) == 8
    batches.clear()
    monkeypatch.setattr(sft, "build_trainer", recording(True))
    with pytest.raises(Killed):
        sft.train(out_dir=tmp_path / "resumed" / "S", **kw)
    assert batches[:6] == clean[:6]                               # (the loader collates a batch ahead)
    batches.clear()
    monkeypatch.setattr(sft, "build_trainer", recording(False))
    sft.train(out_dir=tmp_path / "resumed" / "S", **kw)
    assert batches == clean[6:]
    assert folder_hash(tmp_path / "resumed" / "S", ["manifest.json"]) == \
        folder_hash(tmp_path / "clean" / "S", ["manifest.json"])
