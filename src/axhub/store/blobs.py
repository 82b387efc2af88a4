"""Content-addressed blob store for images and model bundles (files named by sha256).

Writes are atomic (temp file, fsync, rename), so a crash never leaves a half-written blob
under its final name; putting the same content twice stores it once.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from axhub.core.errors import AxHubError, NotFoundError

_SHA = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not _SHA.match(sha256):
            raise AxHubError(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes | Path) -> str:
        """Store bytes or a file's content; returns its sha256."""
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes):
                    digest.update(data)
                    out.write(data)
                else:
                    with open(data, "rb") as src:
                        while chunk := src.read(_CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self.path(sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                os.unlink(tmp_name)
            else:
                os.replace(tmp_name, final)
            return sha
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def get(self, sha256: str) -> bytes:
        path = self.path(sha256)
        if not path.is_file():
            raise NotFoundError(f"blob {sha256[:12]}… not found")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise AxHubError(f"blob {sha256[:12]}… is corrupt (hash mismatch)", hint="re-upload it")
        return data
