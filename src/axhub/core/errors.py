"""Errors that people read: each says what went wrong, where, and what to do next."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any


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
    # A stable code and its parameters (see ``core.messages``), so it can be shown in Korean too.
    code: str = ""
    params: Mapping[str, Any] = dc_field(default_factory=dict, compare=False, hash=False)

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.problem}"

    def text(self, lang: str = "en") -> str:
        """Only the problem (no place), in ``lang`` when its code is known."""
        from axhub.core.messages import message, normalize_lang

        msg, _hint = message(self.code, self.params, normalize_lang(lang))
        return msg or self.problem

    def render(self, lang: str = "en") -> str:
        """Place and problem in ``lang`` ('a.csv, 12행, '온도' 열: 숫자가 아닙니다: 'x'')."""
        from axhub.core.messages import normalize_lang, where

        return f"{where(self.file, self.row, self.field, normalize_lang(lang))}: {self.text(lang)}"


def problem(file: str, row: int | None, field_name: str | None, code: str, **params: Any) -> InputProblem:
    """An ``InputProblem`` from a catalogue code; its English text is filled in for logs and files."""
    from axhub.core.messages import message

    text, _hint = message(code, params, "en")
    return InputProblem(file, row, field_name, text or code, code, params)


class InputValidationError(AxHubError):
    """Input that cannot be used at all (as opposed to single bad rows, which are rejected)."""

    def __init__(
        self, problems: list[InputProblem] | InputProblem, *, hint: str = "", whole_file: bool = False
    ) -> None:
        self.problems = problems if isinstance(problems, list) else [problems]
        # True when a file was refused as a whole (nothing stored), not row by row.
        self.whole_file = whole_file
        if not hint and self.problems and self.problems[0].code:
            from axhub.core.messages import message

            hint = message(self.problems[0].code, self.problems[0].params, "en")[1]
        shown = "; ".join(str(p) for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(shown + more, hint=hint)

    def render(self, lang: str = "en") -> tuple[str, str]:
        """(message, hint) in ``lang``; a whole-file refusal says so first."""
        from axhub.core.messages import REFUSED, message, normalize_lang

        code = normalize_lang(lang)
        shown = "; ".join(p.render(code) for p in self.problems[:5])
        if len(self.problems) > 5:
            shown += f" (+{len(self.problems) - 5})"
        if self.whole_file:
            shown = f"{REFUSED[code]}: {shown}"
        first = self.problems[0] if self.problems else None
        hint = message(first.code, first.params, code)[1] if first is not None and first.code else ""
        return shown, hint or (self.hint if code == "en" else "")
