# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the network half of cert_check, endpoints and sockets.

Endpoints (``host``, ``host:port``, ``[v6]:port`` or a dict) are parsed here; the presented chain is fetched
WITHOUT verification (so expired, self-signed or mismatched certificates are still read), after a STARTTLS
negotiation (PostgreSQL SSLRequest, SMTP) when asked. Validation is _tls_x509.py's.

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import socket
import ssl
import struct

from ansible_collections.sre.runbooks.plugins.module_utils._tls_x509 import TlsError

STARTTLS_KINDS = ("none", "postgres", "smtp")
DEFAULT_PORTS = {"none": 443, "postgres": 5432, "smtp": 25}
PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def parse_endpoint(spec):
    """Normalise ``host``, ``host:port``, ``[v6]:port`` or a dict into {host, port, server_name, starttls}."""
    if isinstance(spec, dict):
        unknown = set(spec) - set(("host", "port", "server_name", "starttls"))
        if unknown:
            raise ValueError("endpoint %r: unknown keys %s" % (spec, ", ".join(sorted(unknown))))
        host = spec.get("host")
        port = spec.get("port")
        server_name = spec.get("server_name")
        starttls = spec.get("starttls") or "none"
    elif isinstance(spec, str):
        host, port = _split_host_port(spec.strip())
        server_name = None
        starttls = "none"
    else:
        raise ValueError("endpoint %r: expected 'host', 'host:port' or a dict with host" % (spec,))
    if not host or not isinstance(host, str):
        raise ValueError("endpoint %r: host is required" % (spec,))
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if starttls not in STARTTLS_KINDS:
        raise ValueError("endpoint %r: starttls must be one of %s" % (spec, ", ".join(STARTTLS_KINDS)))
    if port in (None, ""):
        port = DEFAULT_PORTS[starttls]
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise ValueError("endpoint %r: port must be an integer" % (spec,))
    if not 0 < port < 65536:
        raise ValueError("endpoint %r: port %d out of range" % (spec, port))
    return {"host": host, "port": port, "server_name": server_name or host, "starttls": starttls}


def _split_host_port(text):
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return text, None
        rest = text[end + 1:]
        return text[1:end], (rest[1:] if rest.startswith(":") else None)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    return text, None  # a bare name or a bare IPv6 address


def endpoint_target(endpoint):
    host = endpoint["host"]
    if ":" in host:
        host = "[%s]" % host
    return "%s:%d" % (host, endpoint["port"])


def is_ip(text):
    """Whether text is an IPv4 or IPv6 address (not a name)."""
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _recv_line(sock, limit=4096):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise TlsError("handshake", "connection closed during STARTTLS negotiation")
        buf += chunk
        if len(buf) > limit:
            raise TlsError("handshake", "line too long during STARTTLS negotiation")
    return buf


def _smtp_reply(sock):
    lines = []
    while True:
        line = _recv_line(sock)
        lines.append(line)
        if len(line) < 4 or not line[:3].isdigit():
            raise TlsError("handshake", "unexpected SMTP reply %r" % line[:80])
        if line[3:4] != b"-":
            return int(line[:3]), lines


def _starttls(sock, kind):
    if kind == "postgres":
        sock.sendall(PG_SSL_REQUEST)
        answer = sock.recv(1)
        if answer == b"N":
            raise TlsError("handshake", "PostgreSQL server refused SSL (ssl = off)")
        if answer != b"S":
            raise TlsError("handshake", "unexpected answer %r to the PostgreSQL SSLRequest" % answer)
    elif kind == "smtp":
        code, lines = _smtp_reply(sock)
        if code != 220:
            raise TlsError("handshake", "SMTP banner %r" % lines[-1][:80])
        sock.sendall(b"EHLO cert-check.invalid\r\n")
        code, lines = _smtp_reply(sock)
        if code != 250:
            raise TlsError("handshake", "SMTP EHLO answered %r" % lines[-1][:80])
        sock.sendall(b"STARTTLS\r\n")
        code, lines = _smtp_reply(sock)
        if code != 220:
            raise TlsError("handshake", "SMTP STARTTLS answered %r" % lines[-1][:80])


def _client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # we read whatever is presented and validate it ourselves
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")  # read weak/legacy certificates too: nothing secret is sent
    except ssl.SSLError:
        pass
    return ctx


def unverified_chain(ssock):
    """The chain the peer presented, as DER bytes, leaf first.

    Python 3.13+: the public SSLSocket.get_unverified_chain(). Python 3.10-3.12: the same method of the
    internal _ssl._SSLSocket (returns _ssl.Certificate objects). Older: the leaf only.
    """
    getter = getattr(ssock, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(ssock, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        items = getter() or []
        chain = []
        for item in items:
            if isinstance(item, bytes):
                chain.append(item)
            else:
                chain.append(item.public_bytes(ssl._ssl.ENCODING_DER))  # pylint: disable=protected-access
        if chain:
            return chain
    leaf = ssock.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def fetch_chain(endpoint, timeout):
    """Connect (STARTTLS when asked), handshake without verification, return DER certificates."""
    host, port = endpoint["host"], endpoint["port"]
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise TlsError("dns", "cannot resolve %s: %s" % (host, exc.strerror or exc))
    except ConnectionRefusedError:
        raise TlsError("refused", "connection to %s port %d refused" % (host, port))
    except socket.timeout:
        raise TlsError("timeout", "connection to %s port %d timed out after %ss" % (host, port, timeout))
    except OSError as exc:
        raise TlsError("refused", "cannot connect to %s port %d: %s" % (host, port, exc.strerror or exc))
    try:
        sock.settimeout(timeout)
        _starttls(sock, endpoint["starttls"])
        sni = endpoint["server_name"]
        ssock = _client_context().wrap_socket(sock, server_hostname=None if is_ip(sni) else sni)
        try:
            return unverified_chain(ssock)
        finally:
            ssock.close()
    except socket.timeout:
        raise TlsError("timeout", "no TLS handshake from %s port %d within %ss" % (host, port, timeout))
    except ssl.SSLError as exc:
        raise TlsError("handshake", "TLS handshake with %s port %d failed: %s" % (
            host, port, getattr(exc, "reason", None) or exc))
    except OSError as exc:
        raise TlsError("handshake", "TLS handshake with %s port %d failed: %s" % (host, port, exc.strerror or exc))
    finally:
        sock.close()
