"""A member on its own machine: the same client, its data in a local file, connecting to the
hub over TLS (verifying the hub's certificate against the CA it was given)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from axhub.federated.learner import FedTask
from axhub.federated.process import launch, save_member_data

pytestmark = [pytest.mark.slow, pytest.mark.torch]  # members train a torch model


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificates(folder: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AX Hub test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(_pem(key))


def test_members_train_over_tls_from_their_own_files(tmp_path: Path) -> None:
    _certificates(tmp_path / "tls")
    task = FedTask(kind="classification", n_features=4, n_outputs=2, hidden=8, lr=1e-2, batch_size=32)
    rng = np.random.default_rng(0)
    members = []
    for i in range(2):
        x = rng.normal(loc=i * 0.3, size=(160, 4)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0.3 * i).astype(np.int64)
        data = save_member_data(tmp_path / f"site-{i}.npz", x[:120], y[:120], x[120:], y[120:])
        policy = {"min_local_samples": 50, "allowed_metrics": ["accuracy", "loss"]}
        members.append({"member": f"site-{i}", "task": task.to_json(), "policy": policy, "data": str(data)})
    summary = launch(
        task.to_json(), members, rounds=2, workdir=tmp_path / "run", tls_dir=tmp_path / "tls", timeout=240
    )
    assert summary["stopped"] is None
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    assert all(r["members"][f"site-{i}"]["status"] == 0 for r in summary["rounds"] for i in range(2))
    assert "SSL is enabled" in (tmp_path / "run" / "logs" / "server.log").read_text(errors="replace")
