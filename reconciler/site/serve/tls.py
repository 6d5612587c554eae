"""TLS for ``reconcile site serve``: a self-signed CA and a server certificate for the loopback names.

A site's AdminService answers with its own self-signed "SMS Issuing" chain unless a PKI certificate is bound,
so clients must be able to trust a root they were given (``--ca-bundle``). The test server does the same:
``DIR/ca.pem`` is the root to hand to clients; ``DIR/server.pem`` (certificate, then the CA) and the two
private keys (mode 0600) stay with the server. Existing files are reused, so a client keeps trusting the same
root across restarts; a server certificate that no longer covers a name asked for is made again.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from reconciler.errors import ReconcilerError

#: The names every server certificate covers (the server only binds to loopback unless told otherwise).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_VALID_DAYS = 825


class TlsError(ReconcilerError):
    """The TLS folder cannot be used (unreadable or damaged files, no permission to write)."""


@dataclass(frozen=True)
class TlsFiles:
    folder: Path
    ca: Path  # the root clients trust (--ca-bundle)
    ca_key: Path
    certificate: Path  # the server certificate followed by the CA
    key: Path


def _files(folder: Path) -> TlsFiles:
    return TlsFiles(folder, folder / "ca.pem", folder / "ca.key", folder / "server.pem", folder / "server.key")


def _write_private(path: Path, data: bytes) -> None:
    """A private key: created 0600 from the start (never world-readable, even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _make_ca(files: TlsFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reconcile site serve test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(files.ca_key, _key_pem(key))
    files.ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _make_server(files: TlsFiles, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                 names: tuple[str, ...]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
            .add_extension(_san(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_private(files.key, _key_pem(key))
    files.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                                  + ca.public_bytes(serialization.Encoding.PEM))


def _covers(path: Path, names: tuple[str, ...]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    held = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))
    still_valid = cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    return still_valid and all(name in held for name in names)


def ensure_certificates(folder: Path, names: tuple[str, ...] = ()) -> TlsFiles:
    """The CA and server certificate in ``folder``, made when missing (the CA only when ``ca.pem`` is missing,
    so clients keep trusting it); the server certificate covers the loopback names and ``names``."""
    wanted = tuple(dict.fromkeys((*LOOPBACK_NAMES, *names)))
    files = _files(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if files.ca.exists() and files.ca_key.exists():
            ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
            loaded = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise TlsError(f"{files.ca_key} does not hold an EC private key made by 'reconcile site serve'")
            ca_key = loaded
        else:
            ca, ca_key = _make_ca(files)
        if not (files.certificate.exists() and files.key.exists() and _covers(files.certificate, wanted)):
            _make_server(files, ca, ca_key, wanted)
    except OSError as exc:
        raise TlsError(f"TLS folder {folder}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise TlsError(f"TLS folder {folder} holds a file that is not a PEM certificate or key ({exc}); "
                       "move the folder away to make new ones") from None
    return files


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS 1.2 or later with the server certificate chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.certificate, files.key)
    return context


def endpoint_binding(files: TlsFiles) -> bytes:
    """RFC 5929 ``tls-server-end-point`` channel binding data of the server certificate (SHA-256 of its DER, the
    hash its ECDSA-SHA256 signature uses), as Windows authentication with Extended Protection checks it."""
    cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    return b"tls-server-end-point:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
