"""Local alerts: a JSON-lines log on the device and, optionally, a webhook on the local network.

Both work without the hub. The log line is written (and fsynced) as the alert is raised; the
webhook is called from a small background thread so a slow receiver never holds up scoring.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class LocalAlerts:
    def __init__(self, log_path: Path, webhook_url: str | None = None, timeout_s: float = 3.0) -> None:
        self.log_path = log_path
        self.webhook_url = webhook_url
        self.timeout_s = timeout_s
        self.webhook_failures = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        if webhook_url:
            self._thread = threading.Thread(target=self._post_loop, name="edge-webhook", daemon=True)
            self._thread.start()

    def raise_alert(self, alert: dict[str, Any]) -> None:
        line = json.dumps(alert, ensure_ascii=False) + "\n"
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        log.warning("ALERT %s", alert.get("title"))
        if self._thread is not None:
            try:
                self._queue.put_nowait(alert)
            except queue.Full:
                self.webhook_failures += 1

    def _post_loop(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout_s) as http:
            while (alert := self._queue.get()) is not None:
                try:
                    http.post(str(self.webhook_url), json=alert).raise_for_status()
                except httpx.HTTPError as exc:
                    self.webhook_failures += 1
                    log.warning("alert webhook failed: %s", exc)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=self.timeout_s + 1)


def read_alert_log(path: Path) -> list[dict[str, Any]]:
    """The alerts logged on this device (a torn last line, from a crash mid-write, is skipped)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
