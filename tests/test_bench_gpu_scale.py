"""Smoke test of bench/gpu_scale.py --tiny: the code paths the GPU run takes (issue 23 point 5) run on a CPU."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_gpu_scale_tiny_runs_every_path(tokenizer_dir, tmp_path):
    out = tmp_path / "gpu_scale.json"
    done = subprocess.run([sys.executable, "bench/gpu_scale.py", "--tokenizer", str(tokenizer_dir), "--out", str(out),
                           "--tiny", "--steps", "1", "--profile", "--scratch", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(out.read_text())["runs"]
    assert [(r["method"], r["gradient_checkpointing"]) for r in runs] == [("lora", True), ("full", False)]
    for r in runs:
        assert r["sft"]["tokens_per_step"] > 0   # seconds and MFU: measured, not asserted (a busy CPU's noise)
        assert {"seconds_per_step", "mfu", "peak_gib"} <= r["sft"].keys()
        assert r["sft"]["predicted_gib"] > 0 and r["sft"]["final_loss"] == r["sft"]["final_loss"]   # no NaN
    assert runs[0]["dpo"]["kind"] == "dpo-lora" and runs[0]["dpo"]["steps"] == 1
    assert "dpo" not in runs[1]
    assert "Self CPU" in runs[1]["sft"]["profile"] and "profile" not in runs[0]["sft"]   # --profile: full FT only
