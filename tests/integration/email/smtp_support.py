# SPDX-License-Identifier: GPL-3.0-or-later
"""A real SMTP server on loopback for the email runbook's tests: aiosmtpd (an RFC 5321 server), with STARTTLS,
SMTPS, AUTH (PLAIN and LOGIN), recipients it refuses, and the messages it accepted kept for the test."""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import free_port


class Sink:
    """The handler: refuses the recipients in ``refuse``, keeps every message accepted."""

    def __init__(self, refuse=()):
        self.refuse = set(refuse)
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's hook name
        if address in self.refuse:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "data": envelope.content.decode("utf-8", "replace")})
        return "250 2.0.0 Ok: queued"


class Pki:
    """A CA and a leaf for localhost and 127.0.0.1, written as PEM files under ``base``."""

    def __init__(self, base: Path):
        self.ca = trustme.CA()
        leaf = self.ca.issue_cert("localhost", "127.0.0.1")
        self.ca_file = base / "smtp-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert_file, self.key_file = base / "smtp-cert.pem", base / "smtp-key.pem"
        leaf.private_key_pem.write_to_path(str(self.key_file))
        leaf.cert_chain_pems[0].write_to_path(str(self.cert_file))

    def server_context(self):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


class SmtpServer:
    """aiosmtpd on 127.0.0.1 and a free port. mode: plain, starttls (offered; required with require_tls) or smtps."""

    def __init__(self, pki: Pki | None = None, mode="plain", users=None, auth_required=False, refuse=(),
                 require_tls=False):
        self.sink = Sink(refuse)
        self.port = free_port()
        self.users = dict(users or {})
        self.auth_attempts = []
        kwargs = {"hostname": "127.0.0.1", "port": self.port, "server_hostname": "mx.lab.test", "ready_timeout": 10}
        params = {"auth_require_tls": False, "auth_required": auth_required}
        if self.users:
            params["authenticator"] = self._authenticate
        if mode == "starttls":
            params["tls_context"] = pki.server_context()
            params["require_starttls"] = require_tls
        elif mode == "smtps":
            kwargs["ssl_context"] = pki.server_context()
        with warnings.catch_warnings():
            # aiosmtpd warns about AUTH without TLS: the plain-text tests want exactly that server
            warnings.simplefilter("ignore", UserWarning)
            self.controller = Controller(self.sink, **kwargs, **params)
        self.controller.start()

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.auth_attempts.append(login)
        # handled=False: aiosmtpd itself replies (235, or 535 on a refusal)
        return AuthResult(success=self.users.get(login) == password, handled=False)

    @property
    def messages(self):
        return self.sink.messages

    def stop(self):
        self.controller.stop()
