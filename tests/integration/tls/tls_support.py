# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for the cert_check tests and benchmark: a tiny CA made with cryptography and TLS servers on loopback.

Not a conftest.py: a conftest here would shadow tests/conftest.py.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
# Added to a leaf's "N days" so that days_left (whole days, floor) is still N when the test runs: NOW is taken when
# this module is imported, at collection, and on a slow machine the TLS tests ran over an hour later (89 for 90).
MARGIN = datetime.timedelta(hours=12)


class Cert:
    def __init__(self, cert, key):
        self.cert = cert
        self.key = key

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def make_cert(cn, issuer: Cert | None = None, *, ca=False, not_after=None, not_before=None, sans=("localhost",)):
    """An EC P-256 certificate. issuer None: self-signed. not_after/not_before: datetimes (UTC)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer.cert.subject if issuer else name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or NOW - DAY)
               .not_valid_after(not_after or NOW + 90 * DAY + MARGIN)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca and sans:
        names = []
        for san in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    signer = issuer.key if issuer else key
    return Cert(builder.sign(signer, hashes.SHA256()), key)


class Pki:
    """root -> intermediate, plus helpers to issue leaves."""

    def __init__(self):
        self.root = make_cert("Test Root CA", ca=True, not_after=NOW + 3650 * DAY)
        self.intermediate = make_cert("Test Intermediate CA", self.root, ca=True, not_after=NOW + 1800 * DAY)

    def leaf(self, days=90, sans=("localhost", "127.0.0.1"), issuer=None, cn="localhost"):
        not_after = NOW + days * DAY + MARGIN
        not_before = min(NOW - DAY, not_after - 2 * DAY)
        return make_cert(cn, issuer or self.intermediate, not_after=not_after, not_before=not_before, sans=sans)


def write_chain(directory: Path, name: str, leaf: Cert, *chain: Cert):
    """Write <name>.crt (leaf + chain) and <name>.key; return (certfile, keyfile)."""
    certfile = directory / ("%s.crt" % name)
    keyfile = directory / ("%s.key" % name)
    certfile.write_bytes(leaf.pem + b"".join(c.pem for c in chain))
    keyfile.write_bytes(leaf.key_pem)
    keyfile.chmod(0o600)
    return certfile, keyfile


class TlsServer:
    """Serves one certificate chain on a loopback port: accept, handshake, close (one thread)."""

    def __init__(self, certfile, keyfile, port=0):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(certfile), str(keyfile))
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    try:
                        tls.recv(1)  # wait for the client to close
                    except (OSError, ssl.SSLError):
                        pass
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self):
        self._stop = True
        self.sock.close()


class SilentListener:
    """Accepts connections (kernel backlog) and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 - keep test output clean
        pass


class HttpServer:
    """A plain HTTP server: a TLS client gets garbage back."""

    def __init__(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
