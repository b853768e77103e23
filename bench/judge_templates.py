"""The judge templates compared on real human-ranked replies, and the judge's own noise.

For each template (v1, the short one; v2, every element of the paper's Figure 2 prompt in its
order) the model judges every reply of the first --groups ranked groups of OASST1's English
validation split (../shared/data), 3 samples each:
  probability method: mean expected score, agreement with the human ranking (pairwise accuracy
                      with a bootstrap interval over groups), and the noise: the standard deviation
                      of a reply's 3 samples, averaged over replies;
  text method:        the share of samples that end in a parseable `Score: N` (the paper's parse).
The noise sets pairs.min_margin: a candidate's score is the mean of 3 samples, so the difference
of two candidates' scores has standard deviation sd * sqrt(2/3).

    python bench/judge_templates.py --out bench/results/judge_templates.json [--groups 20]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, table  # noqa: E402
from srlm_core.engine import runtime  # noqa: E402
from srlm_core.engine.backend import Sampling  # noqa: E402
from srlm_core.engine.transformers_backend import TransformersGenerator  # noqa: E402
from srlm_core.judges.judge import Judge, Template  # noqa: E402
from srlm_core.params import DataParams, JudgeParams  # noqa: E402
from srlm_core.reporting import rm_metrics  # noqa: E402
from srlm_core.steps import seed as seed_data  # noqa: E402

OASST = ROOT.parent / "shared" / "data" / "oasst1" / "oasst1-en-validation.messages.jsonl"
TEMPLATES = {"v1": "srlm_core/templates/judge_additive_v1.txt", "v2": "srlm_core/templates/judge_additive_v2.txt"}


def ranked_replies(groups: int) -> list[dict]:
    data = seed_data.build(DataParams(source=str(OASST), eval_fraction=0.0))
    rows = data.groups.to_pylist()
    keep = list(dict.fromkeys(r["prompt_id"] for r in rows))[:groups]
    return [r for r in rows if r["prompt_id"] in set(keep)]


def judged(judge: Judge, replies: list[dict], seed: int) -> list[list[float | None]]:
    out = judge.judge([(r["prompt"], r["reply"]) for r in replies], seed=seed, batch_size=8,
                      label=f"{judge.method}: {len(replies)} replies")
    return [[j.score for j in row] for row in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "M0")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "judge_templates.json")
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=JudgeParams().max_new_tokens)
    args = parser.parse_args()
    cfg = JudgeParams()
    model, tokenizer, model_hash = runtime.load(args.model)
    gen = TransformersGenerator(model, tokenizer, model_hash)
    replies = ranked_replies(args.groups)
    result = {"machine": machine(), "model": model_hash, "groups": args.groups, "replies": len(replies),
              "samples": cfg.samples, "max_new_tokens": args.max_new_tokens, "templates": {}}
    rows = []
    for name, path in TEMPLATES.items():
        def make(method: str) -> Judge:
            return Judge(gen, Template.load(path), method=method, samples=cfg.samples,
                         sampling=Sampling(cfg.temperature, cfg.top_p, args.max_new_tokens),
                         max_prompt_tokens=cfg.max_prompt_tokens, max_response_tokens=cfg.max_response_tokens)

        probability = judged(make("probability"), replies, seed=7)
        text = judged(make("text"), replies, seed=7)
        metrics = rm_metrics.compute([{"group_id": r["prompt_id"], "reply_id": r["reply_id"], "human_rank": r["rank"],
                                       "samples": s} for r, s in zip(replies, probability)])
        sds = [statistics.pstdev(s) for s in probability]
        parsed = [s is not None for row in text for s in row]
        entry = {"mean_score": statistics.fmean(s for row in probability for s in row),
                 "sample_sd_mean": statistics.fmean(sds), "sample_sd_median": statistics.median(sds),
                 "difference_sd": statistics.fmean(sds) * math.sqrt(2 / cfg.samples),
                 "pairwise_accuracy": metrics["pairwise_accuracy"],
                 "pairwise_accuracy_ci95": [metrics["pairwise_accuracy_ci95_low"],
                                            metrics["pairwise_accuracy_ci95_high"]],
                 "pairs": metrics["pairs"], "text_parse_rate": sum(parsed) / len(parsed),
                 "text_samples": len(parsed)}
        result["templates"][name] = entry
        rows.append([name, f"{entry['mean_score']:.2f}", f"{entry['sample_sd_mean']:.3f}",
                     f"{entry['difference_sd']:.3f}",
                     f"{entry['pairwise_accuracy']:.3f} [{entry['pairwise_accuracy_ci95'][0]:.3f}, "
                     f"{entry['pairwise_accuracy_ci95'][1]:.3f}] of {entry['pairs']}",
                     f"{sum(parsed)}/{len(parsed)}"])
    print(table(["template", "mean score (probability)", "sample sd", "sd of a difference of 3-sample means",
                 "pairwise accuracy [95% CI]", "text method parsed"], rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
