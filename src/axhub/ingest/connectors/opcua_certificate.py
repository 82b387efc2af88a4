"""The OPC UA client certificate a plant's server is asked to trust (``axhub connect
opcua-certificate``).

Certificate security (``security_policy``/``security_mode`` in the mapping) needs an application
instance certificate whose subject alternative name carries the client's ApplicationUri (Part 6,
6.2.2): the source takes its URI from the certificate, and servers refuse a session whose URI
is not the certificate's. It is also what lets a restarted worker take its subscription over on
servers that only hand an anonymous subscription to the same signed channel (Part 4, 5.13.7).
The key never leaves the machine; only the certificate goes to the server's trust list.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

CERT_NAME = "axhub-opcua-client.pem"
KEY_NAME = "axhub-opcua-client.key"


def default_application_uri() -> str:
    return f"urn:{socket.gethostname()}:axhub:ingest"


def make_client_certificate(
    folder: Path,
    *,
    application_uri: str | None = None,
    common_name: str = "AX Hub ingest",
    days: int = 3650,
    replace: bool = False,
) -> tuple[Path, Path]:
    """Write a self-signed client certificate and its private key (PEM) into ``folder``;
    returns (certificate, key). An existing pair is kept unless ``replace``: a server that
    trusts it would refuse a new one until it is trusted again."""
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / CERT_NAME, folder / KEY_NAME
    if cert_file.exists() and key_file.exists() and not replace:
        return cert_file, key_file
    key = cert_gen.generate_private_key()
    names = [
        x509.UniformResourceIdentifier(application_uri or default_application_uri()),
        x509.DNSName(socket.gethostname()),
    ]
    cert = cert_gen.generate_self_signed_app_certificate(
        key, common_name, {}, names, [ExtendedKeyUsageOID.CLIENT_AUTH], days=days
    )
    # The key is written readable by its owner only, before any byte of it is in the file (a
    # replaced key file is removed first: the mode of os.open applies only to a new file).
    key_file.unlink(missing_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(cert_gen.dump_private_key_as_pem(key))
    cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
    return cert_file, key_file


def certificate_uri(cert_file: Path) -> str | None:
    """The ApplicationUri a PEM certificate file carries (None without one)."""
    return uri_in_certificate(x509.load_pem_x509_certificate(cert_file.read_bytes()))


def uri_in_certificate(cert: x509.Certificate) -> str | None:
    """The ApplicationUri in a certificate's subject alternative names (None without one).

    A client must open its session under this URI, or a server that checks it refuses the
    session."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
