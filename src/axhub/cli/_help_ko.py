"""Korean help for every ``axhub`` command and option, from one catalogue (``help_ko.json``).

The catalogue is keyed by command path (``"axhub vision train"``) and, inside a command, by
option (``"--folder"``) or argument name (``"folder"``). Each text keeps the English it was
translated from (``"en"``), so an English help that changes without its Korean shows up as stale
in ``tests/test_cli_reference_ko.py`` instead of silently describing the old behaviour.

It serves two readers: the docs hook (``scripts/mkdocs_hooks.py`` writes
``docs/reference/cli.ko.md``) and ``--help`` itself: :class:`LocalisedGroup`, the root group of
the app, swaps the Korean texts into the command tree before click parses anything, when the
command line says ``--lang ko`` or the locale is Korean.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from typer.core import TyperGroup

from axhub.core.messages import lang_from_locale, normalize_lang

CATALOGUE = Path(__file__).with_name("help_ko.json")
HELP_OPTION_KO = "이 도움말을 보여 주고 끝냅니다."

# Korean text, optionally after " / " (the bilingual helps: "Model version id. / 모델 버전.").
_HANGUL = re.compile(r"[\u3131-\u318e\uac00-\ud7a3]")
_KOREAN_TAIL = re.compile(r"\s/\s[^\n]*$")

# Typer's rich help draws these panel titles and markers; English ones restored for --lang en.
_RICH_STRINGS_KO = {
    "ARGUMENTS_PANEL_TITLE": "인수",
    "OPTIONS_PANEL_TITLE": "옵션",
    "COMMANDS_PANEL_TITLE": "명령",
    "ERRORS_PANEL_TITLE": "오류",
    "DEFAULT_STRING": "[기본값: {}]",
    "REQUIRED_LONG_STRING": "[필수]",
}
_RICH_STRINGS_EN: dict[str, str] = {}  # Typer's own, saved before the first change


def is_group(command: Any) -> bool:
    # Typer carries its own copy of click: groups are recognised by their sub-commands.
    return getattr(command, "commands", None) is not None


def iter_commands(command: Any, path: Sequence[str] = ("axhub",)) -> Iterator[tuple[str, Any]]:
    """Every command and group under ``command`` as ``("axhub a b", command)``, groups first,
    names sorted (the order of the reference pages)."""
    yield " ".join(path), command
    if is_group(command):
        for name in sorted(command.commands):
            yield from iter_commands(command.commands[name], [*path, name])


def param_key(param: Any) -> str:
    """An option by its long name (``--folder``), an argument by its name (``folder``)."""
    if param.param_type_name != "option":
        return str(param.name)
    long_names = [o for o in param.opts if o.startswith("--")]
    return str((long_names or param.opts)[0])


def documented_params(command: Any) -> list[Any]:
    """The parameters a reader sees, without ``--help`` (it is the same everywhere)."""
    return [p for p in command.params if p.name != "help"]


def english_only(text: str | None) -> str:
    """The English part of a help text: the bilingual helps' ``" / 한국어"`` tails and Korean
    paragraphs dropped (the English page has no Korean on it)."""
    kept = []
    for paragraph in (text or "").strip().split("\n\n"):
        lines = []
        for line in paragraph.split("\n"):
            tail = _KOREAN_TAIL.search(" " + line)
            if tail and _HANGUL.search(tail.group()):
                line = (" " + line)[: tail.start()].strip()
            elif line.lstrip().startswith("/") and _HANGUL.search(line):
                line = ""
            if line.strip() and not _HANGUL.search(line):
                lines.append(line)
        if lines:
            kept.append("\n".join(lines))
    return "\n\n".join(kept)


@lru_cache(maxsize=1)
def load_catalogue() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    return data


def as_plain_text(text: str) -> str:
    """Catalogue texts mark code with backticks for the docs; a terminal shows them in quotes.
    Square brackets are escaped: Typer reads help as Rich markup (``axhub[edge]`` would vanish)."""
    # A code span that is itself quoted (`'Hanbit Precision'`) keeps one pair of quotes.
    quoted = re.sub(r"`([^`]*)`", r"'\1'", text).replace("''", "'")
    return quoted.replace("[", "\\[")


def translate_tree(root: Any) -> None:
    """Put the Korean help texts into the click command tree (in place). A command or option
    missing from the catalogue keeps its English help rather than failing ``--help``."""
    catalogue = load_catalogue()
    for path, command in iter_commands(root):
        entry = catalogue.get(path)
        if entry is None:
            continue
        command.help = as_plain_text(entry["ko"])
        command.short_help = None
        options = entry.get("options", {})
        for param in documented_params(command):
            text = options.get(param_key(param))
            if text is not None and hasattr(param, "help"):
                param.help = as_plain_text(text["ko"])
        _translate_help_option(command)


def _asked_language(args: Sequence[str]) -> str:
    """``--lang X`` / ``--lang=X`` anywhere on the command line, else the locale."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(args):
            return normalize_lang(args[i + 1])
        if arg.startswith("--lang="):
            return normalize_lang(arg.split("=", 1)[1])
    return lang_from_locale()


def _shows_help(root: Any, args: Sequence[str]) -> bool:
    """Whether this command line ends in help: ``--help``, or a group named without a command
    (groups answer with their help). Other commands skip the catalogue and its cost."""
    if "--help" in args:
        return True
    command, words = root, iter(args)
    for word in words:
        if word == "--lang":
            next(words, None)
        elif not word.startswith("-") and is_group(command) and word in command.commands:
            command = command.commands[word]
        elif not word.startswith("-"):
            break
    return is_group(command)


def _set_rich_strings(lang: str) -> None:
    if lang != "ko" and not _RICH_STRINGS_EN:
        return  # never changed: Typer's English stands (and rich is not imported for nothing)
    import typer.rich_utils as rich_utils

    if not _RICH_STRINGS_EN:
        _RICH_STRINGS_EN.update({name: getattr(rich_utils, name) for name in _RICH_STRINGS_KO})
    for name, value in (_RICH_STRINGS_KO if lang == "ko" else _RICH_STRINGS_EN).items():
        setattr(rich_utils, name, value)


class LocalisedGroup(TyperGroup):
    """The root ``axhub`` group: shows every ``--help`` in the asked language.

    ``--help`` is handled while click parses, before any ``--lang`` callback runs, so the
    language is read from the raw arguments here, once, before parsing starts."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        if parent is None:
            lang = _asked_language(args) if _shows_help(self, args) else "en"
            _set_rich_strings(lang)
            if lang == "ko":
                translate_tree(self)
        return super().make_context(info_name, args, parent, **extra)


def _translate_help_option(command: Any) -> None:
    # Typer builds each command's --help option only when a context asks for it.
    original = getattr(command, "get_help_option", None)
    if original is None:
        return

    def korean_help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None:
            option.help = HELP_OPTION_KO
        return option

    command.get_help_option = korean_help_option


def catalogue_problems(root: Any, catalogue: dict[str, Any]) -> list[str]:
    """What keeps the catalogue from matching the command tree: a command, option or argument
    with no Korean text, an entry for one that no longer exists, or a Korean text translated from
    an English help that has since changed (its ``"en"`` is not the current help)."""
    problems = []
    seen: set[str] = set()
    for path, command in iter_commands(root):
        seen.add(path)
        entry = catalogue.get(path)
        if entry is None:
            problems.append(f"'{path}': no Korean entry (English: {command.help or ''!r})")
            continue
        if entry.get("en", "") != (command.help or ""):
            problems.append(f"'{path}': English help changed, update 'en' and 'ko': {command.help!r}")
        options = entry.get("options", {})
        keys = set()
        for param in documented_params(command):
            key = param_key(param)
            keys.add(key)
            english = getattr(param, "help", None) or ""
            if key not in options:
                problems.append(f"'{path}' {key}: no Korean entry (English: {english!r})")
            elif options[key].get("en", "") != english:
                problems.append(f"'{path}' {key}: English help changed, update 'en' and 'ko': {english!r}")
        problems += [f"'{path}' {key}: stale entry, no such option" for key in sorted(set(options) - keys)]
    problems += [f"'{path}': stale entry, no such command" for path in sorted(set(catalogue) - seen)]
    return problems
