"""The documentation site: built in strict mode, every tutorial run top to bottom, every command
shown in the docs either run here or parsed against the real command line (see _docs_pages)."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from markdown.extensions.toc import slugify

from _docs_pages import DOCS, REPO, RUNNABLE, Block, blocks, doc_pages, page_markers
from axhub.cli.main import app
from axhub.core.settings import Settings

SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}
PAGES = doc_pages()
SAME_AS_ENGLISH = "same as the English page"  # a Korean block's skip reason: the English page runs it


def _twin(page: Path) -> Path | None:
    """The English page of a Korean one (``x.ko.md`` -> ``x.md``), if there is one."""
    if not page.name.endswith(".ko.md"):
        return None
    en = page.with_name(page.name.removesuffix(".ko.md") + ".md")
    return en if en.exists() else None


def _steps(page: Path) -> list[tuple[str, str, str | None, str | None]]:
    return [(b.lang, b.code, b.title, b.skip) for b in blocks(page)]


def _run_once_in_korean(page: Path) -> bool:
    """An English page whose Korean twin has exactly the same blocks is run once, in Korean
    (the same commands and code, output in Korean): running both doubled the time for nothing."""
    ko = page.with_name(page.name.removesuffix(".md") + ".ko.md")
    return not page.name.endswith(".ko.md") and ko.exists() and _steps(ko) == _steps(page)


RUN_PAGES = [
    p
    for p in PAGES
    if any(b.lang in RUNNABLE and b.skip is None for b in blocks(p)) and not _run_once_in_korean(p)
]
DATASETS = Settings().datasets  # AXHUB_DATASETS, else ../shared/datasets beside the checkout


def _id(page: Path) -> str:
    name = str(page.relative_to(REPO))
    twin = _twin(page)
    return f"{name}+en" if twin is not None and _run_once_in_korean(twin) else name


@pytest.mark.slow
def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    site = tmp_path / "site"
    for page in ("index.html", "ko/index.html", "reference/http/index.html", "reference/openapi.json"):
        assert (site / page).exists(), page
    # The HTTP reference is rendered from the app's own spec, so a real route must be on it.
    assert "/api/v1/auth/login" in (site / "reference/http/index.html").read_text(encoding="utf-8")
    assert "axhub ingest" in (site / "reference/cli/index.html").read_text(encoding="utf-8")
    broken = _broken_links_out_of_korean_pages(site)
    assert not broken, "\n".join(broken)


_A_HREF = re.compile(r'<a\s[^>]*?href="(?P<path>[^"#?:]*)(?:#(?P<anchor>[^"]*))?"')


def _broken_links_out_of_korean_pages(site: Path) -> list[str]:
    """Korean pages reach English sections through raw HTML links (a Markdown link to ``x.md`` lands
    on the Korean ``x.ko.md``), which the strict build does not check: each must name a built page
    and an id on it."""
    broken = []
    korean = site / "ko"
    for page in sorted(korean.rglob("*.html")):
        for link in _A_HREF.finditer(page.read_text(encoding="utf-8")):
            if not link["path"] or link["path"].startswith("/"):
                continue
            target = (page.parent / link["path"]).resolve()
            if target.is_relative_to(korean.resolve()):
                continue  # inside the Korean site: the strict build has checked it
            built = target / "index.html" if link["path"].endswith("/") else target
            where = f"{page.relative_to(site)}: {link[0].split('href=')[1]}"
            if not built.is_file():
                broken.append(f"{where}: no such page")
            elif link["anchor"] and f'id="{link["anchor"]}"' not in built.read_text(encoding="utf-8"):
                broken.append(f"{where}: no such section")
    return broken


def _page_param(page: Path) -> Any:
    # Every page run starts real processes (tens of seconds); some need the broker or datasets.
    marks = [pytest.mark.slow]
    for kind, arg in page_markers(page):
        if kind == "requires-dataset":
            marks.append(pytest.mark.datasets)
        if kind == "requires-service" and arg == "mqtt":
            marks.append(pytest.mark.mqtt)
    return pytest.param(page, marks=marks, id=_id(page))


@pytest.mark.parametrize("page", [_page_param(p) for p in RUN_PAGES])
def test_page_runs_top_to_bottom(page: Path, tmp_path: Path) -> None:
    for kind, arg in page_markers(page):
        if kind == "requires-dataset" and not (DATASETS / arg).exists():
            pytest.skip(f"{_id(page)} needs the public dataset '{arg}' under {DATASETS} (AXHUB_DATASETS)")
        if kind == "requires-service" and arg == "mqtt" and not _port_open(1883):
            pytest.skip(f"{_id(page)} needs the MQTT broker on 127.0.0.1:1883")
        if kind == "requires-package" and importlib.util.find_spec(arg) is None:
            pytest.skip(f"{_id(page)} needs the package '{arg}', which is not installed")
    lang = "ko" if page.name.endswith(".ko.md") else "en"
    # A reader's fresh install: only AXHUB_HOME (and the datasets) decide where things go, so a
    # database URL or data root set for other tests never leaks into a tutorial.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("AXHUB_")}
    env = {
        **inherited,
        "AXHUB_HOME": str(tmp_path / "home"),
        "AXHUB_DATASETS": str(DATASETS),
        "AXHUB_LANG": lang,
        "AXHUB_REPO": str(REPO),  # tutorial 10 runs the contract suite of this checkout
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(tmp_path / "work")]),
        "COLUMNS": "120",
        "MPLBACKEND": "Agg",
    }
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "_docs_run.py"), str(page)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, (done.stdout[-6000:] + "\n" + done.stderr[-4000:]).strip()


def test_every_shell_block_is_run_or_says_why_not() -> None:
    problems = []
    for page in PAGES:
        for block in blocks(page):
            if block.lang in SHELL_LANGS - {"bash"}:
                problems.append(f"{block.where}: use ```bash so the block is run (or marked skip)")
            if block.skip is not None and len(block.skip.split()) < 3:
                problems.append(f"{block.where}: a skipped block needs a reason")
    assert not problems, "\n".join(problems)


_SHELL_STOPS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "2>", "2>&1"}


def _axhub_lines(block: Block) -> list[list[str]]:
    """The arguments of every ``axhub`` command in a shell block (redirections and pipes cut off,
    ``$(...)`` substitutions standing for one word)."""
    text = block.code.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        for part in line.split("&&"):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                continue
            while words and "=" in words[0] and not words[0].startswith("-"):
                words = words[1:]  # VAR=value prefixes
            if words[:1] != ["axhub"]:
                continue
            args = []
            for word in words[1:]:
                if word in _SHELL_STOPS:
                    break
                args.append("x" if "$(" in word else word)
            commands.append(args)
    return commands


SHELL_BLOCKS = [b for p in PAGES for b in blocks(p) if b.lang == "bash" and _axhub_lines(b)]


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.where)
def test_axhub_commands_in_the_docs_exist_with_their_options(block: Block) -> None:
    # Typer carries its own copy of click, so commands are recognised by shape, not by class.
    root: Any = typer.main.get_command(app)
    for args in _axhub_lines(block):
        command, path, rest = root, ["axhub"], list(args)
        while rest and rest[0].startswith("--lang"):
            rest = rest[2:] if rest[0] == "--lang" else rest[1:]
        while getattr(command, "commands", None) is not None and rest:
            name = rest.pop(0)
            assert name in command.commands, f"{block.where}: 'axhub {' '.join(args)}': no command '{name}'"
            command = command.commands[name]
            path.append(name)
        if getattr(command, "commands", None) is not None:
            continue
        try:
            command.make_context(" ".join(path), rest)
        except Exception as exc:
            if type(exc).__name__ == "Exit":
                continue
            message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
            pytest.fail(f"{block.where}: 'axhub {' '.join(args)}': {message}")


def test_korean_blocks_left_to_the_english_page_are_the_same_and_run_there() -> None:
    """A Korean block skipped as "same as the English page" (a check that leaves nothing the
    next blocks need, e.g. the contract suite) must be word for word a block the English page runs."""
    problems = []
    for page in PAGES:
        for block in blocks(page):
            if block.skip is None or not block.skip.startswith(SAME_AS_ENGLISH):
                continue
            twin = _twin(page)
            ran = [(b.lang, b.code) for b in blocks(twin) if b.skip is None] if twin else []
            if (block.lang, block.code) not in ran or twin not in RUN_PAGES:
                problems.append(f"{block.where}: no identical block is run on the English page")
    assert not problems, "\n".join(problems)


def test_tutorials_and_model_cards_exist_in_both_languages_and_end_with_an_exercise() -> None:
    for folder in ("tutorials", "model-cards"):
        for en in sorted((DOCS / folder).glob("*.md")):
            if en.name.endswith(".ko.md"):
                continue
            ko = en.with_name(en.stem + ".ko.md")
            assert ko.exists(), f"{ko.relative_to(REPO)} is missing"
            hangul = sum("가" <= c <= "힣" for c in _prose(ko))
            assert hangul > 0.5 * sum(c.isalpha() for c in _prose(ko)), f"{ko.name}: prose is not Korean"
            if folder == "tutorials" and en.stem != "index":
                assert "## Exercise" in en.read_text() and "## Solution" in en.read_text(), en.name
                assert "## 연습 문제" in ko.read_text() and "## 풀이" in ko.read_text(), ko.name
                # Same steps in both languages: the same kinds of blocks in the same order.
                assert [b.lang for b in blocks(en)] == [b.lang for b in blocks(ko)], en.name


def _prose(page: Path) -> str:
    text = page.read_text(encoding="utf-8")
    text = "\n".join(part for i, part in enumerate(text.split("```")) if i % 2 == 0)
    return "\n".join(part for i, part in enumerate(text.split("`")) if i % 2 == 0)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_commands_named_in_the_prose_exist() -> None:
    """Inline mentions (`axhub bench skab`, `axhub vision import FOLDER ...`) name real commands;
    their placeholders and optional parts are prose, so only the command path is checked."""
    root: Any = typer.main.get_command(app)
    problems = []
    for page in PAGES:
        for span in re.findall(r"`(axhub [^`\n]+)`", _without_fences(page)):
            command, words = root, span.split()[1:]
            while words and words[0].startswith("--lang"):
                words = words[2:] if words[0] == "--lang" else words[1:]
            while getattr(command, "commands", None) is not None and words:
                name = words.pop(0)
                if name not in command.commands:
                    if not name.isidentifier() and not name.replace("-", "").isalnum():
                        break  # `axhub <command>`, `axhub ...`: a placeholder, not a name
                    problems.append(f"{_id(page)}: `{span}`: no command '{name}'")
                    break
                command = command.commands[name]
    assert not problems, "\n".join(problems)


def _without_fences(page: Path) -> str:
    text = page.read_text(encoding="utf-8")
    return "\n".join(part for i, part in enumerate(text.split("```")) if i % 2 == 0)


def test_korean_architecture_page_keeps_the_english_rule_sections_and_packages() -> None:
    """docs/architecture.ko.md is for people; the English page is the source of truth. The Korean
    page states the same layer rule, has the same sections (its headings carry the English anchors)
    and lists the same packages, so a change to the English page shows where the Korean one lags."""
    en = (DOCS / "architecture.md").read_text(encoding="utf-8")
    ko = (DOCS / "architecture.ko.md").read_text(encoding="utf-8")
    rule = re.compile(r"^`core ←.*$", re.MULTILINE)
    assert rule.findall(ko) == rule.findall(en) != []
    english_sections = [slugify(title, "-") for title in re.findall(r"^## (.+)$", en, re.MULTILINE)]
    assert re.findall(r"^## .+ \{#([a-z0-9-]+)\}$", ko, re.MULTILINE) == english_sections
    packages = re.compile(r"^\| (`[^|]+) \|", re.MULTILINE)
    assert packages.findall(ko) == packages.findall(en) != []
