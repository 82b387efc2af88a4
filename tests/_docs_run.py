"""Run one documentation page top to bottom, as a reader would: ``python _docs_run.py PAGE``.

Runs in the current folder (the test gives it a fresh one with its own AXHUB_HOME). Python
blocks share one namespace, like notebook cells; bash blocks run with ``set -euo pipefail``;
titled blocks of other languages are written as files. Stops at the first failing block and
names it (page:line).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _docs_pages import RUNNABLE, blocks


def main(page: Path) -> int:
    namespace: dict[str, object] = {"__name__": "__main__"}
    for block in blocks(page):
        if block.skip is not None:
            continue
        if block.title:
            Path(block.title).write_text(block.code, encoding="utf-8")  # a file the reader saves
            continue
        if block.lang not in RUNNABLE:
            continue
        print(f"--- {block.where} ({block.lang})", flush=True)
        started = time.perf_counter()
        if block.lang == "bash":
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], check=False)
            if done.returncode:
                print(f"FAILED: {block.where} exited {done.returncode}", flush=True)
                return 1
        else:
            try:
                exec(compile(block.code, block.where, "exec"), namespace)
            except Exception:
                import traceback

                traceback.print_exc()
                print(f"FAILED: {block.where}", flush=True)
                return 1
        print(f"--- {block.where} done in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
