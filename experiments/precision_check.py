"""Does a DPO update survive the precision the model runs in?

Trains M(t+1) from a run's Mt on AIFT(Mt) with srlm's own DPO stage code, in the precision given by
SRLM_DTYPE (or generation.dtype), then measures the trained policy's DPO loss and reward accuracy on
those pairs with the policy and the reference (Mt) loaded in fp32 and in bf16. Before training the
loss is ln 2 = 0.693. docs/dpo-profile.md (last section) has the result on the real-data run: trained
in fp32, 0.156 in fp32 and 0.628 with the same weights in bf16.

    SRLM_DTYPE=float32 python experiments/precision_check.py --repo /path/to/run --parent M1 --out /tmp/prec

It needs a repository where `dvc repro pairs@<child>` has run. About 3-4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from srlm_core.engine import mkl_dispatch  # noqa: E402
from srlm_core.params import load_params  # noqa: E402
from srlm_core.steps import dpo  # noqa: E402


def reply_logp(model, tokenizer, prompt: str, reply: str, max_length: int) -> float:
    """log p(reply | prompt) under the chat template, the prompt's tokens excluded, cut at max_length as DPO is."""
    head = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    full = tokenizer.apply_chat_template([{"role": "user", "content": prompt},
                                          {"role": "assistant", "content": reply}], tokenize=False)
    ids = tokenizer(full, return_tensors="pt", add_special_tokens=False).input_ids[:, :max_length]
    start = len(tokenizer(head, add_special_tokens=False).input_ids)
    with torch.no_grad():
        logp = model(ids).logits.float().log_softmax(-1)
    token_logp = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
    return token_logp[:, start - 1:].sum().item()


def on_pairs(policy, reference, tokenizer, rows: list[dict], beta: float, max_length: int) -> dict:
    margins = []
    for r in rows:
        chosen = reply_logp(policy, tokenizer, r["prompt"], r["chosen"], max_length) - \
            reply_logp(reference, tokenizer, r["prompt"], r["chosen"], max_length)
        rejected = reply_logp(policy, tokenizer, r["prompt"], r["rejected"], max_length) - \
            reply_logp(reference, tokenizer, r["prompt"], r["rejected"], max_length)
        margins.append(beta * (chosen - rejected))
    return {"loss": sum(-F.logsigmoid(torch.tensor(m)).item() for m in margins) / len(margins),
            "reward_accuracy": sum(m > 0 for m in margins) / len(margins)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--parent", default="M1")
    parser.add_argument("--out", type=Path, required=True, help="folder for the trained model, metrics, result.json")
    args = parser.parse_args()
    mkl_dispatch.settle()   # it runs the models itself, not through runtime.load
    params = load_params(args.repo / "params.yaml")
    parent, aift = args.repo / "models" / args.parent, args.repo / "data" / "aift" / args.parent
    child = args.out / "child"
    if not child.exists():
        dpo.run(params, prev_dir=parent, aift_dir=aift, out_dir=child, metrics_dir=args.out / "metrics")
    trained = json.loads((args.out / "metrics" / "train.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(parent)
    rows = pq.read_table(aift / "train.parquet").to_pylist()
    result = {"trained_in": trained, "pairs": len(rows), "untrained_loss": math.log(2)}
    for dtype in (torch.float32, torch.bfloat16):
        policy = AutoModelForCausalLM.from_pretrained(child, dtype=dtype).eval()
        reference = AutoModelForCausalLM.from_pretrained(parent, dtype=dtype).eval()
        result[str(dtype).removeprefix("torch.")] = on_pairs(policy, reference, tokenizer, rows, params.dpo.beta,
                                                             params.dpo.max_length)
        print(str(dtype), result[str(dtype).removeprefix("torch.")], flush=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
