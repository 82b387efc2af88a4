"""The dead-letter store: payloads and rows that could not be ingested, with the reason.

Nothing a machine sent is silently dropped: a malformed message is written here (durably,
before its MQTT ack) so a person can see what arrived, why it was refused, and replay it
after fixing the mapping. One JSON-lines file per organisation and UTC day::

    <root>/<org>/2024-05-01.jsonl   {"received_at", "source", "origin", "reason", "payload", ...}

Payloads are stored as UTF-8 text when they are text, else base64 (``encoding`` says which).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from axhub.core.ids import check_path_safe
from axhub.ingest.connectors.base import Rejected


@dataclass(frozen=True)
class DeadLetter:
    received_at: datetime
    source: str
    origin: str
    reason: str
    payload: bytes


def _encode_payload(payload: bytes) -> tuple[str, str]:
    try:
        return payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode("ascii"), "base64"


class DeadLetterStore:
    """Append-only, fsync'ed JSON-lines files under ``root``."""

    def __init__(self, root: str | Path, *, max_payload_bytes: int = 1_000_000) -> None:
        self.root = Path(root)
        self.max_payload_bytes = max_payload_bytes
        self._lock = threading.Lock()

    def _file(self, org: str, when: datetime) -> Path:
        folder = self.root / check_path_safe(org, "organisation")
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{when.strftime('%Y-%m-%d')}.jsonl"

    def add(self, org: str, items: Sequence[Rejected]) -> int:
        """Store rejected payloads; returns how many. Durable when it returns."""
        if not items:
            return 0
        now = datetime.now(UTC)
        lines = []
        for item in items:
            payload = item.payload[: self.max_payload_bytes]
            text, encoding = _encode_payload(payload)
            record: dict[str, Any] = {
                "received_at": now.isoformat(),
                "source": item.source,
                "origin": item.origin,
                "reason": item.reason,
                "payload": text,
                "encoding": encoding,
                "truncated": len(item.payload) > len(payload),
            }
            lines.append(json.dumps(record, ensure_ascii=False))
        with self._lock, self._file(org, now).open("a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return len(items)

    def read(self, org: str) -> Iterator[DeadLetter]:
        """Every dead letter of ``org``, oldest first."""
        folder = self.root / check_path_safe(org, "organisation")
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.jsonl")):
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        # A line cut short by a crash mid-write; its message was never acked,
                        # so the broker redelivers it and it is written again in full.
                        continue
                    payload = (
                        base64.b64decode(rec["payload"])
                        if rec.get("encoding") == "base64"
                        else rec["payload"].encode("utf-8")
                    )
                    yield DeadLetter(
                        received_at=datetime.fromisoformat(rec["received_at"]),
                        source=rec["source"],
                        origin=rec["origin"],
                        reason=rec["reason"],
                        payload=payload,
                    )

    def count(self, org: str) -> int:
        return sum(1 for _ in self.read(org))
