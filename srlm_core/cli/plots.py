"""`srlm plots`: the pipeline's DVC plots as one HTML page that renders with no network."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import typer

from ..errors import SrlmError
from ..reporting.plots import html_template


def plots(
    revisions: list[str] = typer.Argument(None, help="Git revisions to compare (dvc plots diff); none: the workspace."),
    out: Path = typer.Option(Path("reports/plots_page"), "--out", "-o", help="Folder for index.html."),
) -> None:
    """Render the plots declared in dvc.yaml (`dvc plots show`) with Vega inlined, so the page opens offline.

    Example: srlm plots && chromium reports/plots_page/index.html
    """
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "offline.html"
        template.write_text(html_template(), encoding="utf-8")
        command = ["diff", *revisions] if revisions else ["show"]
        result = subprocess.run([sys.executable, "-m", "dvc", "plots", *command, "--html-template", str(template),
                                 "-o", str(out)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SrlmError(f"dvc plots {command[0]} failed: {result.stderr.strip() or result.stdout.strip()}")
    print(out / "index.html")
