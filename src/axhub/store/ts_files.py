"""Durable file primitives and the per-partition manifest of the time-series store.

Every partition directory (``org=<org>/asset=<asset>/date=YYYY-MM-DD``) holds immutable
``part-<min_us>-<max_us>-<id>.parquet`` files and one ``_manifest.json`` that lists the
files that are *committed*. The manifest is the single commit point:

* a writer writes its Parquet file to a temp name, fsyncs it, renames it to ``part-*``,
  then atomically replaces the manifest (temp + fsync + rename + directory fsync);
* compaction writes the merged file the same way and swaps the manifest from the old list
  to the new one in one rename, so a reader sees either the old files or the new file,
  never both;
* anything on disk that the manifest does not list (a temp file, a renamed part whose
  manifest update never happened, the old files of a finished compaction) belongs to a
  writer that died; the next writer of the partition deletes it while holding the lock.

A SIGKILL at any instant therefore leaves the partition at its last committed state.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_NAME = "_manifest.json"
LOCK_NAME = ".lock"
TMP_PREFIX = ".tmp-"
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
ROLLUP_PREFIX = "rollup-"


def fsync_file(path: Path) -> None:
    """Flush a file's data to stable storage (a read-only descriptor is enough on Linux)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make renames/creations/deletions inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durable(path: Path) -> None:
    """``mkdir -p`` that also fsyncs each parent whose entry it created."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_dir(created.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new content only."""
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}{path.suffix}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def temp_path(directory: Path) -> Path:
    """A name in ``directory`` that readers never pick up (not ``part-*``, not listed)."""
    return directory / f"{TMP_PREFIX}{uuid.uuid4().hex}{PART_SUFFIX}"


def part_name(min_us: int, max_us: int) -> str:
    """The time range in the name lets a person (and ``ls``) see what a file covers."""
    return f"{PART_PREFIX}{min_us}-{max_us}-{uuid.uuid4().hex[:12]}{PART_SUFFIX}"


@dataclass(frozen=True)
class PartFile:
    """One committed Parquet file of a partition and what it holds."""

    name: str
    min_us: int
    max_us: int
    rows: int
    bytes: int
    signals: tuple[str, ...]
    # 1-minute partial aggregates of this file (written by compaction), if any.
    rollup: str | None = None
    rollup_bytes: int = 0
    # Physical type of the ``value`` column. Files written before values were kept
    # losslessly hold float32 (manifests of that time have no such field).
    value_type: str = "float32"
    # Whether the file has a ``value_int`` column: exact integers beyond +-2^53 (int64,
    # null where ``value`` is exact), written only where a source sent such integers.
    exact_ints: bool = False

    def overlaps(self, start_us: int, end_us: int) -> bool:
        """Whether [min, max] meets the closed range [start, end]."""
        return self.min_us <= end_us and self.max_us >= start_us


@dataclass
class Manifest:
    """The committed file list of one partition (file order = write order)."""

    files: list[PartFile] = field(default_factory=list)
    version: int = 1

    @property
    def total_rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes + f.rollup_bytes for f in self.files)

    def signals(self) -> set[str]:
        out: set[str] = set()
        for f in self.files:
            out.update(f.signals)
        return out

    def to_json(self) -> bytes:
        payload = {"version": self.version, "files": [asdict(f) for f in self.files]}
        return json.dumps(payload, separators=(",", ":")).encode()


def read_manifest(partition: Path) -> Manifest:
    """The committed state of a partition; a partition without a manifest is empty."""
    try:
        raw = (partition / MANIFEST_NAME).read_bytes()
    except FileNotFoundError:
        return Manifest()
    payload = json.loads(raw)
    files = [
        PartFile(
            name=f["name"],
            min_us=int(f["min_us"]),
            max_us=int(f["max_us"]),
            rows=int(f["rows"]),
            bytes=int(f["bytes"]),
            signals=tuple(f["signals"]),
            rollup=f.get("rollup"),
            rollup_bytes=int(f.get("rollup_bytes", 0)),
            value_type=str(f.get("value_type", "float32")),
            exact_ints=bool(f.get("exact_ints", False)),
        )
        for f in payload.get("files", [])
    ]
    return Manifest(files=files, version=int(payload.get("version", 1)))


def commit_manifest(partition: Path, manifest: Manifest) -> None:
    """The commit point of every write and compaction (atomic rename + directory fsync)."""
    atomic_write_bytes(partition / MANIFEST_NAME, manifest.to_json())


def remove_uncommitted(partition: Path, manifest: Manifest) -> int:
    """Delete what dead writers left behind; call only while holding the partition lock.

    Returns the number of files removed.
    """
    keep = {f.name for f in manifest.files} | {f.rollup for f in manifest.files if f.rollup}
    keep |= {MANIFEST_NAME, LOCK_NAME}
    removed = 0
    for entry in os.scandir(partition):
        if entry.name in keep or not entry.is_file():
            continue
        if entry.name.startswith((TMP_PREFIX, ROLLUP_PREFIX)) or (
            entry.name.startswith(PART_PREFIX) and entry.name.endswith(PART_SUFFIX)
        ):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
            removed += 1
    if removed:
        fsync_dir(partition)
    return removed
