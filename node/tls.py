"""A node serving https and wss itself (``kith serve --tls-cert FILE --tls-key FILE``).

Most pods run behind a reverse proxy that holds the certificate (docker/README.md); a node
reached straight can hold it itself. ``check_tls`` reads both files before the server starts,
so a wrong path, a file that is not PEM, an encrypted key or a key of another certificate is
one line that names the file and what to do — never an ``ssl`` traceback at start.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from protocol.reasons import KithError

__all__ = ["check_tls"]


def _read(path: Path, option: str, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KithError(
            f"cannot read the {what} {path} ({option}): {exc.strerror}; give the path of a"
            f" readable PEM file"
        ) from None


def check_tls(cert_path: Path, key_path: Path) -> None:
    """Check that ``cert_path`` is a PEM certificate and ``key_path`` its unencrypted key."""
    cert_data = _read(cert_path, "--tls-cert", "certificate")
    key_data = _read(key_path, "--tls-key", "private key")
    try:
        cert = x509.load_pem_x509_certificates(cert_data)[0]
    except ValueError:
        raise KithError(
            f"{cert_path} is not a PEM certificate (-----BEGIN CERTIFICATE-----): give"
            " --tls-cert the certificate file (fullchain.pem with Let's Encrypt)"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise KithError(
            f"{key_path} is encrypted with a passphrase: give --tls-key an unencrypted key"
            " (openssl pkey -in KEY -out plain.key), readable by this user only"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KithError(
            f"{key_path} is not a PEM private key (-----BEGIN PRIVATE KEY-----): give --tls-key"
            " the key file (privkey.pem with Let's Encrypt)"
        ) from None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*raw) != key.public_key().public_bytes(*raw):
        raise KithError(
            f"the key {key_path} does not belong to the certificate {cert_path}: give the key"
            " that was made with this certificate"
        )
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:  # pragma: no cover - the checks above catch what we know of
        raise KithError(
            f"{cert_path} and {key_path} cannot serve TLS ({exc.reason}): give a PEM certificate"
            " and its key"
        ) from None
