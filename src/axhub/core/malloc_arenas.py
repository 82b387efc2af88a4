"""Allocators for long-running, many-threaded processes (the ingest worker, the edge agent).

Fewer glibc malloc arenas:

glibc gives threads that allocate at the same time arenas of their own, up to eight per core,
and an arena gives memory back to the system only from its top. The ingest worker's threads
(a protocol client, the writer, the background compaction) take turns with large temporary
tables, so each arena keeps its own high-water mark and the resident size rises in steps
that never come down (issue 11's soak). Two arenas is the usual remedy (the same as
``MALLOC_ARENA_MAX=2`` in the environment); elsewhere (musl, macOS, Windows) nothing changes.

Arrow's buffers from that malloc too (``arrow_pool_for_command``): pyarrow's bundled mimalloc
kept what the store's merges had used. Replaying the soak's writes (``scripts/store_rss_repro.py``),
the resident size rose 174 -> 224 MB over 30 simulated minutes (a step at each larger merge
tier, the largest at 22.5 min), against 164 -> 175 MB with the system allocator and two arenas,
flat after that.
Arrow picks its allocator once, when pyarrow is imported, from ``ARROW_DEFAULT_MEMORY_POOL``,
so the command line decides before anything imports it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Sequence

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)

ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
# Commands that run for days and write Parquet all along (their first words).
LONG_RUNNING_COMMANDS = (("run", "ingest"),)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Ask glibc for at most ``arenas`` malloc arenas; True when it agreed. Call it early,
    before the threads start (arenas already made stay)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    agreed = bool(mallopt(_M_ARENA_MAX, arenas))
    log.debug("malloc arenas limited to %d: %s", arenas, agreed)
    return agreed


def arrow_pool_for_command(argv: Sequence[str]) -> bool:
    """Choose the system allocator for Arrow when ``argv`` runs a long-running command on
    Linux; True when chosen. Must run before pyarrow is imported (later, Arrow keeps the
    allocator it has); a pool the user chose in the environment is kept."""
    if not sys.platform.startswith("linux") or ARROW_POOL_ENV in os.environ:
        return False
    # The command's words, wherever global options (``--lang ko``) put them.
    words = tuple(a for a in argv[1:] if not a.startswith("-"))
    spans = {words[i : i + len(cmd)] for cmd in LONG_RUNNING_COMMANDS for i in range(len(words))}
    if not spans & set(LONG_RUNNING_COMMANDS):
        return False
    os.environ[ARROW_POOL_ENV] = "system"
    return True
