"""Throwaway certificate authorities for the TLS tests (imported, not run).

``make_pki(folder)`` writes a CA, a server certificate for 127.0.0.1 and a client
certificate signed by that CA, plus a second, unrelated CA with its own client
certificate (a node the first CA never vouched for).  Keys are EC P-256 (fast to make).
It uses the ``cryptography`` package when it is installed, else the ``openssl`` command;
``ssl_contexts`` turns the files into the server and client contexts of mutual TLS.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import subprocess
from pathlib import Path

import attrs

__all__ = ["PKI", "available", "make_pki", "server_context", "client_context"]


@attrs.frozen
class PKI:
    """Paths of the PEM files ``make_pki`` wrote."""

    ca: Path  #: the CA certificate both sides trust
    server_cert: Path
    server_key: Path
    client_cert: Path  #: signed by ``ca``
    client_key: Path
    rogue_ca: Path  #: another CA, unknown to the server
    rogue_cert: Path  #: a client certificate signed by ``rogue_ca``
    rogue_key: Path


def available() -> str | None:
    """Why certificates cannot be made here, or ``None`` if they can."""
    try:
        import cryptography  # noqa: F401, PLC0415
    except ImportError:
        if shutil.which("openssl") is None:
            return "neither the cryptography package nor the openssl command is available"
    return None


def make_pki(folder: Path) -> PKI:
    """Write the certificates and keys under ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    pki = PKI(*(folder / name for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key",
                                           "rogue-ca.pem", "rogue.pem", "rogue.key")))
    try:
        import cryptography  # noqa: F401, PLC0415
    except ImportError:
        _with_openssl(folder, pki)
    else:
        _with_cryptography(pki)
    return pki


def server_context(pki: PKI) -> ssl.SSLContext:
    """The leader's context: its certificate, and client certificates required from ``pki.ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.load_verify_locations(pki.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(pki: PKI, *, rogue: bool = False, trust: Path | None = None) -> ssl.SSLContext:
    """A follower's context: presents the client certificate (the one signed by the
    rogue CA with ``rogue=True``) and trusts ``trust`` (default ``pki.ca``) for the leader."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(trust or pki.ca)
    if rogue:
        ctx.load_cert_chain(pki.rogue_cert, pki.rogue_key)
    else:
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx


# -- with the cryptography package --------------------------------------------------------------
def _with_cryptography(pki: PKI) -> None:
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    def cert(cn: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
             *, ca: bool = False, server: bool = False) -> x509.Certificate:
        issuer_name, issuer_key = issuer or (name(cn), key)
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer_name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                              key_encipherment=False, data_encipherment=False, key_agreement=False,
                                              key_cert_sign=True, crl_sign=True, encipher_only=False,
                                              decipher_only=False), critical=True)
            b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            b = b.add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                critical=False)
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                             x509.DNSName("localhost")]), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    def pem(c: x509.Certificate, path: Path) -> None:
        path.write_bytes(c.public_bytes(serialization.Encoding.PEM))

    def new_key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    ca_key, rogue_ca_key = new_key(), new_key()
    pem(cert("embedlog test CA", ca_key, None, ca=True), pki.ca)
    pem(cert("embedlog rogue CA", rogue_ca_key, None, ca=True), pki.rogue_ca)
    for cn, cert_path, key_path, issuer, server in (
            ("leader", pki.server_cert, pki.server_key, (name("embedlog test CA"), ca_key), True),
            ("follower", pki.client_cert, pki.client_key, (name("embedlog test CA"), ca_key), False),
            ("rogue follower", pki.rogue_cert, pki.rogue_key, (name("embedlog rogue CA"), rogue_ca_key), False)):
        key = new_key()
        write_key(key, key_path)
        pem(cert(cn, key, issuer, server=server), cert_path)


# -- with the openssl command ---------------------------------------------------------------------
def _with_openssl(folder: Path, pki: PKI) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder, timeout=60)

    def key(path: Path) -> None:
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))

    for ca, ca_key, cn in ((pki.ca, folder / "ca.key", "embedlog test CA"),
                           (pki.rogue_ca, folder / "rogue-ca.key", "embedlog rogue CA")):
        key(ca_key)
        run("req", "-x509", "-new", "-key", str(ca_key), "-subj", f"/CN={cn}", "-days", "1", "-out", str(ca),
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for cn, cert, cert_key, ca, ca_key, ext in (
            ("leader", pki.server_cert, pki.server_key, pki.ca, folder / "ca.key",
             "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
            ("follower", pki.client_cert, pki.client_key, pki.ca, folder / "ca.key", "extendedKeyUsage=clientAuth\n"),
            ("rogue follower", pki.rogue_cert, pki.rogue_key, pki.rogue_ca, folder / "rogue-ca.key",
             "extendedKeyUsage=clientAuth\n")):
        key(cert_key)
        csr = folder / f"{cert.stem}.csr"
        extfile = folder / f"{cert.stem}.ext"
        extfile.write_text("basicConstraints=CA:FALSE\n" + ext)
        run("req", "-new", "-key", str(cert_key), "-subj", f"/CN={cn}", "-out", str(csr))
        run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "1", "-extfile", str(extfile), "-out", str(cert))
