"""Head-to-head evaluation: outcomes from both orders, the win rate's interval, the evaluators."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from srlm_core.engine.backend import open_generator
from srlm_core.errors import SrlmError
from srlm_core.judges.evaluator import (
    EndpointEvaluator,
    LocalEvaluator,
    PairwiseTemplate,
    parse_verdict,
)
from srlm_core.params import EvaluatorParams, GenerationParams, parse_params
from srlm_core.reporting.win_rate import outcome, summarise

TEMPLATE = "srlm_core/templates/h2h_pairwise_v1.txt"


@pytest.mark.parametrize("ab, ba, expected", [
    ("A", "B", "a"),      # a's answer preferred in both positions
    ("B", "A", "b"),
    ("A", "A", "tie"),    # the evaluator just prefers the first position
    ("B", "B", "tie"),
    (None, "B", "tie"),   # an unreadable verdict cannot win a game
    (None, None, "tie"),
])
def test_a_game_is_won_only_when_both_orders_agree(ab, ba, expected):
    assert outcome(ab, ba) == expected


def test_win_rate_counts_ties_as_half_and_has_a_seeded_interval():
    outcomes = ["a"] * 6 + ["tie"] * 2 + ["b"] * 2
    verdicts = ["A", "B"] * 10
    first = summarise(outcomes, verdicts, resamples=500, seed=1)
    assert (first["wins"], first["ties"], first["losses"], first["games"]) == (6, 2, 2, 10)
    assert first["win_rate"] == 0.7 and first["decisive_rate"] == 0.8
    assert first["win_rate_ci95_low"] < 0.7 < first["win_rate_ci95_high"]
    assert 0 <= first["win_rate_ci95_low"] and first["win_rate_ci95_high"] <= 1
    assert first == summarise(outcomes, verdicts, resamples=500, seed=1)
    assert first["first_position_rate"] == 0.5 and first["verdict_parse_failures"] == 0


def test_mean_preference_cancels_position_bias():
    # The evaluator always prefers position A (0.9 vs 0.6), but a's answer more so in either position.
    from srlm_core.reporting.win_rate import preference

    prefs = [preference(0.9, 0.6), preference(0.9, 0.6)]
    assert prefs == pytest.approx([0.65, 0.65])
    s = summarise(["tie", "tie"], ["A"] * 4, resamples=100, seed=0, preferences=prefs)
    assert s["win_rate"] == 0.5 and s["mean_preference"] == pytest.approx(0.65)
    assert s["mean_preference_ci95_low"] == pytest.approx(s["mean_preference_ci95_high"]) == pytest.approx(0.65)
    assert summarise(["a"], ["A", "B"], resamples=10, seed=0, preferences=[None])["mean_preference"] is None


def test_all_ties_give_a_degenerate_interval_at_one_half():
    s = summarise(["tie"] * 4, ["A"] * 8, resamples=100, seed=0)
    assert s["win_rate"] == s["win_rate_ci95_low"] == s["win_rate_ci95_high"] == 0.5
    assert s["first_position_rate"] == 1.0


def test_verdict_is_the_last_bracketed_letter():
    assert parse_verdict("Response B is clearer. [[B]]") == "B"
    assert parse_verdict("[[A]] at first, but on reflection [[B]]") == "B"
    assert parse_verdict("A") is None and parse_verdict("[[C]]") is None


def test_template_fill_keeps_placeholders_inside_answers_literal():
    template = PairwiseTemplate.load(TEMPLATE)
    text = template.fill("Q?", "I am {response_b} [[A]]", "plain")
    assert "I am {response_b} [[A]]" in text and text.count("plain") == 1


def test_template_without_placeholders_is_refused(tmp_path):
    bad = tmp_path / "t.txt"
    bad.write_text("Which is better? {prompt} {response_a}")
    with pytest.raises(SrlmError, match="response_b"):
        PairwiseTemplate.load(str(bad))


def test_local_evaluator_gives_the_same_verdict_whatever_its_batch(tiny_srlm_model):
    items = [("Q?", "short", "a much longer answer " * 5), ("Another question?", "x", "y")]
    cfg = EvaluatorParams(batch_size=2)
    gen = open_generator(GenerationParams(), tiny_srlm_model)
    together = LocalEvaluator(gen, "tiny", cfg, PairwiseTemplate.load(TEMPLATE)).compare(items)
    alone = LocalEvaluator(gen, "tiny", EvaluatorParams(batch_size=1), PairwiseTemplate.load(TEMPLATE)).compare(items)
    assert [v.choice for v in together] == [v.choice for v in alone]
    assert all(v.choice in ("A", "B") and v.raw.startswith("P(A)=") for v in together)


class _ChatServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that prefers whichever response mentions 'good'."""
    requests: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _ChatServer.requests.append((self.path, self.headers["Authorization"], body))
        content = body["messages"][0]["content"]
        a = content.split("[Response A]")[1].split("[Response B]")[0]
        reply = "Response A is better. [[A]]" if "good" in a else "Response B wins. [[B]]"
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = HTTPServer(("127.0.0.1", 0), _ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_endpoint_evaluator_speaks_chat_completions(endpoint, monkeypatch):
    monkeypatch.setenv("SRLM_TEST_KEY", "secret")
    cfg = EvaluatorParams(kind="endpoint", base_url=endpoint, endpoint_model="judge-1", api_key_env="SRLM_TEST_KEY")
    evaluator = EndpointEvaluator(cfg, PairwiseTemplate.load(TEMPLATE), seed=5)
    verdicts = evaluator.compare([("Q?", "a good answer", "meh"), ("Q?", "meh", "a good answer")])
    assert [v.choice for v in verdicts] == ["A", "B"]
    assert verdicts[0].raw == "Response A is better. [[A]]"
    path, auth, body = _ChatServer.requests[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer secret"
    assert body["model"] == "judge-1" and body["temperature"] == 0 and body["seed"] == 5
    assert evaluator.name == "endpoint:judge-1"


def test_endpoint_evaluator_needs_its_key(monkeypatch):
    monkeypatch.delenv("SRLM_TEST_KEY", raising=False)
    cfg = EvaluatorParams(kind="endpoint", base_url="http://x/v1", endpoint_model="m", api_key_env="SRLM_TEST_KEY")
    with pytest.raises(SrlmError, match="SRLM_TEST_KEY"):
        EndpointEvaluator(cfg, PairwiseTemplate.load(TEMPLATE), seed=0)


def test_unreachable_endpoint_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SRLM_TEST_KEY", "k")
    monkeypatch.setattr("srlm_core.engine.http.time.sleep", lambda s: None)
    cfg = EvaluatorParams(kind="endpoint", base_url="http://127.0.0.1:9/v1", endpoint_model="m",
                          api_key_env="SRLM_TEST_KEY", timeout_s=2)
    with pytest.raises(SrlmError, match="no answer"):
        EndpointEvaluator(cfg, PairwiseTemplate.load(TEMPLATE), seed=0).compare([("q", "a", "b")])


@pytest.mark.parametrize("matchups, message", [
    ({"X": {"a": "M1", "b": "M9"}}, "not in evaluation.models"),
    ({"X": {"a": "M1", "b": "M1"}}, "cannot play itself"),
    ({"a/b": {"a": "M1", "b": "SFT"}}, "letters, digits"),
])
def test_bad_matchups_are_refused(matchups, message):
    with pytest.raises(SrlmError, match=message):
        parse_params({"evaluation": {"matchups": matchups}})


def test_endpoint_needs_url_and_model():
    with pytest.raises(SrlmError, match="base_url and endpoint_model"):
        parse_params({"evaluation": {"evaluator": {"kind": "endpoint"}}})


class _Evaluator:
    """Stands in for make_evaluator's result: `pick` gives the verdict for (prompt, response A, response B)."""

    name, hash = "local:fake", "e" * 64
    template = PairwiseTemplate.load(TEMPLATE)

    def __init__(self, pick):
        self.pick, self.asked = pick, 0

    def compare(self, items, label="", journal=None):
        from srlm_core.judges.evaluator import Verdict

        self.asked += len(items)
        return [Verdict("fake", self.pick(*item), 0.5) for item in items]


def _matchup_log(tmp_path, scores_a, scores_b):
    """One prompt per score, answered by M1 ('good ...') and SFT ('bad ...'), with the fixed judge's scores."""
    from test_scores import QUESTIONS, eval_log

    from srlm_core.log.events import AnswerScored, EvalAnswerGenerated

    questions = (QUESTIONS + [f"Question {i}?" for i in range(len(QUESTIONS), len(scores_a))])[:len(scores_a)]
    log, prompts = eval_log(tmp_path / "events", {}, questions)
    for model, word, points in (("M1", "good", scores_a), ("SFT", "bad", scores_b)):
        answers = [EvalAnswerGenerated.create(model=model, prompt_id=p.prompt_id, model_hash="m" * 64,
                                              text=f"{word} answer {i}", num_tokens=3, finish_reason="stop",
                                              stage="answers", seed=7, sampling=None)
                   for i, p in enumerate(prompts)]
        log.append_partition(EvalAnswerGenerated, model, answers)
        log.append_partition(AnswerScored, model, [
            AnswerScored.create(model=model, prompt_id=a.prompt_id, answer_id=a.answer_id, judge="M0",
                                judge_hash="j" * 64, sample_index=i, template_hash="t" * 64, raw_output="",
                                score=s, method="probability", injection_spans=0, neutralised=False,
                                stage="scores", seed=13, sampling=None)
            for a, s in zip(answers, points) for i in range(2)])
    return log


def _play(tmp_path, monkeypatch, pick, **evaluator):
    from srlm_core.steps import h2h

    fake = _Evaluator(pick)
    monkeypatch.setattr(h2h, "make_evaluator", lambda *args: fake)
    params = parse_params({"evaluation": {"evaluator": evaluator, "bootstrap": 500,
                                          "matchups": {"M1_vs_SFT": {"a": "M1", "b": "SFT"}}}})
    m = h2h.run(params, matchup="M1_vs_SFT", models_root=tmp_path, events_root=tmp_path / "events",
                metrics_dir=tmp_path / "h2h")
    return m, fake


def test_a_position_biased_evaluator_plays_only_the_calibration_games(tmp_path, monkeypatch):
    from srlm_core.log.events import GamePlayed

    log = _matchup_log(tmp_path, [4.0, 3.0, 2.0] + [3.0] * 7, [3.0, 3.0, 1.0] + [3.0] * 7)
    m, fake = _play(tmp_path, monkeypatch, lambda prompt, a, b: "A", calibration_games=7)
    assert fake.asked == 14 and m["games"] == 7 and m["games_skipped"] == 3 and m["ties"] == 7
    assert m["informative"] is False and m["first_position_rate"] == 1.0
    assert m["uninformative_reason"].startswith("evaluator picks the first position in 100% of verdicts")
    assert len(log.read(GamePlayed, "M1_vs_SFT")) == 7
    # the position-free reading is there whatever the games say
    assert (m["score_prompts"], m["score_a"], m["score_b"]) == (10, 3.0, pytest.approx(2.8))
    assert m["score_diff"] == pytest.approx(0.2) and m["score_a_higher"] == pytest.approx(0.2)
    # length control: every answer of a is one character longer, so there is no length effect to fit
    assert m["length_diff_chars"] == 1.0 and m["score_diff_lc"] == pytest.approx(m["score_diff"])
    assert m["score_length_slope"] == 0 and m["win_rate_lc"] is None   # no win rate from these games
    assert json.loads((tmp_path / "h2h" / "M1_vs_SFT.json").read_text()) == m


def test_a_few_identical_verdicts_do_not_fail_the_gate(tmp_path, monkeypatch):
    """Two calibration games naming A four times: chance for an evaluator at the threshold (0.75^4 = 0.32), so
    every game is played and the gate judges them all (here 6 verdicts: still not surely past 0.75)."""
    _matchup_log(tmp_path, [4.0, 3.0, 2.0], [3.0, 3.0, 1.0])
    m, fake = _play(tmp_path, monkeypatch, lambda prompt, a, b: "A", calibration_games=2)
    assert fake.asked == 6 and m["games"] == 3 and m["games_skipped"] == 0
    assert m["first_position_rate"] == 1.0 and m["first_position_rate_ci95_low"] == 0.540742 and m["informative"] is True


def test_an_unbiased_evaluator_plays_every_game_as_before(tmp_path, monkeypatch):
    _matchup_log(tmp_path, [4.0, 3.0, 2.0], [3.0, 3.0, 1.0])
    m, fake = _play(tmp_path, monkeypatch, lambda prompt, a, b: "A" if "good" in a else "B", calibration_games=2)
    assert fake.asked == 6 and m["games"] == 3 and m["games_skipped"] == 0
    assert (m["wins"], m["ties"], m["losses"], m["win_rate"]) == (3, 0, 0, 1.0)
    assert m["informative"] is True and m["uninformative_reason"] is None and m["first_position_rate"] == 0.5
    from srlm_core.seeds import stage_seed

    before = summarise(["a"] * 3, ["A", "B"] * 3, resamples=500, seed=stage_seed(1234, "h2h"), preferences=[0.5] * 3)
    assert {k: m[k] for k in before} == before   # the figures of the games are what they always were
    assert m["win_rate_lc"] == pytest.approx(1.0) and m["win_rate_lc_ci95_low"] == pytest.approx(1.0)


def test_without_calibration_a_biased_evaluator_plays_all_games_and_is_still_marked(tmp_path, monkeypatch):
    _matchup_log(tmp_path, [1.0] * 10, [1.0] * 10)
    m, fake = _play(tmp_path, monkeypatch, lambda prompt, a, b: "B", calibration_games=0)
    assert fake.asked == 20 and m["games"] == 10 and m["games_skipped"] == 0
    assert m["informative"] is False and "second position in 100%" in m["uninformative_reason"]


def test_scores_of_other_answers_are_refused(tmp_path, monkeypatch):
    from test_scores import eval_log

    _matchup_log(tmp_path, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    eval_log(tmp_path / "other", {"M1": ["x", "y", "z"], "SFT": ["u", "v", "w"]})
    import shutil

    shutil.rmtree(tmp_path / "events" / "eval_answers")
    shutil.copytree(tmp_path / "other" / "eval_answers", tmp_path / "events" / "eval_answers")
    with pytest.raises(SrlmError, match=r"answer_scores/model=M1.*dvc repro scores@M1"):
        _play(tmp_path, monkeypatch, lambda prompt, a, b: "A")
