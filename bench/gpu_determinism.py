"""Does sampling give the same tokens twice for one seed on this machine? Greedy and sampled, with
the dynamic and the static KV cache, three runs each, on gpu_loop's random Llama model.

    python bench/gpu_determinism.py --tokenizer models/M0 --out determinism.json [--new-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.gpu_loop import SIZES, build, text  # noqa: E402
from srlm_core import runtime  # noqa: E402
from srlm_core.generation import Sampling, sample  # noqa: E402
from srlm_core.judge import chat_prompt_ids  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", choices=sorted(SIZES), default="0.4b")
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    report = {"new_tokens": args.new_tokens}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, _ = build(args.tokenizer, args.size, Path(tmp) / "M1")
        model, tok, _ = runtime.load(model_dir)
        prompts = [chat_prompt_ids(tok, f"Question {i}: {text(i, 12)}?") for i in range(64)]
        for name, temperature, static in (("greedy_dynamic", 0.0, False), ("sampled_dynamic", 0.7, False),
                                          ("sampled_static", 0.7, True)):
            sampling = Sampling(temperature, 0.9, args.new_tokens)
            runs = [sample(model, tok, prompts, n=4, sampling=sampling, seed=0, batch_size=64, label="",
                           static_cache=static) for _ in range(3)]
            report[name] = {"warm_runs_identical": runs[1] == runs[2], "all_identical": runs[0] == runs[1] == runs[2]}
            print(name, report[name], flush=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
