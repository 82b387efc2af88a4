"""Errors that people read: each says what went wrong, where, and what to do next."""

from __future__ import annotations

from dataclasses import dataclass


class AxHubError(Exception):
    """Base class of every error AX Hub raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint or self.hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.hint})" if self.hint else base


class NotFoundError(AxHubError):
    """The thing does not exist, or belongs to another organisation (never say which)."""


class ConflictError(AxHubError):
    """The thing already exists or is in a state that forbids the operation."""


class PermissionDeniedError(AxHubError):
    """The caller may see the thing but not do this to it."""


@dataclass(frozen=True)
class InputProblem:
    """One bad value in an input file: where it is and what was expected."""

    file: str
    row: int | None
    field: str | None
    problem: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.problem}"


class InputValidationError(AxHubError):
    """Input that cannot be used at all (as opposed to single bad rows, which are rejected)."""

    def __init__(self, problems: list[InputProblem] | InputProblem, *, hint: str = "") -> None:
        self.problems = problems if isinstance(problems, list) else [problems]
        shown = "; ".join(str(p) for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(shown + more, hint=hint)
