"""Bundle refusals name the file inside the bundle and the failed check, in the reader's
language, and never a server path (bundles are unpacked into temporary folders)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest

from _edge import anomaly_bundle
from axhub.edge.bundles import BundleSlots
from axhub.registry.bundle import BundleError, sha256_file, sign_bundle_ed25519
from axhub.registry.signing import load_or_create_hub_key

_PATHS = re.compile(r"/(tmp|var|home|work|root)\b|axhub-bundle-|\.staging-")


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    root = tmp_path_factory.mktemp("refusals")
    directory = root / "unpacked"
    with zipfile.ZipFile(anomaly_bundle(root)) as archive:
        archive.extractall(directory)
    key = load_or_create_hub_key(root / "hub")
    sign_bundle_ed25519(directory, key.private_pem)
    return directory, key.public_pem


def _refusal(folder: Path, public: bytes, device: Path) -> BundleError:
    archive = Path(shutil.make_archive(str(folder.parent / f"{folder.name}-upload"), "zip", folder))
    data = archive.read_bytes()
    with pytest.raises(BundleError) as caught:
        BundleSlots(device, public).install(data, hashlib.sha256(data).hexdigest())
    return caught.value


def _no_path(text: str) -> None:
    assert not _PATHS.search(text), text
    assert tempfile.gettempdir() not in text
    assert "Traceback" not in text


def test_tampered_file_names_the_file_and_the_hash_check(signed: tuple[Path, bytes], tmp_path: Path) -> None:
    directory, public = signed
    tampered = tmp_path / "tampered"
    shutil.copytree(directory, tampered)
    prep = json.loads((tampered / "preprocessing.json").read_text())
    prep["threshold"] = 1e9
    (tampered / "preprocessing.json").write_text(json.dumps(prep))

    error = _refusal(tampered, public, tmp_path / "device")
    for text in (str(error), *error.render("en"), *error.render("ko")):
        _no_path(text)
    message, hint = error.render("en")
    assert "preprocessing.json" in message and "sha256 differs" in message and "hash check" in message
    assert "axhub edge rollout" in hint
    message_ko, hint_ko = error.render("ko")
    assert "preprocessing.json" in message_ko and "해시 검사" in message_ko
    assert "다시 보내세요" in hint_ko
    # A Korean message has no English words (file names, the bundle's short hash and sha256 aside).
    leftover = re.sub(r"preprocessing\.json|manifest\.json|sha256|[0-9a-f]{12}", "", message_ko)
    assert not re.search(r"[A-Za-z]{3,}", leftover), message_ko


def test_edited_manifest_and_unsigned_bundle_name_the_signature_check(
    signed: tuple[Path, bytes], tmp_path: Path
) -> None:
    directory, public = signed
    edited = tmp_path / "edited"
    shutil.copytree(directory, edited)
    prep = json.loads((edited / "preprocessing.json").read_text())
    prep["threshold"] = 1e9
    (edited / "preprocessing.json").write_text(json.dumps(prep))
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["files"]["preprocessing.json"] = sha256_file(edited / "preprocessing.json")
    (edited / "manifest.json").write_text(json.dumps(manifest))

    error = _refusal(edited, public, tmp_path / "device")
    message, hint = error.render("en")
    _no_path(message + hint + str(error))
    assert "manifest.json" in message and "signature check" in message and "edited after signing" in message
    assert "서명 검사" in error.render("ko")[0]

    del manifest["signature_ed25519"]
    (edited / "manifest.json").write_text(json.dumps(manifest))
    error = _refusal(edited, public, tmp_path / "device")
    message, hint = error.render("en")
    _no_path(message + hint + str(error))
    assert "not signed by the hub" in message and "axhub edge rollout" in hint
    assert "허브가 서명한 번들이 아닙니다" in error.render("ko")[0]


def test_added_file_and_altered_download_are_named(signed: tuple[Path, bytes], tmp_path: Path) -> None:
    directory, public = signed
    added = tmp_path / "added"
    shutil.copytree(directory, added)
    (added / "state" / "extra.npy").parent.mkdir(exist_ok=True)
    (added / "state" / "extra.npy").write_bytes(b"x")
    error = _refusal(added, public, tmp_path / "device")
    assert "state/extra.npy" in error.render("en")[0] and "not listed" in error.render("en")[0]
    _no_path(str(error))

    data = b"not the archive the hub announced"
    with pytest.raises(BundleError) as caught:
        BundleSlots(tmp_path / "device", public).install(data, "0" * 64)
    message_ko, _ = caught.value.render("ko")
    assert "불완전하거나 바뀌었습니다" in message_ko
    _no_path(str(caught.value))
