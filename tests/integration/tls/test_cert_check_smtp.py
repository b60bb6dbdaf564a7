# SPDX-License-Identifier: GPL-3.0-or-later
"""cert_check with SMTP STARTTLS against a small real SMTP server on loopback (banner, EHLO, STARTTLS, TLS).

Plus an SMTP server that does not offer STARTTLS, and a closed host (another 127.x address, nothing listening).
"""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from conftest import run_module
from tls_support import Pki, write_chain


class SmtpServer:
    """Speaks just enough SMTP: 220 banner, EHLO (250, STARTTLS advertised or not), STARTTLS (220), TLS, QUIT."""

    def __init__(self, certfile, keyfile, offer_starttls=True):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(certfile), str(keyfile))
        self.offer = offer_starttls
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.commands = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                self._session(conn)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def _session(self, conn):
        reader = conn.makefile("rb")
        conn.sendall(b"220 mx.test ESMTP ready\r\n")
        while True:
            line = reader.readline()
            if not line:
                return
            command = line.strip().upper()
            self.commands.append(command.split(b" ")[0].decode())
            if command.startswith(b"EHLO"):
                extra = b"250-STARTTLS\r\n" if self.offer else b""
                conn.sendall(b"250-mx.test greets you\r\n250-PIPELINING\r\n" + extra + b"250 8BITMIME\r\n")
            elif command == b"STARTTLS" and self.offer:
                conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    try:
                        tls.recv(1)
                    except (OSError, ssl.SSLError):
                        pass
                return
            elif command == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"502 5.5.2 command not recognized\r\n")

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def smtp(tmp_path_factory):
    pki = Pki()
    base = tmp_path_factory.mktemp("smtp")
    certfile, keyfile = write_chain(base, "mx", pki.leaf(45, sans=("mx.test",), cn="mx.test"), pki.intermediate)
    ca = base / "ca.pem"
    ca.write_bytes(pki.root.pem)
    with_tls = SmtpServer(certfile, keyfile)
    without = SmtpServer(certfile, keyfile, offer_starttls=False)
    yield with_tls, without, str(ca)
    with_tls.close()
    without.close()


def test_starttls_smtp(smtp):
    server, _without, ca = smtp
    result = run_module("cert_check", {"endpoints": [
        {"host": "127.0.0.1", "port": server.port, "server_name": "mx.test", "starttls": "smtp"}], "ca_cert": ca})
    assert result["rc"] == 0, result["raw"]
    entry = result["certificates"][0]
    assert entry.get("error") is None, entry
    assert entry["target"] == "127.0.0.1:%d" % server.port and entry["starttls"] == "smtp"
    assert entry["server_name"] == "mx.test" and entry["subject"] == "CN=mx.test" and entry["sans"] == ["mx.test"]
    assert entry["chain_valid"] is True and entry["hostname_match"] is True
    assert entry["days_left"] == 45 and len(entry["chain"]) == 2 and entry["status"] == "ok"
    assert server.commands[:2] == ["EHLO", "STARTTLS"]


def test_smtp_without_starttls_is_handshake(smtp):
    _server, without, ca = smtp
    result = run_module("cert_check", {"endpoints": [
        {"host": "127.0.0.1", "port": without.port, "server_name": "mx.test", "starttls": "smtp"}],
        "ca_cert": ca, "timeout": 2})
    entry = result["certificates"][0]
    assert result["rc"] == 0 and "Traceback" not in result["raw"]
    assert entry["error_category"] == "handshake" and "STARTTLS" in entry["error"]
    assert entry["status"] == "unreachable" and result["status"] == "unreachable"


def test_closed_host_on_another_loopback_address():
    # 127.0.0.0/8 is all loopback on Linux: nothing listens on 127.31.7.9, so the kernel refuses
    result = run_module("cert_check", {"endpoints": ["127.31.7.9:443"], "timeout": 2})
    entry = result["certificates"][0]
    assert result["rc"] == 0 and "Traceback" not in result["raw"]
    assert entry["target"] == "127.31.7.9:443" and entry["error_category"] == "refused"
    assert entry["server_name"] == "127.31.7.9" and entry["status"] == "unreachable"
