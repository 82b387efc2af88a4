"""``axhub connect opcua-certificate``: the client certificate an OPC UA server is asked to trust.
The same function makes the soak's certificate, which node-opcua accepts on a signed channel
(tests/test_opcua_resume.py)."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from axhub.cli.main import app
from axhub.ingest.connectors.opcua_certificate import certificate_uri, make_client_certificate


def test_certificate_carries_the_application_uri_for_client_use_and_the_key_stays_private(
    tmp_path: Path,
) -> None:
    cert_file, key_file = make_client_certificate(tmp_path / "pki", application_uri="urn:press-line:axhub")

    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert certificate_uri(cert_file) == "urn:press-line:axhub"
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in list(usages)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key_file.read_bytes()


def test_an_existing_certificate_is_kept_unless_replaced(tmp_path: Path) -> None:
    cert_file, _ = make_client_certificate(tmp_path)
    first = cert_file.read_bytes()
    assert make_client_certificate(tmp_path)[0].read_bytes() == first  # a trusted one is not lost
    (tmp_path / "axhub-opcua-client.key").chmod(0o644)
    assert make_client_certificate(tmp_path, replace=True)[0].read_bytes() != first
    # The new key is private again, whatever the mode of the file it replaced.
    assert stat.S_IMODE((tmp_path / "axhub-opcua-client.key").stat().st_mode) == 0o600


def test_cli_says_what_to_put_in_the_mapping_and_what_to_trust_in_both_languages(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "pki"
    english = runner.invoke(app, ["--lang", "en", "connect", "opcua-certificate", "--out", str(out)])
    assert english.exit_code == 0, english.output
    text = " ".join(english.output.split())
    assert "security_mode: Sign" in text
    assert f"certificate: {(out / 'axhub-opcua-client.pem').resolve()}" in text
    assert f"private_key: {(out / 'axhub-opcua-client.key').resolve()}" in text
    assert "trust the certificate on the server" in text

    korean = runner.invoke(app, ["--lang", "ko", "connect", "opcua-certificate", "--out", str(out)])
    assert korean.exit_code == 0, korean.output
    text = " ".join(korean.output.split())
    assert "이미 있어 그대로 두었습니다" in text and "서버에서 이 인증서를 신뢰하세요" in text
    assert "trust the certificate" not in text
