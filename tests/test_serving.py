"""`generation.backend: openai` without vLLM: params, `srlm serve --dry-run`, and the errors a stage
gives when no server serves its model. The backend against a real vLLM server is
tests/test_openai_backend.py (`make test-vllm`)."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from srlm_core.cli import app
from srlm_core.engine.backend import open_generator
from srlm_core.engine.serving import serve_command, served_name
from srlm_core.errors import SrlmError
from srlm_core.log.lineage import write_manifest
from srlm_core.params import GenerationParams, parse_params

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def model(tiny_model_dir, tmp_path):
    out = tmp_path / "models" / "M2"
    shutil.copytree(tiny_model_dir, out)
    write_manifest(out, name="M2", kind="dpo", parent=None, training_data=None, params={})
    return out


def test_params():
    cfg = GenerationParams.model_validate({"backend": "openai", "openai": {"servers": ["http://h:8001/v1/"]}})
    assert cfg.openai.servers == ["http://h:8001/v1"] and cfg.openai.concurrency > 0
    with pytest.raises(ValidationError, match="not an http"):
        GenerationParams.model_validate({"backend": "openai", "openai": {"servers": ["h:8001"]}})
    with pytest.raises(ValidationError):
        GenerationParams.model_validate({"openai": {"servers": []}})
    with pytest.raises(SrlmError, match=r"dpo\.eval_steps > 0 .*no server serves; with generation\.backend: openai set "
                                        r"dpo\.eval_steps: 0"):
        parse_params({"generation": {"backend": "openai"}, "dpo": {"eval_steps": 4}})
    assert parse_params({"generation": {"backend": "openai"}}).dpo.eval_steps == 0


def test_served_name_is_the_folder_and_the_content_hash(model):
    manifest = json.loads((model / "manifest.json").read_text())
    assert served_name(model) == f"M2-{manifest['hash'][:16]}"


def test_serve_command_runs_the_server_as_the_in_process_engine_is_set(model):
    cfg = GenerationParams.model_validate({"dtype": "float32", "vllm": {"max_model_len": 100000, "cpu_kvcache_gib": 2}})
    argv, env = serve_command(model, cfg, host="0.0.0.0", port=8002, python="py")
    line = " ".join(argv)
    assert argv[:5] == ["py", "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)]
    for part in (f"--served-model-name {served_name(model)}", "--port 8002", "--host 0.0.0.0", "--dtype float32",
                 "--max-logprobs 20", "--generation-config vllm", "--enable-prefix-caching", "--enforce-eager"):
        assert part in line
    max_positions = json.loads((model / "config.json").read_text())["max_position_embeddings"]
    assert f"--max-model-len {max_positions}" in line          # capped at the model's positions
    assert env == {"VLLM_CPU_KVCACHE_SPACE": "2"}


def test_srlm_serve_dry_run(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    result = CliRunner().invoke(app, ["serve", "M2", "--port", "8003", "--dry-run", "--python", "py"])
    assert result.exit_code == 0, result.output
    assert f"--served-model-name {served_name(model)}" in result.output and "--port 8003" in result.output
    missing = CliRunner().invoke(app, ["serve", "M9", "--dry-run"])
    assert missing.exit_code != 0 and "models/M9 is not a model of this run" in str(missing.exception)


class _Models(BaseHTTPRequestHandler):
    """A server that lists one model and answers nothing else."""
    def do_GET(self):  # noqa: N802
        data = json.dumps({"object": "list", "data": [{"id": "M1-0000000000000000"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_a_stage_refuses_servers_that_do_not_serve_its_model(model):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        cfg = GenerationParams.model_validate({"backend": "openai", "openai": {"servers": [url]}})
        with pytest.raises(SrlmError, match=r"no server .* serves .*M2.*M1-0000000000000000.*srlm serve M2"):
            open_generator(cfg, model)
    finally:
        httpd.shutdown()


def test_no_server_at_all_is_a_clear_error(model, monkeypatch):
    monkeypatch.setattr("srlm_core.engine.http.time.sleep", lambda s: None)
    cfg = GenerationParams.model_validate({"backend": "openai", "openai": {"servers": ["http://127.0.0.1:9/v1"],
                                                                           "attempts": 2}})
    with pytest.raises(SrlmError, match=r"127.0.0.1:9/v1/models: no answer after 2 attempt.*srlm serve"):
        open_generator(cfg, model)
