"""Everything refused for an organisation, per source: connector payloads in the dead-letter
store and rows in the rejects files of file ingests (uploads and ``axhub ingest``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from axhub.core.errors import InputProblem
from axhub.core.settings import Settings
from axhub.ingest.deadletter import DeadLetter, DeadLetterStore
from axhub.store.models import IngestRunRow
from axhub.store.scoped import OrgScope


def deadletter_store(settings: Settings) -> DeadLetterStore:
    """Where ``axhub run ingest`` keeps dead letters (one folder per organisation id)."""
    return DeadLetterStore(settings.home / "deadletter")


def dead_letters(settings: Settings, org_id: str, source: str | None = None) -> Iterator[DeadLetter]:
    for letter in deadletter_store(settings).read(org_id):
        if source is None or letter.source == source:
            yield letter


def display_source(run: IngestRunRow) -> str:
    """'upload:<sha>:<name>' -> the name; 'file:<path>' -> the path as the user typed it."""
    if run.source.startswith("upload:"):
        return run.source.split(":", 2)[2]
    return run.source.removeprefix("file:")


@dataclass
class FileRejects:
    run: IngestRunRow
    source: str
    problems: list[InputProblem]


def read_rejects(path: str | None, label: str, limit: int = 200) -> list[InputProblem]:
    """The first rows of a rejects CSV as problems (the reason is the stored English text)."""
    if not path or not Path(path).is_file():
        return []
    out: list[InputProblem] = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            params = json.loads(row["params"]) if row.get("params") else {}
            out.append(
                InputProblem(
                    label,
                    int(row["row"]) if row.get("row") else None,
                    row.get("field") or None,
                    row["reason"],
                    row.get("code") or "",
                    params,
                )
            )
            if len(out) >= limit:
                break
    return out


def file_rejects(scope: OrgScope, source: str | None = None, limit: int = 50) -> list[FileRejects]:
    stmt = (
        scope.select(IngestRunRow)
        .where(IngestRunRow.rows_rejected > 0)
        .order_by(IngestRunRow.started_at.desc())
    )
    out = []
    for run in scope.session.scalars(stmt.limit(1000)).all():
        name = display_source(run)
        if source is not None and name != source:
            continue
        out.append(FileRejects(run, name, read_rejects(run.rejects_path, name)))
        if len(out) >= limit:
            break
    return out


def summary(settings: Settings, scope: OrgScope) -> list[tuple[str, str, int, datetime | None]]:
    """(source, kind, refused count, last time) for every source that refused something."""
    found: dict[tuple[str, str], tuple[int, datetime | None]] = {}
    for letter in dead_letters(settings, scope.org_id):
        count, last = found.get((letter.source, "connector"), (0, None))
        found[(letter.source, "connector")] = (
            count + 1,
            max(last, letter.received_at) if last else letter.received_at,
        )
    for item in file_rejects(scope, limit=1000):
        key = (item.source, "file")
        count, last = found.get(key, (0, None))
        when = item.run.finished_at or item.run.started_at
        found[key] = (count + item.run.rows_rejected, max(last, when) if last else when)
    return sorted(
        ((s, k, n, t) for (s, k), (n, t) in found.items()), key=lambda r: r[3] or datetime.min, reverse=True
    )
