"""The long-running processes ask glibc for two malloc arenas and the ingest worker puts Arrow
on the system allocator (issue 11's soak: RSS in steps)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from axhub.core import malloc_arenas

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(M_ARENA_MAX) is glibc's")
def test_glibc_agrees_to_two_arenas_in_a_fresh_process() -> None:
    code = "from axhub.core.malloc_arenas import limit_malloc_arenas; print(limit_malloc_arenas())"
    out = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(SRC)}, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"


def test_nothing_is_done_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(malloc_arenas.sys, "platform", "win32")
    assert malloc_arenas.limit_malloc_arenas() is False


def test_ingest_worker_and_edge_agent_ask_before_their_threads_start() -> None:
    run_source = (SRC / "axhub" / "cli" / "run.py").read_text()
    assert run_source.index("limit_malloc_arenas()") < run_source.index("threading.Thread(")
    agent_source = (SRC / "axhub" / "edge" / "agent.py").read_text()
    main = agent_source[agent_source.index("def main(") :]
    assert main.index("limit_malloc_arenas()") < main.index("Agent(args.home)")


def _arrow_backend(argv: list[str], **env: str) -> str:
    """The allocator Arrow uses in a fresh process whose command line is ``argv``."""
    code = (
        "import sys; sys.argv = sys.argv[1:]; import axhub.cli.main; import pyarrow as pa; "
        "print(pa.default_memory_pool().backend_name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *argv],
        env={"PYTHONPATH": str(SRC), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator is chosen on Linux only")
def test_ingest_worker_gets_the_system_allocator_for_arrow_and_other_commands_do_not() -> None:
    assert _arrow_backend(["axhub", "--lang", "ko", "run", "ingest", "-c", "plant.yaml"]) == "system"
    assert _arrow_backend(["axhub", "run", "ingest"]) == "system"
    assert _arrow_backend(["axhub", "bench", "casting"]) != "system"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator is chosen on Linux only")
def test_an_allocator_the_user_chose_is_kept() -> None:
    assert _arrow_backend(["axhub", "run", "ingest"], ARROW_DEFAULT_MEMORY_POOL="jemalloc") == "jemalloc"


def test_arrow_pool_choice_is_linux_only_and_needs_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv first, so that the variable this test sets is removed again afterwards.
    monkeypatch.setenv(malloc_arenas.ARROW_POOL_ENV, "")
    monkeypatch.delenv(malloc_arenas.ARROW_POOL_ENV)
    monkeypatch.setattr(malloc_arenas.sys, "platform", "win32")
    assert malloc_arenas.arrow_pool_for_command(["axhub", "run", "ingest"]) is False
    monkeypatch.setattr(malloc_arenas.sys, "platform", "linux")
    assert malloc_arenas.arrow_pool_for_command(["axhub", "run", "pipeline"]) is False
    assert malloc_arenas.ARROW_POOL_ENV not in malloc_arenas.os.environ
    assert malloc_arenas.arrow_pool_for_command(["axhub", "--lang", "en", "run", "ingest"]) is True
    assert malloc_arenas.os.environ[malloc_arenas.ARROW_POOL_ENV] == "system"
