"""Does sampling give the same tokens twice for one seed on this machine? Greedy and sampled, with
the dynamic and the static KV cache, three runs each, on gpu_loop's random Llama model; each run's
throughput is reported, so the cost of `--deterministic` (PyTorch's deterministic algorithms and
a fixed cuBLAS workspace, set before CUDA starts) shows beside its effect.

    python bench/gpu_determinism.py --tokenizer models/M0 --out determinism.json [--new-tokens 64] [--deterministic both]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.gpu_loop import SIZES, build, text  # noqa: E402
from srlm_core.engine import runtime  # noqa: E402
from srlm_core.engine.backend import Sampling  # noqa: E402
from srlm_core.engine.prompts import chat_prompt_ids  # noqa: E402
from srlm_core.engine.transformers_backend import sample  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", choices=sorted(SIZES), default="0.4b")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--deterministic", choices=("off", "cublas", "algorithms", "both"), default="off",
                        help="cublas: CUBLAS_WORKSPACE_CONFIG=:4096:8; algorithms: "
                        "torch.use_deterministic_algorithms(True); both: the two")
    args = parser.parse_args()
    if args.deterministic in ("cublas", "both"):
        # cuBLAS reads this when its first handle is made: before any CUDA work (importing torch does none).
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.use_deterministic_algorithms(args.deterministic in ("algorithms", "both"))
    report = {"new_tokens": args.new_tokens, "deterministic": args.deterministic}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, _ = build(args.tokenizer, args.size, Path(tmp) / "M1")
        model, tok, _ = runtime.load(model_dir)
        prompts = [chat_prompt_ids(tok, f"Question {i}: {text(i, 12)}?") for i in range(64)]
        for name, temperature, static in (("greedy_dynamic", 0.0, False), ("sampled_dynamic", 0.7, False),
                                          ("sampled_static", 0.7, True)):
            sampling = Sampling(temperature, 0.9, args.new_tokens)
            runs, rates = [], []
            sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
            for _ in range(3):
                sync()
                start = time.perf_counter()
                out = sample(model, tok, prompts, n=4, sampling=sampling, seed=0, batch_size=64, label="",
                             static_cache=static)
                sync()
                rates.append(sum(s.num_tokens for r in out for s in r) / (time.perf_counter() - start))
                runs.append(out)
            report[name] = {"warm_runs_identical": runs[1] == runs[2], "all_identical": runs[0] == runs[1] == runs[2],
                            "tok_per_s": rates}
            print(name, report[name], flush=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
