# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the work of smtp_check (an app's mail path, step by step).

An app's SMTP settings are read by name from its env file (values stay here: only whether each is set, and the
host, port, security and sender, leave); then, as the app would send, from where it runs (a container's network
namespace when asked): resolve, connect, greeting, EHLO, STARTTLS or implicit TLS (verified), AUTH, MAIL FROM and
RCPT TO (then RSET: nothing is sent), and only when asked a test message. Each step that fails is a finding and
the later steps are skipped.

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os
import random
import smtplib
import socket
import ssl
import struct
import time

from ansible_collections.sre.runbooks.plugins.module_utils import _envfile
from ansible_collections.sre.runbooks.plugins.module_utils._common import Findings
from ansible_collections.sre.runbooks.plugins.module_utils._tls_net import is_ip

SECURITY_CHOICES = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
# The names an app's env file uses for its mail settings (Ferreteria's .env.prod: SMTP_HOST, SMTP_PORT). Flask-Mail
# apps use MAIL_SERVER, MAIL_PORT, MAIL_USE_TLS, MAIL_USE_SSL, MAIL_USERNAME, MAIL_PASSWORD, MAIL_DEFAULT_SENDER.
DEFAULT_NAMES = {
    "host": "SMTP_HOST", "port": "SMTP_PORT", "username": "SMTP_USER", "password": "SMTP_PASSWORD",
    "use_tls": "SMTP_USE_TLS", "use_ssl": "SMTP_USE_SSL", "from_address": "SMTP_FROM",
}
TRUE_WORDS = ("1", "true", "yes", "on")
CLONE_NEWNET = 0x40000000


class SmtpCheckError(Exception):
    """Bad input (an unreadable env file, a bad value, a process that is gone): one message, no traceback."""


def read_settings(env_file, env_format, names):
    """{key: value} of the mail settings found in the env file (only names in ``names``), and the names set."""
    if not env_file:
        return {}, []
    try:
        with open(env_file, "r") as handle:
            text = handle.read()
    except (IOError, OSError) as exc:
        raise SmtpCheckError("cannot read the env file %s: %s" % (env_file, exc.strerror or exc))
    try:
        entries = _envfile.parse(text, env_format)
    except _envfile.EnvFileError as exc:
        raise SmtpCheckError("cannot parse the env file %s: %s" % (env_file, exc))
    values = {}
    for entry in entries:
        values[entry.name] = entry.value
    found, present = {}, []
    for key, name in names.items():
        if name and name in values:
            present.append(name)
            if values[name] is not None:
                found[key] = values[name]
    return found, sorted(present)


def merge_settings(options, from_env):
    """The settings used: an option given wins over the env file; ``source`` says where each came from."""
    used, source = {}, {}
    for key in ("host", "port", "username", "password", "from_address", "security"):
        if options.get(key) not in (None, ""):
            used[key], source[key] = options[key], "option"
    for key in ("host", "port", "username", "password", "from_address"):
        if key not in used and from_env.get(key) not in (None, ""):
            used[key], source[key] = from_env[key], "env_file"
    if "security" not in used:
        if str(from_env.get("use_ssl", "")).strip().lower() in TRUE_WORDS:
            used["security"], source["security"] = "tls", "env_file"
        elif str(from_env.get("use_tls", "")).strip().lower() in TRUE_WORDS:
            used["security"], source["security"] = "starttls", "env_file"
        else:
            used["security"], source["security"] = "none", "default"
    if used["security"] not in SECURITY_CHOICES:
        raise SmtpCheckError("security must be one of %s, not %r" % (", ".join(SECURITY_CHOICES), used["security"]))
    if "port" in used:
        try:
            used["port"] = int(str(used["port"]).strip())
        except ValueError:
            raise SmtpCheckError("the SMTP port (%s) is not a number" % source["port"])
        if not 0 < used["port"] < 65536:
            raise SmtpCheckError("the SMTP port %d is out of range" % used["port"])
    else:
        used["port"], source["port"] = DEFAULT_PORTS[used["security"]], "default"
    return used, source


def enter_netns(pid):
    """Move this (single-threaded) module process into the network namespace of process ``pid``."""
    path = "/proc/%d/ns/net" % pid
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SmtpCheckError("cannot open the network namespace of process %d (%s): is it running?" % (pid, exc.strerror))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise SmtpCheckError("cannot enter the network namespace of process %d: %s" % (pid, os.strerror(err)))
    finally:
        os.close(fd)


def hosts_lookup(hosts_text, name):
    """The first address an /etc/hosts text gives ``name``, or None."""
    for line in hosts_text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and name.lower() in [f.lower() for f in fields[1:]]:
            return fields[0]
    return None


def resolv_nameservers(text):
    return [line.split()[1] for line in text.splitlines() if line.strip().startswith("nameserver") and len(line.split()) > 1]


def dns_query(name, server, timeout=2.0):
    """The IPv4 addresses a DNS server gives ``name`` (type A, one UDP query), as the container's resolver asks."""
    ident = random.randint(0, 0xFFFF)
    question = b"".join(struct.pack("B", len(label)) + label.encode("idna") for label in name.rstrip(".").split("."))
    packet = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + b"\x00" + struct.pack("!HH", 1, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    try:
        sock.sendto(packet, (server, 53))
        data, _addr = sock.recvfrom(4096)
    finally:
        sock.close()
    rid, flags, qdcount, ancount = struct.unpack("!HHHH", data[:8])
    if rid != ident or flags & 0x000F:
        return []
    pos = 12
    for _i in range(qdcount):
        pos = _skip_name(data, pos) + 4
    addresses = []
    for _i in range(ancount):
        pos = _skip_name(data, pos)
        rtype, _rclass, _ttl, rdlength = struct.unpack("!HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlength == 4:
            addresses.append(socket.inet_ntoa(data[pos:pos + 4]))
        pos += rdlength
    return addresses


def _skip_name(data, pos):
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += length + 1


def resolve(host, root="/"):
    """The address to connect to, as a process whose filesystem root is ``root`` resolves ``host``."""
    if is_ip(host):
        return host
    if root != "/":
        hosts = _read(os.path.join(root, "etc/hosts"))
        found = hosts_lookup(hosts, host) if hosts else None
        if found:
            return found
        for server in resolv_nameservers(_read(os.path.join(root, "etc/resolv.conf"))):
            try:
                found = dns_query(host, server)
            except (OSError, socket.timeout, struct.error, IndexError):
                continue
            if found:
                return found[0]
        raise socket.gaierror("%s does not resolve in the app's network (its /etc/hosts and DNS)" % host)
    return socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)[0][4][0]


def _read(path):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError):
        return ""


class _Client(smtplib.SMTP):
    """smtplib's client, connecting to an address resolved beforehand (in the app's network) under the host's name."""

    address = None

    def _get_socket(self, host, port, timeout):
        return socket.create_connection((self.address or host, port), timeout, self.source_address)


class _SslClient(smtplib.SMTP_SSL, _Client):
    """SMTPS (TLS from the start): SMTP_SSL wraps the socket _Client opens, with the host's name for SNI."""


def tls_context(validate_certs, ca_path):
    if not validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_path) if ca_path else ssl.create_default_context()
    except (IOError, OSError, ssl.SSLError) as exc:
        raise SmtpCheckError("cannot load the CA file %s: %s" % (ca_path, exc))


def _reply(exc):
    """(code, text) of an SMTP error reply, the text one line."""
    code = getattr(exc, "smtp_code", None)
    text = getattr(exc, "smtp_error", b"")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return code, " ".join(str(text).split())[:300]


def _scrub(text, secrets):
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def check(settings, to_address=None, send_test=False, check_mode=False, timeout=10.0, validate_certs=True,
          ca_path=None, root="/", ehlo_name=None, subject=None):
    """Walk the mail path as the app would; returns (result, findings)."""
    findings = Findings()
    secrets = [settings.get("password"), settings.get("username")]
    result = {
        "reachable": False, "address": None, "banner": None, "esmtp": [],
        "tls": {"offered": None, "used": False, "version": None, "cipher": None, "verified": None, "error": None},
        "auth": {"mechanisms": [], "attempted": False, "ok": None, "code": None, "message": None},
        "envelope": {"attempted": False, "from_ok": None, "to_ok": None, "code": None, "message": None},
        "test_message": {"sent": False, "message_id": None, "skipped": None},
        "elapsed_ms": 0,
    }
    host, port, security = settings.get("host"), settings["port"], settings["security"]
    started = time.time()
    if not host:
        findings.add("critical", "smtp_not_configured", "no SMTP host is set (neither the env file nor the host option names one)")
        return result, findings
    try:
        address = resolve(host, root)
    except (socket.gaierror, UnicodeError) as exc:
        findings.add("critical", "smtp_dns", "the SMTP host %s does not resolve: %s" % (host, exc))
        return result, findings
    result["address"] = "%s:%d" % (address, port)
    context = tls_context(validate_certs, settings.get("ca_path") or ca_path)
    client = None
    try:
        try:
            if security == "tls":
                client = _SslClient(timeout=timeout, context=context, local_hostname=ehlo_name)
            else:
                client = _Client(timeout=timeout, local_hostname=ehlo_name)
            client.address = address
            client._host = host  # pylint: disable=protected-access  # smtplib's SNI and name-check name
            # connect() keeps the NAME (the certificate must carry it: SNI and the name check); the socket goes to
            # the address resolved as the app resolves
            code, banner = client.connect(host, port)
        except ssl.SSLError as exc:
            result["reachable"] = True
            result["tls"].update(used=True, verified=False, error=_tls_error(exc))
            findings.add("critical", "smtp_tls_failed", "TLS with %s:%d failed: %s" % (host, port, _tls_error(exc)))
            return result, findings
        except (socket.timeout, OSError, smtplib.SMTPException) as exc:
            findings.add("critical", "smtp_unreachable", "cannot connect to the SMTP server %s (%s): %s"
                         % (host, result["address"], _os_error(exc)))
            return result, findings
        result["reachable"] = True
        result["banner"] = _text(banner)
        if code != 220:
            findings.add("critical", "smtp_greeting", "the SMTP server greets with %s %s, not 220" % (code, _text(banner)))
            return result, findings
        client.ehlo_or_helo_if_needed()
        result["esmtp"] = sorted(k.upper() for k in client.esmtp_features)
        if security == "tls":
            _note_tls(result, client.sock)
        else:
            result["tls"]["offered"] = client.has_extn("starttls")
            if security == "starttls":
                if not result["tls"]["offered"]:
                    findings.add("critical", "smtp_starttls_missing", "the app asks for STARTTLS but %s does not offer it" % host)
                    return result, findings
                try:
                    client.starttls(context=context)
                    client.ehlo()
                except ssl.SSLError as exc:
                    result["tls"].update(used=True, verified=False, error=_tls_error(exc))
                    findings.add("critical", "smtp_tls_failed", "STARTTLS with %s failed: %s" % (host, _tls_error(exc)))
                    return result, findings
                _note_tls(result, client.sock)
                result["esmtp"] = sorted(k.upper() for k in client.esmtp_features)
            elif result["tls"]["offered"]:
                findings.add("warning", "smtp_plaintext", "the server offers STARTTLS, the app sends in clear text"
                             " (set SMTP_USE_TLS or the app's own flag)")
        if client.has_extn("auth"):
            result["auth"]["mechanisms"] = sorted(client.esmtp_features["auth"].upper().split())
        if settings.get("username") or settings.get("password"):
            result["auth"]["attempted"] = True
            if not client.has_extn("auth"):
                result["auth"]["ok"] = False
                findings.add("critical", "smtp_auth_unsupported", "credentials are set but %s offers no AUTH%s"
                             % (host, "" if result["tls"]["used"] else " (many servers offer it only after STARTTLS)"))
                return result, findings
            try:
                code, text = client.login(settings.get("username") or "", settings.get("password") or "")
                result["auth"].update(ok=True, code=code, message=_scrub(_text(text), secrets))
            except smtplib.SMTPAuthenticationError as exc:
                code, text = _reply(exc)
                result["auth"].update(ok=False, code=code, message=_scrub(text, secrets))
                findings.add("critical", "smtp_auth_failed", "the server refused the app's credentials: %s %s"
                             % (code, _scrub(text, secrets)))
                return result, findings
            except smtplib.SMTPException as exc:
                result["auth"]["ok"] = False
                findings.add("critical", "smtp_auth_failed", "AUTH with %s failed: %s" % (host, _scrub(str(exc), secrets)))
                return result, findings
        sender = settings.get("from_address") or ""
        if to_address:
            _envelope(client, result, findings, sender, to_address, secrets)
            if findings.status() == "critical":
                return result, findings
            if send_test:
                if check_mode:
                    result["test_message"]["skipped"] = "check mode: the envelope was accepted, no message was sent"
                else:
                    _send(client, result, findings, sender, to_address, host, subject, secrets)
        elif send_test:
            result["test_message"]["skipped"] = "no recipient (to_address) to send the test message to"
    except (socket.timeout, OSError, smtplib.SMTPException) as exc:
        findings.add("critical", "smtp_dropped", "the SMTP session with %s broke off: %s" % (host, _scrub(_os_error(exc), secrets)))
    finally:
        result["elapsed_ms"] = int((time.time() - started) * 1000)
        if client is not None:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()
    return result, findings


def _envelope(client, result, findings, sender, to_address, secrets):
    result["envelope"]["attempted"] = True
    code, text = client.mail(sender)
    result["envelope"].update(from_ok=code == 250, code=code, message=_scrub(_text(text), secrets))
    if code != 250:
        kind = "smtp_auth_required" if code == 530 else "smtp_sender_rejected"
        findings.add("critical", kind, "the server refuses the sender %s: %s %s" % (sender or "<>", code, _scrub(_text(text), secrets)))
        client.rset()
        return
    code, text = client.rcpt(to_address)
    result["envelope"].update(to_ok=code in (250, 251), code=code, message=_scrub(_text(text), secrets))
    if code not in (250, 251):
        kind = "smtp_auth_required" if code == 530 else "smtp_recipient_rejected"
        findings.add("critical", kind, "the server refuses the recipient %s: %s %s" % (to_address, code, _scrub(_text(text), secrets)))
    client.rset()


def _send(client, result, findings, sender, to_address, host, subject, secrets):
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    message_id = "<sre-runbooks-email-check-%s-%06d@%s>" % (stamp, random.randint(0, 999999), socket.getfqdn() or "localhost")
    body = "\r\n".join([
        "From: %s" % (sender or "<>"), "To: %s" % to_address,
        "Subject: %s" % (subject or "sre.runbooks email check %s" % stamp),
        "Message-ID: %s" % message_id, "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
        "Auto-Submitted: auto-generated", "",
        "A test message of the sre.runbooks email runbook: the app's mail path to %s works." % host, ""])
    try:
        refused = client.sendmail(sender, [to_address], body.encode("utf-8"))
    except smtplib.SMTPException as exc:
        code, text = _reply(exc)
        findings.add("critical", "smtp_message_refused", "the server did not accept the test message: %s %s"
                     % (code or "", _scrub(text or str(exc), secrets)))
        return
    if refused:
        findings.add("critical", "smtp_message_refused", "the server refused the test message for %s" % to_address)
        return
    result["test_message"].update(sent=True, message_id=message_id)


def _note_tls(result, sock):
    result["tls"]["used"] = True
    result["tls"]["verified"] = getattr(sock, "context", None) is not None and sock.context.verify_mode == ssl.CERT_REQUIRED
    if hasattr(sock, "version"):
        result["tls"]["version"] = sock.version()
        cipher = sock.cipher()
        result["tls"]["cipher"] = cipher[0] if cipher else None


def _tls_error(exc):
    return getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)


def _os_error(exc):
    if isinstance(exc, socket.timeout):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__


def _text(value):
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(str(value).split())[:300]
