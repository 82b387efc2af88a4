"""The Korean command-line reference: every command and option has a Korean text in
src/axhub/cli/help_ko.json (a new command cannot ship untranslated, a removed one leaves no stale
entry, a changed English help flags its old translation), the generated Korean page has no English
sentence and the English page no Korean, and ``--help`` speaks Korean with ``--lang ko``."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from axhub.cli import _help_ko as ko
from axhub.cli.main import app

REPO = Path(__file__).resolve().parent.parent
HANGUL = re.compile(r"[가-힣]")
# Three ASCII words in a row (a Korean particle glued to a word makes it Korean: "Hub를").
ENGLISH_RUN = re.compile(r"(?<![\w`])[A-Za-z][A-Za-z'-]*(?:[ \t]+[A-Za-z][A-Za-z'-]*){2,}(?![\w`])")


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", REPO / "scripts" / "mkdocs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _root() -> Any:
    return typer.main.get_command(app)


def english_runs(markdown: str) -> list[str]:
    """Runs of 3+ English words outside code (backtick spans and fenced blocks)."""
    prose = "\n".join(part for i, part in enumerate(markdown.split("```")) if i % 2 == 0)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return ENGLISH_RUN.findall(prose)


def test_the_catalogue_matches_every_command_and_option() -> None:
    problems = ko.catalogue_problems(_root(), ko.load_catalogue())
    assert not problems, "src/axhub/cli/help_ko.json is out of step with the commands:\n" + "\n".join(
        problems
    )


def test_the_check_catches_a_new_a_removed_and_a_changed_command() -> None:
    demo = typer.Typer(add_completion=False)

    @demo.command("kept")
    def kept(speed: int = typer.Option(1, help="Spindle speed.")) -> None:
        """Kept command."""

    @demo.command("added")
    def added(limit: int = typer.Option(1, help="How many.")) -> None:
        """A command nobody translated."""

    catalogue = {
        "axhub": {"en": "", "ko": "데모.", "options": {}},
        "axhub kept": {
            "en": "Kept command, older wording.",
            "ko": "남은 명령.",
            "options": {
                "--speed": {"en": "Spindle speed.", "ko": "주축 속도."},
                "--limit": {"en": "How many.", "ko": "개수."},
                "--feed": {"en": "Feed rate.", "ko": "이송 속도."},
            },
        },
        "axhub removed": {"en": "Gone.", "ko": "사라진 명령.", "options": {}},
    }
    problems = "\n".join(ko.catalogue_problems(typer.main.get_command(demo), catalogue))
    assert "'axhub added': no Korean entry" in problems
    assert "'axhub removed': stale entry" in problems
    assert "'axhub kept' --feed: stale entry" in problems
    assert "'axhub kept': English help changed" in problems
    assert "--speed" not in problems
    assert "'axhub kept' --limit: stale entry" in problems  # --limit belongs to 'added'


def test_every_korean_text_is_korean() -> None:
    problems = []
    for path, entry in ko.load_catalogue().items():
        texts = {path: entry["ko"]} | {f"{path} {k}": v["ko"] for k, v in entry["options"].items()}
        for where, text in texts.items():
            if not HANGUL.search(text):
                problems.append(f"{where}: no Korean in {text!r}")
            problems += [f"{where}: English {run!r}" for run in english_runs(text)]
    assert not problems, "\n".join(problems)


def test_english_runs_are_found_outside_code_only() -> None:
    assert english_runs("Run the edge agent 지금.") == ["Run the edge agent"]
    assert english_runs("`axhub run ingest`와 같은 방식. AX Hub의 API 서버") == []
    assert english_runs("```\nplain English code here\n```\n설명") == []


def test_the_korean_page_is_korean_and_complete() -> None:
    page = _hooks()._cli_markdown("ko")
    leaves = [path for path, command in ko.iter_commands(_root()) if not ko.is_group(command)]
    assert re.findall(r"^## `(axhub [^`]+)`$", page, re.MULTILINE) == leaves
    assert page.count("| 옵션 | 의미 |") == sum(
        1 for _, c in ko.iter_commands(_root()) if not ko.is_group(c) and ko.documented_params(c)
    )
    assert "`--folder` | 이미지 폴더(하위 폴더 이름이 레이블). |" in page  # axhub vision train
    assert "(필수)" in page and "(required)" not in page
    assert english_runs(page) == [], english_runs(page)[:10]


def test_the_english_page_has_no_korean() -> None:
    page = _hooks()._cli_markdown("en")
    assert "| option | meaning |" in page and "## `axhub vision train`" in page
    assert not HANGUL.search(page), [line for line in page.splitlines() if HANGUL.search(line)][:10]
    # The English survives the Korean tail being cut (and a " / " between English words stays).
    assert "| `--window` | MQTT receive maximum / broker in-flight window. |" in page
    assert "| `--model` | Model version id. (required) |" in page


@pytest.mark.parametrize(
    ("text", "english"),
    [
        ("Model version id. / 모델 버전.", "Model version id."),
        ("Casting: light model.\n/ 주조품 벤치마크.", "Casting: light model."),
        ("Simulate.\n\n/ 데모: 공장.", "Simulate."),
        ("Write files.\n\n공장을 시뮬레이션합니다.", "Write files."),
        ("MQTT receive maximum / broker window.", "MQTT receive maximum / broker window."),
        (None, ""),
    ],
)
def test_english_only(text: str | None, english: str) -> None:
    assert ko.english_only(text) == english


def test_help_speaks_korean_with_lang_ko_or_a_korean_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.delenv("AXHUB_LANG", raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("COLUMNS", "200")

    korean = runner.invoke(app, ["--lang", "ko", "vision", "train", "--help"])
    assert korean.exit_code == 0, korean.output
    assert "모델을 학습해 번들(ONNX와 JSON)로 저장하고 레지스트리에 등록합니다." in korean.output
    assert "이미지 폴더(하위 폴더 이름이 레이블)." in korean.output
    assert "이 도움말을 보여 주고 끝냅니다." in korean.output
    assert "image folder; sub-folder names are labels" not in korean.output

    after = runner.invoke(app, ["alerts", "ack", "--help", "--lang=ko"])  # --lang after --help
    assert "'axhub alerts list'가 보여 주는 알람 ID." in after.output, after.output

    english = runner.invoke(app, ["vision", "train", "--help"])
    assert "image folder; sub-folder names are labels" in english.output
    assert "Show this message and exit." in english.output
    assert "Options" in english.output and "옵션" not in english.output  # Typer's panel titles

    monkeypatch.setenv("AXHUB_LANG", "ko")
    by_locale = runner.invoke(app, ["keys", "--help"])
    assert "우리 조직의 API 키 목록" in by_locale.output, by_locale.output


def test_mkdocs_builds_the_korean_page_under_the_korean_nav_label() -> None:
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    assert "Command line: 명령줄\n" in config
    assert "/docs/reference/cli.ko.md" in (REPO / ".gitignore").read_text(encoding="utf-8")


def test_only_a_help_screen_loads_the_catalogue() -> None:
    root = _root()
    assert ko._shows_help(root, ["vision", "train", "--help"])
    assert ko._shows_help(root, ["--lang", "ko", "alerts"])  # a group alone answers with help
    assert ko._shows_help(root, [])
    assert not ko._shows_help(root, ["--lang", "ko", "alerts", "list"])
    assert not ko._shows_help(root, ["query", "press-1", "--start", "2026-03-02"])


if __name__ == "__main__":  # print what to add or fix in the catalogue
    sys.exit("\n".join(ko.catalogue_problems(_root(), ko.load_catalogue())) or 0)
