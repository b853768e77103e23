"""`srlm report`: one self-contained HTML page (and a Markdown twin) summarising a run.

The page holds the models with their training, reward-modelling, instruction-following and head-to-head
metrics, the lineage chain with hashes, per-iteration statistics, the plots declared in
dvc.yaml (rendered to inline SVG by vl-convert, so no script or network is needed) and
relative links into the event log and metrics files. The Markdown version links the
same plots as SVG files beside it. Nothing time-dependent is written, so re-running on
the same run gives the same bytes.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import vl_convert

from ..errors import SrlmError
from ..log.eventlog import EventLog
from ..log.events import EVENT_TYPES
from ..storage import atomic_write_bytes
from .summary import collect, interval_text, preference_text

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}code{background:#f3f3f3;padding:0 3px}
figure{display:inline-block;margin:8px;vertical-align:top}"""


@dataclass
class Document:
    """Blocks rendered to both HTML and Markdown."""
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def text(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, headers: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", headers, [[_fmt(v) for v in row] for row in rows]))

    def figure(self, name: str, svg: str) -> None:
        self.blocks.append(("svg", name, svg))

    def links(self, items: list[tuple[str, str]]) -> None:
        self.blocks.append(("links", items))


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def to_html(doc: Document, title: str) -> str:
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h2":
            out.append(f"<h2>{html.escape(block[1])}</h2>")
        elif kind == "p":
            out.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block[2])
            out.append(f"<table><tr>{head}</tr>{body}</table>")
        elif kind == "svg":
            out.append(f"<figure id='{html.escape(block[1])}'>{block[2]}</figure>")
        elif kind == "links":
            items = "".join(f"<li><a href='{html.escape(href)}'>{html.escape(label)}</a></li>" for label, href in block[1])
            out.append(f"<ul>{items}</ul>")
    return "\n".join(out) + "\n</body></html>\n"


def to_markdown(doc: Document, title: str, figures_dir: str) -> str:
    out = [f"# {title}", ""]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h2":
            out += [f"## {block[1]}", ""]
        elif kind == "p":
            out += [block[1], ""]
        elif kind == "table":
            cells = lambda row: "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"  # noqa: E731
            out += [cells(block[1]), "|" + " --- |" * len(block[1]), *map(cells, block[2]), ""]
        elif kind == "svg":
            out += [f"![{block[1]}]({figures_dir}/{block[1]}.svg)", ""]
        elif kind == "links":
            out += [f"- [{label}]({href})" for label, href in block[1]] + [""]
    return "\n".join(out)


def plot_svgs(root: Path) -> dict[str, str]:
    """The plots of dvc.yaml, filled with this run's data by DVC and drawn as SVG."""
    result = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=root,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SrlmError(f"dvc plots show failed in {root}: {result.stderr.strip()}")
    plots = json.loads(result.stdout).get("data", {})
    return {name: vl_convert.vegalite_to_svg(entries[0]["content"])
            for name, entries in plots.items() if entries and entries[0].get("type") == "vega"}


def build(root: Path, out_dir: Path) -> Document:
    summary = collect(root)
    up = Path(os.path.relpath(root.resolve(), out_dir.resolve()))   # links are relative to the report

    def rel(path: str) -> str:
        return (up / path).as_posix()

    doc = Document()
    doc.heading("Models")
    doc.text("Reward modelling: the model judges held-out human-ranked replies (metrics defined in docs/metrics.md). "
             "Answer length: mean characters of its answers to the held-out prompts.")
    keys = ["model", "kind", "hash", "steps", "final_loss", "pairwise_accuracy", "95% CI", "exact_match", "spearman",
            "kendall", "top_scored_5", "parse_failure_rate", "answer_chars", "answer_tokens"]

    def cell(m: dict, key: str):
        if key == "hash":
            return (m["hash"] or "")[:12]
        if key == "95% CI":
            low, high = m["pairwise_accuracy_ci95_low"], m["pairwise_accuracy_ci95_high"]
            return "-" if low is None else f"[{low:.3f}, {high:.3f}]"
        return m[key]

    doc.table(keys, [[cell(m, k) for k in keys] for m in summary["models"]])
    doc.heading("Verifiable instructions")
    doc.text("Judge-free instruction following: each model answers prompts that carry checkable instructions (word "
             "and sentence counts, keywords, case, bullets, JSON, a title, an ending phrase), and code checks them. "
             "Prompt-level: share of prompts with every instruction followed; instruction-level: share of all "
             "instructions followed; 95% bootstrap intervals over prompts (docs/metrics.md).")
    doc.table(["model", "prompt-level [95% CI]", "instruction-level [95% CI]"],
              [[m["model"], interval_text(m, "prompt_accuracy"), interval_text(m, "instruction_accuracy")]
               for m in summary["models"]])
    doc.heading("Head to head")
    doc.text("Each game is played in both orders; a game is won only when both orders prefer the same model, else "
             "it is a tie. Win rate of a = (wins + ties/2) / games, with a bootstrap 95% interval.")
    doc.table(["matchup", "a", "b", "wins", "ties", "losses", "win rate", "95% CI", "first-position rate",
               "mean preference [95% CI]", "evaluator"],
              [[m["matchup"], m["a"], m["b"], m["wins"], m["ties"], m["losses"], m["win_rate"],
                f"[{m['win_rate_ci95_low']:.3f}, {m['win_rate_ci95_high']:.3f}]", m.get("first_position_rate"),
                preference_text(m), m["evaluator"]] for m in summary["matchups"]])
    doc.text("Mean preference (local evaluator only): P(a's answer is better) averaged over both orders, so the "
             "evaluator's position bias cancels; 0.5 = no difference. Not the paper's rule, a finer reading of the "
             "same games.")
    doc.heading("Lineage")
    doc.table(["model", "kind", "hash", "trained on", "data hash", "parent hash"],
              [[s["name"], s["kind"], s["hash"][:12], s["training_data"], (s["training_data_hash"] or "")[:12],
                (s["parent_hash"] or "")[:12]] for s in summary["lineage"]])
    doc.heading("Per iteration")
    doc.text("Reward-hacking monitor: candidates_with_injection counts the candidates whose text speaks to the judge "
             "(a score claim such as `Score: 5`, an instruction to the grader; srlm_core/judges/injection.py), and "
             "candidates_neutralised those whose judge-directed sentences were cut before judging (judge.injection). "
             "A count that grows from one iteration to the next means DPO is learning to address the judge.")
    iterations = summary["iterations"]
    if iterations:
        names = sorted({k for row in iterations.values() for k in row if k != "rejected_by_reason"})
        doc.table(["statistic", *iterations], [[name, *(row.get(name) for row in iterations.values())] for name in names])
        doc.table(["rejected prompts by reason", *iterations],
                  [[reason, *(row["rejected_by_reason"].get(reason, 0) for row in iterations.values())]
                   for reason in sorted({r for row in iterations.values() for r in row["rejected_by_reason"]})])
    doc.heading("Plots")
    for name, svg in plot_svgs(root).items():
        doc.figure(name, svg)
    doc.heading("Data")
    doc.text("Query any table with `srlm sql`, e.g. srlm sql \"select iteration, count(*) from pairs group by 1\".")
    events = EventLog(root / "data" / "events")
    doc.links([(f"{kind.TABLE}: {len(events.files(kind.TABLE))} files", rel(f"data/events/{kind.TABLE}"))
               for kind in EVENT_TYPES]
              + [("metrics/ (DVC metrics of every stage)", rel("metrics")),
                 ("reports/stats.json (per-iteration statistics)", rel("reports/stats.json")),
                 ("reports/plots/ (the plotted tables as CSV)", rel("reports/plots"))])
    return doc


def write(root: Path | str = ".", out_dir: Path | str = "reports") -> tuple[Path, Path]:
    root, out_dir = Path(root), Path(out_dir)
    out_dir = out_dir if out_dir.is_absolute() else root / out_dir
    doc = build(root, out_dir)
    title = "srlm run report"
    figures = "report_files"
    for block in doc.blocks:
        if block[0] == "svg":
            atomic_write_bytes(out_dir / figures / f"{block[1]}.svg", block[2].encode())
    page = atomic_write_bytes(out_dir / "report.html", to_html(doc, title).encode())
    markdown = atomic_write_bytes(out_dir / "report.md", to_markdown(doc, title, figures).encode())
    return page, markdown
