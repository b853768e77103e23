"""docs/params.md, generated from the field descriptions of srlm_core/params.py (a test keeps it in sync).

    python -m srlm_core.params_doc > docs/params.md
"""

from __future__ import annotations

from pydantic import BaseModel

from .params import Params, Section


def params_markdown() -> str:
    """The reference table in docs/params.md, generated from the field descriptions."""
    lines = ["# params.yaml reference", "",
             "Generated from `srlm_core/params.py` by `python -m srlm_core.params_doc > docs/params.md`",
             "(a test keeps it in sync). Unknown keys and out-of-range values fail at load time.", "",
             "| key | default | meaning |", "| --- | --- | --- |"]

    def walk(model: type[Section], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, Section):
                walk(annotation, f"{prefix}{name}.")
            else:
                default = field.default_factory() if field.default_factory else field.default
                if isinstance(default, dict):
                    default = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in default.items()}
                lines.append(f"| `{prefix}{name}` | `{default!r}` | {field.description or ''} |")

    walk(Params, "")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(params_markdown(), end="")
