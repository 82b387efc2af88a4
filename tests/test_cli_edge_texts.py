"""`axhub edge` speaks through the CLI's one text table (`cli/_lang.py` TEXTS, `--lang`), like
the other commands: no inline table of its own, every key it shows exists in both languages."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from axhub.cli import _lang

CLI = Path(_lang.__file__).parent


def _keys_used(path: Path) -> set[str]:
    keys = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "t"
            and node.args
        ):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                keys.add(first.value)
    return keys


def test_edge_cli_has_no_text_table_of_its_own_and_its_keys_exist() -> None:
    source = (CLI / "edge.py").read_text(encoding="utf-8")
    assert "_TEXTS" not in source and "def _t(" not in source
    used = _keys_used(CLI / "edge.py")
    assert {"edge.token", "edge.enrolled", "edge.fleet", "edge.rollout", "edge.revoke.done"} <= used
    assert used <= set(_lang.TEXTS), used - set(_lang.TEXTS)
    for col in ("name", "group", "online", "sync", "depth", "bundle", "agent", "cpu", "rss"):
        assert f"edge.col.{col}" in _lang.TEXTS
    for key in [k for k in _lang.TEXTS if k.startswith("edge.")]:
        en, ko = _lang.TEXTS[key]
        assert en and ko
        if not re.fullmatch(r"[A-Z% ]+", en):  # 'CPU %' reads the same in both
            assert re.search(r"[가-힣]", ko), key


@pytest.mark.parametrize(
    ("lang", "shown", "absent"),
    [
        ("ko", ["엣지 장치", "장치", "그룹", "버퍼"], ["Edge devices", "group", "buffered"]),
        ("en", ["Edge devices", "device", "group", "buffered"], ["엣지", "장치", "그룹"]),
    ],
)
def test_edge_status_speaks_one_language(
    lang: str,
    shown: list[str],
    absent: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    from typer.testing import CliRunner

    from axhub.cli.main import app
    from axhub.core.settings import get_settings

    monkeypatch.setenv("AXHUB_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    out = CliRunner().invoke(app, ["edge", "status", "--org", "hanbit", "--lang", lang])
    assert out.exit_code == 0, out.output
    for word in shown:
        assert word in out.output, out.output
    for word in absent:
        assert word not in out.output, out.output
