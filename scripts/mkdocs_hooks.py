"""MkDocs hooks: pages generated from the code at build time, so they cannot drift from it.

* ``docs/reference/openapi.json``: the HTTP API's OpenAPI spec, from the FastAPI app itself
  (rendered by the neoteroi ``[OAD(...)]`` tag in reference/http.md and offered for download);
* ``docs/reference/cli.md``: every ``axhub`` command with its options, from the Typer app, and
  ``docs/reference/cli.ko.md``, the same page in Korean from ``src/axhub/cli/help_ko.json``.

All three files are git-ignored outputs; they are written before MkDocs collects the pages.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import typer

DOCS = Path(__file__).resolve().parent.parent / "docs"


def on_config(config: Any) -> Any:
    reference = DOCS / "reference"
    reference.mkdir(exist_ok=True)
    _write_if_changed(reference / "openapi.json", json.dumps(_openapi(), indent=1, ensure_ascii=False))
    _write_if_changed(reference / "cli.md", _cli_markdown("en"))
    _write_if_changed(reference / "cli.ko.md", _cli_markdown("ko"))
    return config


def _write_if_changed(path: Path, text: str) -> None:
    # `mkdocs serve` watches docs/: rewriting an unchanged file would rebuild forever.
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _openapi() -> dict[str, Any]:
    from axhub.api.main import create_app
    from axhub.core.settings import Settings

    with tempfile.TemporaryDirectory(prefix="axhub-docs-") as home:
        app = create_app(Settings(home=Path(home)), executor="none")
        spec: dict[str, Any] = app.openapi()
    return spec


# The command-line reference in each language: (title, introduction, table header, required mark).
_CLI_PAGE = {
    "en": (
        "# Command line (`axhub`)",
        [
            "Generated from the commands themselves when the site is built. Every command also answers",
            "`--help`, and `axhub --lang ko ...` or `--lang en` picks the language of its output.",
        ],
        "| option | meaning |",
        " (required)",
    ),
    "ko": (
        "# 명령줄 (`axhub`)",
        [
            "사이트를 빌드할 때 명령 자체에서 만들어지는 페이지입니다. 모든 명령은 `--help`에도 답하며,",
            "`axhub --lang ko ...` 또는 `--lang en`으로 출력 언어를 고릅니다. 한국어(`--lang ko` 또는",
            "`AXHUB_LANG=ko`)이면 `--help`도 이 페이지와 같은 한국어 설명을 보여 줍니다.",
        ],
        "| 옵션 | 의미 |",
        " (필수)",
    ),
}


def _cli_markdown(lang: str = "en") -> str:
    """The reference page: English texts without their Korean tails, or the Korean catalogue
    (``src/axhub/cli/help_ko.json``; a command missing there fails tests/test_cli_reference_ko.py)."""
    from axhub.cli import _help_ko as ko
    from axhub.cli.main import app

    title, intro, header, required_mark = _CLI_PAGE[lang]
    catalogue = ko.load_catalogue() if lang == "ko" else {}
    lines = [title, "", *intro, ""]
    for path, command in ko.iter_commands(typer.main.get_command(app)):
        if ko.is_group(command):
            continue
        entry = catalogue.get(path, {})
        help_text = entry.get("ko", "") if lang == "ko" else ko.english_only(command.help)
        lines += [f"## `{path}`", "", help_text.strip(), ""]
        rows = []
        for param in ko.documented_params(command):
            names = ", ".join(
                f"`{o}`" for o in (param.opts if param.param_type_name == "option" else [param.name])
            )
            if lang == "ko":
                text = entry.get("options", {}).get(ko.param_key(param), {}).get("ko", "")
            else:
                text = ko.english_only(getattr(param, "help", None))
            text = text.replace("|", "\\|").replace("\n", " ")
            required = required_mark if param.required else ""
            rows.append(f"| {names} | {text}{required} |")
        if rows:
            lines += [header, "|---|---|", *rows, ""]
    return "\n".join(lines) + "\n"
