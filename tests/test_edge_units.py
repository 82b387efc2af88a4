"""Edge pieces on their own: Ed25519 bundle signatures, the store-and-forward buffer, the light
import set of the agent."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from _edge import anomaly_bundle
from axhub.edge.buffer import ALERTS_KIND, Buffer, decode_events, decode_readings, readings_table
from axhub.registry.bundle import (
    BundleError,
    read_bundle,
    sign_bundle_ed25519,
    sign_manifest,
    verify_bundle,
)
from axhub.registry.signing import load_or_create_hub_key


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, bytes]:
    root = tmp_path_factory.mktemp("sign")
    archive = anomaly_bundle(root)
    directory = root / "unpacked"
    with zipfile.ZipFile(archive) as z:
        z.extractall(directory)
    key = load_or_create_hub_key(root / "hub")
    sign_bundle_ed25519(directory, key.private_pem)
    return directory, key.private_pem, key.public_pem


def test_hub_key_is_made_once_and_kept(tmp_path: Path) -> None:
    first = load_or_create_hub_key(tmp_path)
    again = load_or_create_hub_key(tmp_path)
    assert first.public_pem == again.public_pem
    assert (tmp_path / "edge_signing_key.pem").stat().st_mode & 0o077 == 0


def test_signed_bundle_verifies_with_the_hub_public_key(signed: tuple[Path, bytes, bytes]) -> None:
    directory, _private, public = signed
    assert verify_bundle(directory, public_key=public) == []
    assert read_bundle(directory, public_key=public).manifest["signature_ed25519"]


def test_other_key_tampered_file_and_unsigned_bundle_are_refused(
    signed: tuple[Path, bytes, bytes], tmp_path: Path
) -> None:
    import shutil

    directory, _private, public = signed
    other = load_or_create_hub_key(tmp_path / "other").public_pem
    assert any("does not match the hub's public key" in p for p in verify_bundle(directory, public_key=other))

    tampered = tmp_path / "tampered"
    shutil.copytree(directory, tampered)
    prep = json.loads((tampered / "preprocessing.json").read_text())
    prep["threshold"] = 1e9  # silence every alarm
    (tampered / "preprocessing.json").write_text(json.dumps(prep))
    with pytest.raises(BundleError, match="sha256 differs"):
        read_bundle(tampered, public_key=public)

    # Re-hashing the manifest to match does not help: the signature covers the hashes.
    from axhub.registry.bundle import sha256_file

    manifest = json.loads((tampered / "manifest.json").read_text())
    manifest["files"]["preprocessing.json"] = sha256_file(tampered / "preprocessing.json")
    (tampered / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="Ed25519 signature does not match"):
        read_bundle(tampered, public_key=public)

    del manifest["signature_ed25519"]
    (tampered / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not signed by the hub"):
        read_bundle(tampered, public_key=public)


def test_hmac_signature_still_works_beside_ed25519(signed: tuple[Path, bytes, bytes], tmp_path: Path) -> None:
    import shutil

    directory, _private, public = signed
    both = tmp_path / "both"
    shutil.copytree(directory, both)
    manifest = json.loads((both / "manifest.json").read_text())
    manifest["signature"] = sign_manifest(manifest, b"shared-secret")
    (both / "manifest.json").write_text(json.dumps(manifest))
    assert verify_bundle(both, key=b"shared-secret", require_signature=True) == []
    assert verify_bundle(both, public_key=public) == []
    assert verify_bundle(both, key=b"wrong", require_signature=True) != []


def _readings(n: int, start_us: int = 1_772_409_600_000_000, asset: str = "프레스-1") -> pa.Table:
    return readings_table(
        [asset] * n,
        ["압력"] * n,
        [start_us + i * 100_000 for i in range(n)],
        [float(i) for i in range(n)],
        [0] * n,
    )


def test_buffer_forms_batches_once_and_resends_the_same_batch_after_a_restart(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.db")
    buffer.add_readings(_readings(250))
    buffer.add_event(ALERTS_KIND, {"id": "ealert_1", "asset": "프레스-1", "ts": "2026-03-02T00:00:00+00:00"})
    first = buffer.next_batch(max_rows=100)
    assert first is not None and first.kind == ALERTS_KIND
    assert decode_events(first.payload)[0]["id"] == "ealert_1"
    buffer.close()
    # "crash" before the ack: the same batch (same id, same payload) comes back
    buffer = Buffer(tmp_path / "b.db")
    again = buffer.next_batch(max_rows=100)
    assert again == first
    buffer.ack(again)
    seen: list[float] = []
    while (batch := buffer.next_batch(max_rows=100)) is not None:
        table = decode_readings(batch.payload)
        assert table.column("asset").to_pylist()[0] == "프레스-1"
        seen += table.column("value").to_pylist()
        buffer.ack(batch)
    assert seen == [float(i) for i in range(250)]
    assert buffer.depth()["total"] == 0
    assert buffer.counters()["sent_readings"] == 250


def test_quota_drops_oldest_readings_never_alerts_and_counts_them(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "q.db", quota_bytes=256 * 1024)
    for i in range(50):
        buffer.add_event(ALERTS_KIND, {"id": f"ealert_{i}", "asset": "a", "ts": "2026-03-02T00:00:00+00:00"})
    for chunk in range(40):
        buffer.add_readings(_readings(1000, start_us=1_772_409_600_000_000 + chunk * 100_000_000))
    assert buffer.used_bytes() <= buffer.quota_bytes
    dropped = buffer.counters()["dropped_readings"]
    depth = buffer.depth()
    assert dropped > 0 and depth["readings"] + dropped == 40_000
    assert depth["events"] == 50  # alerts are never dropped
    # the oldest went first: what is left is the newest readings
    batch = buffer.next_batch(max_rows=100)  # alerts first
    assert batch is not None and batch.kind == ALERTS_KIND and batch.rows == 50
    buffer.ack(batch)
    batch = buffer.next_batch(max_rows=100_000)
    assert batch is not None
    values = decode_readings(batch.payload).column("value").to_pylist()
    assert values[-1] == 999.0 and len(values) == 40_000 - dropped


def test_agent_imports_no_heavy_framework() -> None:
    code = (
        "import sys, axhub.edge.agent, axhub.edge.scoring, axhub.edge.bundles, "
        "axhub.ingest.connectors.factory, axhub.ingest.connectors.mqtt, "
        "axhub.ingest.connectors.opcua, axhub.ingest.connectors.modbus\n"
        "bad = ('torch', 'sklearn', 'fastapi', 'sqlalchemy', 'ray', 'starlette', 'axhub.store', 'axhub.ml')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad or m.startswith(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
