"""`srlm report`: one self-contained HTML page (and a Markdown twin) summarising a run.

The page holds the models with their training, reward-modelling, implicit-reward, pointwise,
instruction-following and head-to-head metrics, the lineage chain with hashes, each iteration's guards,
per-iteration statistics, the plots declared in
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
from . import resolution
from .summary import collect, interval_text, preference_text, score_diff_text, win_rate_text

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


def measures(summary: dict) -> list[tuple[str, str, list[dict], str, str]]:
    """Every measure with an interval, as resolution.rows takes them."""
    models, implicit = summary["models"], [m["implicit"] for m in summary["models"] if m["implicit"]]
    return [("RM pairwise accuracy", "held-out groups", models, "pairwise_accuracy", "between models"),
            ("text parse rate", "held-out groups", models, "text_parse_rate", "between models"),
            ("implicit reward vs reference", "held-out trees", implicit, "implicit_accuracy_ref",
             "against no difference"),
            ("implicit reward vs SFT", "held-out trees", implicit, "implicit_accuracy_sft", "against no difference"),
            ("implicit margin at equal length vs SFT (nats)", "held-out trees", implicit, "implicit_margin_lc_sft",
             "against no difference"),
            ("verifiable instructions, prompt-level", "instruction prompts", models, "prompt_accuracy",
             "between models"),
            ("verifiable instructions, instruction-level", "instruction prompts", models, "instruction_accuracy",
             "between models"),
            ("pointwise score", "held-out prompts", models, "score_mean", "between models"),
            ("pointwise score difference a - b", "held-out prompts", summary["matchups"], "score_diff",
             "against no difference"),
            ("pointwise score difference a - b at equal length", "held-out prompts", summary["matchups"],
             "score_diff_lc", "against no difference"),
            ("head-to-head win rate", "held-out prompts", [m for m in summary["matchups"] if m.get("informative", True)],
             "win_rate", "against no difference"),
            ("head-to-head win rate at equal length", "held-out prompts",
             [m for m in summary["matchups"] if m.get("win_rate_lc") is not None], "win_rate_lc",
             "against no difference"),
            ("head-to-head mean preference", "held-out prompts", summary["matchups"], "mean_preference",
             "against no difference")]


def build(root: Path, out_dir: Path) -> Document:
    summary = collect(root)
    up = Path(os.path.relpath(root.resolve(), out_dir.resolve()))   # links are relative to the report

    def rel(path: str) -> str:
        return (up / path).as_posix()

    doc = Document()
    models = summary["models"]
    doc.heading("Training")
    doc.text("What training did (docs/metrics.md): optimizer steps, the last step's loss, and for DPO the trained "
             "policy on all its training pairs (loss ln 2 = 0.693, reward accuracy 50% and margin 0 mean it did not "
             "move), and the share of held-out answers that differ from the parent's (same prompts, same seed).")
    doc.table(["model", "kind", "hash", "steps", "final_loss", "pairs_loss", "pairs_reward_accuracy",
               "pairs_reward_margin", "parent", "answers_changed"],
              [[m["model"], m["kind"], (m["hash"] or "")[:12], m["steps"], m["final_loss"], m["pairs_loss"],
                m["pairs_reward_accuracy"], m["pairs_reward_margin"], m["parent"], m["answers_changed"]]
               for m in models])
    doc.heading("Reward modelling")
    doc.text("The model judges held-out human-ranked replies (docs/metrics.md), 95% intervals over groups. Text "
             "parse rate: the share of judgements in the paper's text method that end in a valid `Score: N` "
             "(EFT should raise it).")
    doc.table(["model", "pairwise_accuracy [95% CI]", "exact_match", "spearman", "kendall", "top_scored_5",
               "parse_failure_rate", "text_parse_rate [95% CI]", "answer_chars", "answer_tokens"],
              [[m["model"], interval_text(m, "pairwise_accuracy"), m["exact_match"], m["spearman"], m["kendall"],
                m["top_scored_5"], m["parse_failure_rate"], interval_text(m, "text_parse_rate"), m["answer_chars"],
                m["answer_tokens"]] for m in models])
    doc.heading("Implicit reward against human preference")
    doc.text("Judge-free: on the held-out human-ranked replies (every depth of the trees), the implicit reward "
             "r = log p_model(y|x) - log p_ref(y|x); the share of sibling pairs where the human-preferred reply gains "
             "more (ties 1/2), against the model's reference and against the SFT baseline, with a 95% interval over "
             "trees. 0.5 means the model moved without regard to human preference; above it, toward what people "
             "prefer. At equal length: the margin r(better) - r(worse) regressed on the pair's token difference, "
             "its value at no difference (nats; 0 for a gain that only grows with length). Likelihood ranks the pairs by log p_model alone (mostly a length effect), for context.")
    implicit = [(m["model"], m["implicit"]) for m in summary["models"] if m["implicit"]]
    doc.table(["model", "reference", "vs reference [95% CI]", "margin (nats)", "vs SFT [95% CI]", "margin (nats)",
               "margin at equal length vs reference [95% CI]", "margin at equal length vs SFT [95% CI]",
               "likelihood", "likelihood per token", "pairs", "trees"],
              [[name, m["reference"], interval_text(m, "implicit_accuracy_ref"), m["implicit_margin_ref"],
                interval_text(m, "implicit_accuracy_sft"), m["implicit_margin_sft"],
                interval_text(m, "implicit_margin_lc_ref"), interval_text(m, "implicit_margin_lc_sft"),
                m["likelihood_accuracy"], m["likelihood_accuracy_per_token"], m["pairs"], m["trees"]]
               for name, m in implicit])
    doc.heading("Pointwise scores")
    doc.text("The fixed judge (never trained, the same for every model) scores each held-out answer on its own with "
             "the loop's 5-point prompt (expected score from its digit probabilities, mean of the judge samples); "
             "the mean over prompts with a bootstrap 95% interval. No second answer is shown, so there is no "
             "position to be biased by.")
    doc.table(["model", "score [95% CI]", "judge"],
              [[m["model"], interval_text(m, "score_mean"), m["judge"]] for m in models if m["judge"]])
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
             "it is a tie. Win rate of a = (wins + ties/2) / games, with a bootstrap 95% interval. An evaluator that "
             "names one position in most verdicts can only produce ties: when the interval of its first-position "
             "rate is past evaluation.evaluator.max_first_position_rate the win rate is replaced by why the games "
             "are uninformative. Score a - b: the per-prompt difference of the pointwise scores, its mean and "
             "bootstrap 95% interval over prompts, and the share of prompts a scores higher. At equal length: "
             "the same regressed on the answers' length difference and read at no difference (AlpacaEval 2's "
             "length control; docs/metrics.md); length a - b: mean characters.")
    doc.table(["matchup", "a", "b", "wins", "ties", "losses", "win rate [95% CI]", "first-position rate [95% CI]",
               "mean preference [95% CI]", "score a - b [95% CI]", "a scores higher", "length a - b",
               "score a - b at equal length [95% CI]", "win rate at equal length [95% CI]", "evaluator"],
              [[m["matchup"], m["a"], m["b"], m["wins"], m["ties"], m["losses"], win_rate_text(m),
                interval_text(m, "first_position_rate"), preference_text(m), score_diff_text(m),
                m.get("score_a_higher"), m.get("length_diff_chars"), score_diff_text(m, "score_diff_lc"),
                interval_text(m, "win_rate_lc"), m["evaluator"]] for m in summary["matchups"]])
    doc.text("Mean preference (local evaluator only): P(a's answer is better) averaged over both orders, so the "
             "evaluator's position bias cancels; 0.5 = no difference. Not the paper's rule, a finer reading of the "
             "same games.")
    doc.heading("Resolution")
    doc.text("The smallest difference this run could detect (80% power, two-sided 5% level), per measure, from "
             "its 95% intervals (srlm_core/reporting/resolution.py): a difference smaller than this is not evidence "
             "either way at this size. Grow the run (prompts, held-out groups) to resolve smaller ones.")
    found = resolution.rows(measures(summary))
    doc.table(["measure", "resampled", "comparison", "median 95% CI width", "detectable difference"],
              [[r["measure"], r["resampled"], r["comparison"], r["median_ci95_width"], r["detectable_difference"]]
               for r in found])
    doc.heading("Lineage")
    doc.table(["model", "kind", "hash", "trained on", "data hash", "parent hash"],
              [[s["name"], s["kind"], s["hash"][:12], s["training_data"], (s["training_data_hash"] or "")[:12],
                (s["parent_hash"] or "")[:12]] for s in summary["lineage"]])
    doc.heading("Guards")
    doc.text("After each iteration, stage guards@<model> holds signs of judge failure, reward hacking and training "
             "that did not move the policy against params.yaml guards (docs/guards.md): top_share, the share of the "
             "iteration's candidates the judge scored at the top; score_sd, the spread of those scores; "
             "length_growth, the model's mean held-out answer length over its parent's; rm_accuracy_drop, how far "
             "its agreement with the held-out human rankings fell below its parent's; dpo_pairs_loss, the model's "
             "DPO loss on its own training pairs (ln 2 = 0.693 untrained: DPO did not move it). A tripped check is "
             "warn, or fail with guards.action: fail (the run stopped there); skipped: the check is off (threshold "
             "null) or had nothing to measure.")
    if summary["guards"]:
        doc.table(["iteration", "model", "parent", "guard", "value", "threshold", "outcome", "reason"],
                  [[c["iteration"], c["model"], c["parent"], c["guard"], c["value"], c["threshold"], c["outcome"],
                    c["reason"]] for c in summary["guards"]])
    else:
        doc.text("No guard has run yet.")
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
