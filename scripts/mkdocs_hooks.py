"""MkDocs hooks: pages generated from the code at build time, so they cannot drift from it.

* ``docs/reference/openapi.json``: the HTTP API's OpenAPI spec, from the FastAPI app itself
  (rendered by the neoteroi ``[OAD(...)]`` tag in reference/http.md and offered for download);
* ``docs/reference/cli.md``: every ``axhub`` command with its options, from the Typer app.

Both files are git-ignored outputs; they are written before MkDocs collects the pages.
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
    _write_if_changed(reference / "cli.md", _cli_markdown())
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


def _cli_markdown() -> str:
    from axhub.cli.main import app

    root = typer.main.get_command(app)
    lines = [
        "# Command line (`axhub`)",
        "",
        "Generated from the commands themselves when the site is built. Every command also answers",
        "`--help`, and `axhub --lang ko ...` or `--lang en` picks the language of its output.",
        "",
    ]
    _walk(root, ["axhub"], lines)
    return "\n".join(lines) + "\n"


def _walk(command: Any, path: list[str], lines: list[str]) -> None:
    # Typer carries its own copy of click: groups are recognised by their sub-commands.
    if getattr(command, "commands", None) is not None:
        for name in sorted(command.commands):
            _walk(command.commands[name], [*path, name], lines)
        return
    lines += [f"## `{' '.join(path)}`", "", (command.help or "").strip(), ""]
    rows = []
    for param in command.params:
        if param.name == "help":
            continue
        names = ", ".join(
            f"`{o}`" for o in (param.opts if param.param_type_name == "option" else [param.name])
        )
        text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
        required = " (required)" if param.required else ""
        rows.append(f"| {names} | {text}{required} |")
    if rows:
        lines += ["| option | meaning |", "|---|---|", *rows, ""]
