"""Smoke test: bench/eventlog_scale.py --quick runs end to end and writes its result file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_eventlog_scale_quick(tmp_path):
    out = tmp_path / "eventlog_scale.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "eventlog_scale.py"), "--out", str(out), "--quick",
                    "--workdir", str(tmp_path)], check=True, cwd=ROOT, timeout=120, capture_output=True)
    result = json.loads(out.read_text())
    assert result["name"] == "eventlog_scale" and result["section"].startswith("## Event log at scale")
    data = result["data"]
    assert data["quick"] and len(data["append"]["iterations"]) == data["sizes"]["iterations"]
    assert data["append"]["ratio_last_first"] > 0 and data["append"]["peak_mib"] > 0
    assert data["pairs"]["runs"][0]["prompts"] == data["generate"]["prompts"]
    assert data["pairs"]["runs"][0]["pairs"] > 0 and data["pairs"]["peak_mib"] > 0
    assert "| what | rows | median s | peak MiB | target | met? |" in result["section"]
