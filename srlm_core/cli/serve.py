"""`srlm serve`: serve one model of the run for `generation.backend: openai`."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import typer

from ..engine.serving import serve_command
from ..errors import SrlmError
from ..params import load_params


def serve(
    model: str = typer.Argument(..., help="The model's folder under models/, e.g. M2."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: other machines too)."),
    python: str = typer.Option("", "--python", help="A Python that imports vllm (default: .venv-vllm/bin/python "
                               "if there, else this one)."),
    models: Path = typer.Option(Path("models"), "--models", help="The run's models folder."),
    params: Path = typer.Option(Path("params.yaml"), "--params", help="The run's params (generation.dtype, "
                                "generation.vllm)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the command instead of running it."),
) -> None:
    """Serve models/MODEL with vLLM's OpenAI-compatible server under the name the openai backend looks
    for (the folder and its content hash), in the dtype and with the vLLM settings of params.yaml; it
    runs until stopped. List http://HOST:PORT/v1 in generation.openai.servers.

    Example: srlm serve M2 --port 8002
    """
    model_dir = models / model
    if not (model_dir / "manifest.json").is_file():
        raise SrlmError(f"{model_dir} is not a model of this run (no manifest.json); `dvc repro` the stage that "
                        "writes it, or pass --models")
    python = python or (".venv-vllm/bin/python" if Path(".venv-vllm/bin/python").is_file() else sys.executable)
    argv, env = serve_command(model_dir, load_params(params).generation, host=host, port=port, python=python)
    if dry_run:
        print(" ".join([*(f"{k}={v}" for k, v in env.items()), *map(shlex.quote, argv)]))
        return
    if subprocess.run([python, "-c", "import vllm"], capture_output=True).returncode != 0:
        raise SrlmError(f"{python} cannot import vllm: `make test-vllm` builds .venv-vllm (CPU), `pip install vllm` "
                        "on a CUDA machine; or pass --python PATH")
    os.environ.update(env)
    sys.stdout.flush()
    os.execvp(argv[0], argv)
