"""The hub's own Ed25519 signing key for bundles that travel (to edge devices).

Made once under ``AXHUB_HOME`` (``edge_signing_key.pem``, mode 600); the public half is what
devices pin at enrolment and what ``GET /api/v1/edge/hub-key`` publishes. No shared secret ever
leaves the hub: a device can check a bundle but never sign one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_FILE = "edge_signing_key.pem"


@dataclass(frozen=True)
class HubSigningKey:
    private_pem: bytes
    public_pem: bytes

    @property
    def fingerprint(self) -> str:
        """sha256 of the public key (hex, first 32): what a person compares by eye."""
        return hashlib.sha256(self.public_pem).hexdigest()[:32]


def public_pem_of(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_or_create_hub_key(home: Path) -> HubSigningKey:
    """The hub's key pair, generated on first use (an atomic create: two processes starting at
    once end up with the same key, never with two)."""
    path = home / KEY_FILE
    if not path.is_file():
        home.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails if another process won the race; theirs is kept
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    private_pem = path.read_bytes()
    return HubSigningKey(private_pem=private_pem, public_pem=public_pem_of(private_pem))


def fingerprint(public_pem: bytes) -> str:
    return hashlib.sha256(public_pem).hexdigest()[:32]
