"""The project files a stage script runs: the `srlm_core` modules it imports, transitively (imports
inside functions too), and the files those modules read from beside themselves
(`Path(__file__).parent / "sql" / "pairs.sql"`). `dvc.yaml` must list each of them as a dependency
of the stage, or editing one would leave the stage's outputs stale while `dvc status` calls them
current; `tests/test_dvc_deps.py` checks that it does.

    python -m srlm_core.code_deps stages/pairs.py     # the list, one repository-relative path a line
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "srlm_core"


def module_path(root: Path, name: str) -> Path | None:
    """The file of module `name` (dotted) under `root`, or None when it is not a project module."""
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module_dir(node: ast.AST) -> bool:
    """`Path(__file__).parent`"""
    return (isinstance(node, ast.Attribute) and node.attr == "parent" and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id == "Path"
            and len(node.value.args) == 1 and isinstance(node.value.args[0], ast.Name)
            and node.value.args[0].id == "__file__")


def resources(tree: ast.AST, folder: Path) -> set[Path]:
    """Files named as `Path(__file__).parent / "a" / "b"` chains of string constants."""
    found = set()
    inner = {id(n.left) for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div)}
    for node in ast.walk(tree):
        if id(node) in inner:   # part of a longer chain: the whole chain names the file
            continue
        parts = []
        while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant):
            parts.insert(0, str(node.right.value))
            node = node.left
        if parts and is_module_dir(node) and (folder.joinpath(*parts)).exists():
            found.add(folder.joinpath(*parts))
    return found


def imported(root: Path, path: Path) -> set[Path]:
    """The project modules (and their packages' __init__) one file imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(root, path) if path.name == "__init__.py" else module_name(root, path).rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]   # `from pkg import module`
    found = set()
    for name in names:
        if name.split(".")[0] != PACKAGE:
            continue
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):   # importing a.b.c runs a/__init__ and a/b/__init__ too
            module = module_path(root, ".".join(parts[:depth]))
            if module is not None:
                found.add(module)
    return found | resources(tree, path.parent)


def closure(script: Path, root: Path) -> list[str]:
    """Every project file `script` runs or reads, repository-relative and sorted (the script included)."""
    seen, todo = set(), [script.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.suffix == ".py":
            todo += imported(root.resolve(), path)
    return sorted(p.relative_to(root.resolve()).as_posix() for p in seen)


def main() -> None:
    root = Path.cwd()
    for script in sys.argv[1:]:
        print("\n".join(closure(Path(script), root)))


if __name__ == "__main__":
    main()
