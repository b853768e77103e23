"""User-facing errors: one message that names the file, the record and the fix."""

from __future__ import annotations


class SrlmError(Exception):
    """An error the user can act on; the CLI and stages print it without a traceback."""


class InputError(SrlmError):
    """Bad input data: carries where it was found so the message can name it."""

    def __init__(self, path: object, where: str | None, problem: str, fix: str | None = None):
        self.path, self.where, self.problem, self.fix = str(path), where, problem, fix
        location = f"{path}" + (f", {where}" if where else "")
        message = f"{location}: {problem}"
        if fix:
            message += f" (fix: {fix})"
        super().__init__(message)
