"""Smoke test of bench/dpo_step.py --quick: every setting trains, the result file has its section."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_dpo_step_quick(tmp_path):
    out = tmp_path / "dpo_step.json"
    done = subprocess.run([sys.executable, "bench/dpo_step.py", "--quick", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["name"] == "dpo_step"
    assert result["section"].startswith("## DPO step cost")
    settings = result["data"]["settings"]
    assert set(settings) == {"full-live-fp32", "full-pre-fp32", "full-live-bf16", "full-pre-bf16", "lora-fp32"}
    for r in settings.values():
        assert r["median_step_s"] > 0 and len(r["step_s"]) == 1
        assert all(loss == loss for loss in r["losses"])   # no NaN
    # the reference handling srlm relies on: no second model with precompute or LoRA, one without
    assert settings["full-pre-fp32"]["ref_model"] is None and settings["full-pre-fp32"]["precompute_s"] > 0
    assert settings["lora-fp32"]["ref_model"] is None and settings["lora-fp32"]["peft"]
    assert settings["full-live-fp32"]["ref_model"] is not None and settings["full-live-fp32"]["precompute_s"] == 0
    assert settings["full-pre-bf16"]["bf16"] and not settings["full-pre-fp32"]["bf16"]
    assert "| setting |" in result["section"]
