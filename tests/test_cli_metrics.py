"""`srlm metrics` on hand-written metrics files: pointwise scores, paired differences, and a
position-biased evaluator's games shown as uninformative rather than as a 50% win rate."""

from __future__ import annotations

import json
import shutil

from conftest import REPO
from typer.testing import CliRunner

from srlm_core.cli import app
from srlm_core.reporting.summary import score_diff_text, win_rate_text

BIASED = {"matchup": "M1_vs_SFT", "a": "M1", "b": "SFT", "evaluator": "local:M0", "games": 4, "wins": 0, "ties": 4,
          "losses": 0, "win_rate": 0.5, "win_rate_ci95_low": 0.5, "win_rate_ci95_high": 0.5,
          "first_position_rate": 1.0, "first_position_rate_ci95_low": 1.0, "first_position_rate_ci95_high": 1.0,
          "informative": False, "games_skipped": 12,
          "uninformative_reason": "evaluator picks the first position in 100% of verdicts",
          "score_diff": 0.125, "score_diff_ci95_low": -0.05, "score_diff_ci95_high": 0.3, "score_a_higher": 0.625}


def _run(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "metrics" / "h2h").mkdir(parents=True)
    (tmp_path / "metrics" / "h2h" / "M1_vs_SFT.json").write_text(json.dumps(BIASED))
    (tmp_path / "metrics" / "M1").mkdir()
    (tmp_path / "metrics" / "M1" / "scores.json").write_text(json.dumps(
        {"model": "M1", "judge": "local:M0", "score_mean": 2.4, "score_mean_ci95_low": 2.1, "score_mean_ci95_high": 2.7}))
    return tmp_path


def test_texts_say_uninformative_instead_of_a_win_rate():
    assert win_rate_text(BIASED) == ("uninformative: evaluator picks the first position in 100% of verdicts; "
                                     "12 games skipped")
    assert win_rate_text({**BIASED, "informative": True}) == "0.500 [0.500, 0.500]"
    assert win_rate_text({k: v for k, v in BIASED.items() if k != "informative"}) == "0.500 [0.500, 0.500]"
    assert score_diff_text(BIASED) == "+0.125 [-0.050, +0.300]" and score_diff_text({}) == "-"


def test_metrics_shows_scores_differences_and_the_gate(tmp_path):
    root = _run(tmp_path)
    shown = json.loads(CliRunner().invoke(app, ["metrics", "--root", str(root), "--json"]).stdout)
    m1 = next(m for m in shown["models"] if m["model"] == "M1")
    assert (m1["score_mean"], m1["judge"]) == (2.4, "local:M0")
    (matchup,) = shown["matchups"]
    assert matchup["informative"] is False and matchup["score_diff"] == 0.125
    text = CliRunner().invoke(app, ["metrics", "--root", str(root)]).stdout
    assert "uninformative" in text and "+0.125" in text and "2.400 [2.100, 2.700]" in text


def test_metrics_prints_names_and_reasons_as_written(tmp_path):
    """Cells are data, not rich markup: an evaluator named with brackets is shown, a "[/]" does not crash."""
    root = _run(tmp_path)
    odd = {**BIASED, "evaluator": "endpoint:[lab]", "uninformative_reason": "picks A [/] always"}
    (root / "metrics" / "h2h" / "M1_vs_SFT.json").write_text(json.dumps(odd))
    result = CliRunner().invoke(app, ["metrics", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "endpoint:[lab]" in result.stdout and "[/]" in result.stdout
