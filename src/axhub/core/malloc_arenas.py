"""Fewer glibc malloc arenas for long-running, many-threaded processes (the ingest worker).

glibc gives threads that allocate at the same time arenas of their own, up to eight per core,
and an arena gives memory back to the system only from its top. The ingest worker's threads
(a protocol client, the writer, the background compaction) take turns with large temporary
tables, so each arena keeps its own high-water mark and the resident size rises in steps
that never come down (issue 11's soak). Two arenas is the usual remedy (the same as
``MALLOC_ARENA_MAX=2`` in the environment); elsewhere (musl, macOS, Windows) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


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
