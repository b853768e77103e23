"""The generation and judge benchmarks run end to end (tiny model, tiny sizes) and write a section
for docs/benchmarks.md; bench/report.py joins result files."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str) -> dict:
    subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, check=True,
                   capture_output=True, text=True)
    return json.loads(Path(args[args.index("--out") + 1]).read_text())


def test_generation_and_judge_benchmarks_write_their_sections(tiny_srlm_model, tmp_path):
    gen = run_bench("generation.py", "--quick", "--no-peers", "--model", str(tiny_srlm_model),
                    "--out", str(tmp_path / "generation.json"))
    assert gen["section"].startswith("## Generation throughput")
    assert gen["data"]["ours_float32"]["tok_s"] > 0 and gen["data"]["limit_float32"]["tok_s"] > 0
    assert "naive loop" in gen["section"] and "where one batch's time goes" in gen["section"]
    judge = run_bench("judge.py", "--quick", "--model", str(tiny_srlm_model), "--out", str(tmp_path / "judge.json"))
    assert [r["scored"] for r in judge["data"]["rows"]][-1] == 1.0   # probability scoring always scores
    out = tmp_path / "benchmarks.md"
    subprocess.run([sys.executable, str(ROOT / "bench" / "report.py"), "--results", str(tmp_path), "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    text = out.read_text()
    assert text.startswith("# Benchmarks") and "## Generation throughput" in text and "## Judge stage" in text
    assert "Not in this run: dpo_step, eventlog_scale, e2e" in text
