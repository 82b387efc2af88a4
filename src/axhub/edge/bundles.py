"""Bundles on the device: verify, install, swap atomically, roll back.

Layout under ``<home>/bundles``::

    <sha256>/      one verified bundle per archive hash (read-only once in place)
    current  ->    symlink to the bundle that runs
    previous ->    symlink to the one before (what a rollback returns to)
    swap.json      written before a swap, removed after its health check

Install: the archive's sha256 must be the one the hub announced, then ``read_bundle`` checks every
file hash AND the Ed25519 signature against the hub key pinned at enrolment; only then are the
files copied to ``.staging-<sha>``, fsynced and renamed to ``<sha>``. Swap: a new symlink renamed
over ``current`` (rename is atomic), so a crash at any point leaves ``current`` pointing at a
complete bundle. A crash during a health check (``swap.json`` still there) is undone on start.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from axhub.registry.bundle import BundleRunner, bundle_problem, read_bundle, refused

SWAP_FILE = "swap.json"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for path in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        _fsync_dir(path)


class BundleSlots:
    def __init__(self, home: Path, public_key: bytes) -> None:
        self.root = home / "bundles"
        self.root.mkdir(parents=True, exist_ok=True)
        self.public_key = public_key

    # ------------------------------------------------------------------ state
    def _link(self, name: str) -> str | None:
        path = self.root / name
        return os.readlink(path) if path.is_symlink() else None

    @property
    def current_sha(self) -> str | None:
        return self._link("current")

    @property
    def previous_sha(self) -> str | None:
        return self._link("previous")

    def recover(self) -> dict[str, Any] | None:
        """After a restart: clear half-copied bundles; undo a swap whose check never finished."""
        for leftover in self.root.glob(".staging-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in self.root.glob(".link-*"):
            leftover.unlink(missing_ok=True)
        swap = self.root / SWAP_FILE
        if not swap.is_file():
            return None
        info = json.loads(swap.read_text())
        if self.current_sha == info.get("candidate") and info.get("previous"):
            self._point("current", info["previous"])
        swap.unlink()
        return {**info, "outcome": "rolled_back", "reason": "the agent stopped during the health check"}

    # ------------------------------------------------------------------ install
    def install(self, archive: bytes, expected_sha: str) -> Path:
        """Verify and store an archive; returns its bundle directory. Refuses with BundleError."""
        got = hashlib.sha256(archive).hexdigest()
        if got != expected_sha:
            raise refused(
                expected_sha[:12],
                [bundle_problem("zip", "bundle_download_altered", got=got[:12], expected=expected_sha[:12])],
            )
        label = expected_sha[:12]  # what the hub and the fleet page call it; never a local path
        target = self.root / expected_sha
        if target.is_dir():
            read_bundle(target, public_key=self.public_key, label=label)  # still intact?
            return target
        zip_path = self.root / f".staging-{expected_sha}.zip"
        zip_path.write_bytes(archive)
        try:
            verified = read_bundle(zip_path, public_key=self.public_key, label=label)
            staging = self.root / f".staging-{expected_sha}"
            shutil.copytree(verified.path, staging)
            if verified._tmp is not None:
                verified._tmp.cleanup()
            _fsync_tree(staging)
            os.rename(staging, target)
            _fsync_dir(self.root)
        finally:
            zip_path.unlink(missing_ok=True)
        return target

    def has(self, sha: str) -> bool:
        """Whether a verified bundle with this archive hash is stored here."""
        return (self.root / sha).is_dir()

    def runner(self, sha: str | None = None) -> BundleRunner | None:
        """A runner for a stored bundle (the current one by default), verified again on load."""
        sha = sha or self.current_sha
        if sha is None:
            return None
        return BundleRunner(self.root / sha, public_key=self.public_key)

    # ------------------------------------------------------------------ swapping
    def _point(self, name: str, sha: str) -> None:
        tmp = self.root / f".link-{name}"
        tmp.unlink(missing_ok=True)
        os.symlink(sha, tmp)
        os.replace(tmp, self.root / name)
        _fsync_dir(self.root)

    def begin_swap(self, candidate: str, rollout_id: str | None = None) -> None:
        """Point ``current`` at the candidate, remembering what to return to."""
        previous = self.current_sha
        info = {"candidate": candidate, "previous": previous, "rollout_id": rollout_id}
        tmp = self.root / f".{SWAP_FILE}.tmp"
        tmp.write_text(json.dumps(info))
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / SWAP_FILE)
        if previous is not None:
            self._point("previous", previous)
        self._point("current", candidate)

    def commit_swap(self) -> None:
        (self.root / SWAP_FILE).unlink(missing_ok=True)
        _fsync_dir(self.root)

    def roll_back(self) -> None:
        swap = self.root / SWAP_FILE
        info = json.loads(swap.read_text()) if swap.is_file() else {"previous": self.previous_sha}
        if info.get("previous"):
            self._point("current", str(info["previous"]))
        else:
            (self.root / "current").unlink(missing_ok=True)
            _fsync_dir(self.root)
        swap.unlink(missing_ok=True)
