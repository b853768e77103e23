"""Reply log-probabilities: only the reply's tokens are scored, batched scoring equals a direct
computation, and the logprobs step writes one event per held-out reply to the event log."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
import torch

from srlm_core.engine import logprobs, runtime
from srlm_core.log.eventlog import EventLog
from srlm_core.log.events import ReplyLogprobComputed
from srlm_core.params import Params
from srlm_core.steps.logprobs import run
from srlm_core.steps.seed import HELDOUT_SCHEMA
from srlm_core.storage import write_parquet

CONVERSATION = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
                {"role": "user", "content": "And another?"}]


def direct(model, ids: list[int], start: int) -> float:
    """log p of ids[start:] given ids[:start], from one unbatched forward pass over the full logits."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double().log_softmax(-1)
    return sum(float(logits[t - 1, ids[t]]) for t in range(start, len(ids)))


def test_the_reply_span_is_what_the_chat_template_adds_after_the_generation_prompt(tiny32):
    _, tokenizer, _ = tiny32
    e = logprobs.encode(tokenizer, CONVERSATION, "Red, or green.")
    context = tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert tokenizer.decode(e.ids[:e.reply_start]) == context
    assert tokenizer.decode(e.ids[e.reply_start:]).startswith("Red, or green.")
    assert tokenizer.decode(e.ids[e.reply_start:]).rstrip("\n").endswith(tokenizer.eos_token)   # end of turn scored


def test_batched_scores_equal_the_direct_computation_and_ignore_the_context(tiny32):
    model, tokenizer, _ = tiny32
    replies = ["Red.", "Green, the colour of grass and of many other things that grow.", "Red."]
    items = [logprobs.encode(tokenizer, CONVERSATION, r) for r in replies[:2]]
    items.append(logprobs.encode(tokenizer, CONVERSATION[:1], replies[2]))   # another context, same reply
    scored = logprobs.score(model, items, batch_size=2, pad_id=tokenizer.pad_token_id)
    for item, s in zip(items, scored):
        assert s.tokens == len(item.ids) - item.reply_start
        assert s.logprob == pytest.approx(direct(model, item.ids, item.reply_start), abs=1e-4)
    assert scored[0].tokens == scored[2].tokens and scored[0].logprob != pytest.approx(scored[2].logprob)
    one_by_one = logprobs.score(model, items, batch_size=1, pad_id=tokenizer.pad_token_id)
    assert [s.logprob for s in one_by_one] == pytest.approx([s.logprob for s in scored], abs=1e-4)


def heldout_file(tmp_path, long_reply: str = "x") -> pa.Table:
    user = [{"role": "user", "content": "Which is better?"}]
    rows = [dict(group_id=g, tree_id=f"t{g}", depth=1, conversation=user, reply_id=f"{g}{i}", reply=text, rank=i)
            for g in "ab" for i, text in enumerate(["Yes.", "No, not at all."])]
    rows.append(dict(group_id="c", tree_id="tc", depth=1, conversation=user, reply_id="c0", reply=long_reply, rank=0))
    return write_parquet(pa.Table.from_pylist(rows, schema=HELDOUT_SCHEMA), tmp_path / "heldout.parquet")


def test_the_step_scores_the_first_groups_and_leaves_out_the_too_long(tmp_path, tiny_srlm_model):
    path = heldout_file(tmp_path, long_reply="word " * 300)
    params = Params.model_validate({"evaluation": {"implicit": {"max_groups": 3, "max_length": 200}}})
    summary = run(params, model_dir=tiny_srlm_model, heldout_path=path, events_root=tmp_path / "events")
    log = EventLog(tmp_path / "events")
    assert [p.relative_to(log.root).parent.as_posix() for p in log.files()] == ["reply_logprobs/model=M1"]
    rows = log.read(ReplyLogprobComputed, "M1").to_pylist()
    assert summary == {"replies": 5, "too_long": 1, "groups": 3}
    assert [r["reply_id"] for r in rows] == ["a0", "a1", "b0", "b1", "c0"]
    assert [r["group_id"] for r in rows] == ["a", "a", "b", "b", "c"]   # the held-out file's ids, as they are
    assert rows[-1]["logprob"] is None and rows[-1]["tokens"] is None
    assert all(r["logprob"] < 0 and r["tokens"] > 0 for r in rows[:-1])
    assert {r["model_hash"] for r in rows} == {runtime.load(tiny_srlm_model)[2]} and rows[0]["model"] == "M1"
    assert {(r["stage"], r["seed"]) for r in rows} == {("logprobs", None)}
    assert json.loads(rows[0]["sampling"]) == {"dtype": str(runtime.compute_dtype()).removeprefix("torch."),
                                               "max_length": 200, "batch_size": params.evaluation.implicit.batch_size}
    assert all(ReplyLogprobComputed(**r).problems() == [] for r in rows)
    params = Params.model_validate({"evaluation": {"implicit": {"max_groups": 1}}})
    run(params, model_dir=tiny_srlm_model, heldout_path=path, events_root=tmp_path / "one")
    assert [r["reply_id"] for r in EventLog(tmp_path / "one").read(ReplyLogprobComputed).to_pylist()] == ["a0", "a1"]
