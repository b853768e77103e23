"""Instruction-following accuracy from checked answers, with bootstrap intervals over prompts.

Input: per prompt the instruction kinds it carries and whether the answer followed each.
  prompt_accuracy       share of prompts whose answer follows every instruction (IFEval's
                        "prompt-level strict accuracy").
  instruction_accuracy  share of all instructions followed, pooled over prompts
                        ("instruction-level").
Both get a 95% percentile interval from resampling prompts with replacement: a prompt's
instructions are answered by one reply, so prompts, not instructions, are the unit.
"""

from __future__ import annotations

from collections import defaultdict

from .rm_metrics import group_bootstrap


def summarise(checked: list[list[tuple[str, bool]]], *, resamples: int, seed: int) -> dict:
    """checked: per prompt, (kind, followed) for each instruction -> metrics."""
    prompts = len(checked)
    per_prompt = [(len(found), sum(ok for _, ok in found)) for found in checked]
    instructions, followed = sum(n for n, _ in per_prompt), sum(k for _, k in per_prompt)
    all_followed = [(1, int(n == k)) for n, k in per_prompt]
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for found in checked:
        for kind, ok in found:
            by_kind[kind].append(ok)
    prompt_low, prompt_high = group_bootstrap(all_followed, resamples=resamples, seed=seed)
    instruction_low, instruction_high = group_bootstrap(per_prompt, resamples=resamples, seed=seed)
    return {
        "prompts": prompts,
        "instructions": instructions,
        "prompts_followed": sum(k for _, k in all_followed),
        "instructions_followed": followed,
        "prompt_accuracy": round(sum(k for _, k in all_followed) / prompts, 6) if prompts else None,
        "prompt_accuracy_ci95_low": prompt_low,
        "prompt_accuracy_ci95_high": prompt_high,
        "instruction_accuracy": round(followed / instructions, 6) if instructions else None,
        "instruction_accuracy_ci95_low": instruction_low,
        "instruction_accuracy_ci95_high": instruction_high,
        "by_kind": {kind: {"instructions": len(oks), "accuracy": round(sum(oks) / len(oks), 6)}
                    for kind, oks in sorted(by_kind.items())},
    }
