"""The long-running processes ask glibc for two malloc arenas (issue 11's soak: RSS in steps)."""

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
