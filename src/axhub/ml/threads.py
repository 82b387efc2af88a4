"""How many CPU threads a small deep model trains with.

Small networks (a few thousand parameters, batches of a few hundred windows) gain nothing from
intra-op parallelism and lose a lot when the cores are shared: on the project's 2-core machine a
C-MAPSS 1D-CNN seed took over 9 minutes with torch's default thread count under load and about 2
with one thread. So training uses ``AXHUB_TORCH_THREADS`` threads (default 1), and the caller's
setting is restored afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def torch_threads() -> int:
    value = os.environ.get("AXHUB_TORCH_THREADS", "1")
    try:
        return max(1, int(value))
    except ValueError:
        return 1


@contextmanager
def limited_torch_threads() -> Iterator[int]:
    try:
        import torch
    except ModuleNotFoundError:  # torch not installed: no torch model runs, nothing to limit
        yield torch_threads()
        return

    previous = torch.get_num_threads()
    threads = torch_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)
