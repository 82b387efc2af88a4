"""Entry point of the ``axhub`` command: finds every command module in this package."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

import axhub.cli as cli_package
from axhub.cli._help_ko import LocalisedGroup
from axhub.core.malloc_arenas import arrow_pool_for_command

# Before the command modules import pyarrow (see malloc_arenas): the ingest worker's Arrow
# buffers come from glibc malloc, whose resident size stays flat.
arrow_pool_for_command(sys.argv)

app = typer.Typer(
    name="axhub",
    cls=LocalisedGroup,  # --help in Korean with --lang ko or a Korean locale
    help="AX Hub — manufacturing AI platform. / 제조 AI 플랫폼.\n\n"
    "Start with 'axhub demo' to see a whole plant simulated, stored, learned and scored.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def _main(
    lang: str | None = typer.Option(
        None,
        "--lang",
        help="Language of the output and of --help: ko or en (default: from the locale). / 출력 언어.",
    ),
) -> None:
    from axhub.cli._lang import set_lang

    set_lang(lang)


def _register_commands() -> None:
    # Command modules keep heavy imports (torch, FastAPI) inside their functions so that
    # `axhub --help` stays fast.
    for info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if info.name in {"main"} or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"axhub.cli.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(app)


_register_commands()

if __name__ == "__main__":
    app()
