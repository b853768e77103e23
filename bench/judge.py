"""The judge stage with and without its fast paths, on the same candidates, in one run.

Each row adds one fast path to the one above it: the plain judge (every sample's whole prompt
encoded by `generate`, the paper's text parse, generation to the token limit), + stop strings
(generation ends after `Score: N`), + the shared rubric encoding (the rubric's cache computed once,
each candidate encoded once for its samples), + probability scoring (stop at `Score:`, read the
digit probabilities: srlm's default).

    python bench/judge.py --out bench/results/judge.json [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, median_seconds, table, write_result  # noqa: E402
from srlm_core.engine import runtime  # noqa: E402
from srlm_core.engine.backend import Sampling  # noqa: E402
from srlm_core.engine.transformers_backend import TransformersGenerator  # noqa: E402
from srlm_core.judges.judge import Judge, Template  # noqa: E402
from srlm_core.params import JudgeParams  # noqa: E402

SEED = ROOT / "data" / "seed" / "oasst_seed.messages.jsonl"
TARGET = 2.0


def oasst_items(count: int) -> list[tuple[str, str]]:
    """(question, first reply) pairs from the bundled OASST seed."""
    messages = [json.loads(line) for line in SEED.read_text().splitlines()]
    prompts = {m["message_id"]: m["text"] for m in messages if m["role"] == "prompter" and m["parent_id"] is None}
    items, seen = [], set()
    for m in messages:
        if m["role"] == "assistant" and m["parent_id"] in prompts and m["parent_id"] not in seen:
            seen.add(m["parent_id"])
            items.append((prompts[m["parent_id"]], m["text"]))
    return items[:count]


VARIANTS = [  # (label, method, fast (shared encoding), stop strings)
    ("plain: whole prompt encoded for every sample, text parse, no stop", "text", False, False),
    ("+ stop strings (`Score: N`)", "text", False, True),
    ("+ shared rubric encoding, candidate encoded once", "text", True, True),
    ("+ probability scoring (srlm's default)", "probability", True, True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "M0")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "judge.json")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = JudgeParams()
    count, repeats = (8, args.repeats) if not args.quick else (2, 1)
    new_tokens = cfg.max_new_tokens if not args.quick else 6
    model, tok, model_hash = runtime.load(args.model, dtype=runtime.compute_dtype())
    gen = TransformersGenerator(model, tok, model_hash)
    plain = TransformersGenerator(model, tok, model_hash, encode_once=False)
    items = oasst_items(count)
    rows = []
    for label, method, fast, stops in VARIANTS:
        judge = Judge(gen if fast else plain, Template.load(cfg.template), method=method, samples=cfg.samples,
                      sampling=Sampling(cfg.temperature, cfg.top_p, new_tokens), max_prompt_tokens=cfg.max_prompt_tokens,
                      max_response_tokens=cfg.max_response_tokens, fast=fast)
        if not stops:
            judge.stops = []
        kept = {}
        seconds, times = median_seconds(lambda: kept.__setitem__("out", judge.judge(
            items, seed=0, batch_size=cfg.batch_size, label="")), repeats)
        scores = [j.score for r in kept["out"] for j in r]
        rows.append({"variant": label, "seconds": seconds, "times": times,
                     "scored": sum(s is not None for s in scores) / len(scores)})
        print(label, f"{seconds:.1f} s", flush=True)
    prompt_tokens = [len(judge.prefix_ids) + len(judge.suffix_ids(*item)) for item in items]
    data = {"candidates": count, "samples": cfg.samples, "max_new_tokens": new_tokens, "batch_size": cfg.batch_size,
            "dtype": str(model.dtype).removeprefix("torch."), "mean_prompt_tokens": sum(prompt_tokens) / count,
            "rubric_tokens": len(judge.prefix_ids), "rows": rows, "machine": machine()}
    write_result(args.out, "judge", section(data), data)


def section(d: dict) -> str:
    base = d["rows"][0]["seconds"]
    body = [[r["variant"], f"{r['seconds']:.1f}", f"{d['candidates'] / r['seconds']:.2f}",
             f"{base / r['seconds']:.2f}x", f"{r['scored']:.0%}"] for r in d["rows"]]
    total = base / d["rows"][-1]["seconds"]
    return "\n".join([
        "## Judge stage: fast paths", "",
        table(["judge", "seconds", "candidates/s", "speed-up over plain", "judgements with a score"], body), "",
        f"{d['candidates']} OASST (question, reply) pairs x {d['samples']} samples, up to {d['max_new_tokens']} new "
        f"tokens, batch {d['batch_size']}, {d['dtype']}; judge prompts average {d['mean_prompt_tokens']:.0f} tokens, "
        f"{d['rubric_tokens']} of them the shared rubric. Target: all fast paths together >= {TARGET:.0f}x the plain "
        f"judge: **{total:.2f}x, {'met' if total >= TARGET else 'missed'}**.", "",
        "Command: `python bench/judge.py`."])


if __name__ == "__main__":
    main()
