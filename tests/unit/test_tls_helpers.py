# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure helpers of plugins/module_utils/_tls_x509.py (hostname matching, days left, severities, signatures) and
_tls_net.py (endpoint parsing)."""

from __future__ import annotations

import datetime

import pytest

from conftest import ensure_collection_link

import sys  # noqa: E402

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _tls, _tls_net, _tls_x509  # noqa: E402

UTC = datetime.timezone.utc


@pytest.mark.parametrize("hostname,dns,ips,expected", [
    ("example.com", ["example.com"], [], True),
    ("EXAMPLE.com.", ["example.COM"], [], True),
    ("www.example.com", ["*.example.com"], [], True),
    ("a.b.example.com", ["*.example.com"], [], False),  # one label only
    ("example.com", ["*.example.com"], [], False),  # not the bare domain
    ("www.example.com", ["w*.example.com"], [], False),  # partial wildcards are not honoured
    ("www.example.com", ["*.com"], [], False),  # too broad
    ("www.example.org", ["*.example.com"], [], False),
    ("other.example", ["example.com", "other.example"], [], True),
    ("127.0.0.1", ["127.0.0.1"], [], False),  # an IP only matches IP SANs
    ("127.0.0.1", [], ["127.0.0.1"], True),
    ("10.0.0.1", ["*.0.0.1"], [], False),
    ("::1", [], ["0:0:0:0:0:0:0:1"], True),
    ("[::1]", [], ["::1"], True),
    ("", ["example.com"], [], False),
])
def test_hostname_matches(hostname, dns, ips, expected):
    assert _tls_x509.hostname_matches(hostname, dns, ips) is expected


NOW = datetime.datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("delta,expected", [
    (datetime.timedelta(days=30), 30),
    (datetime.timedelta(days=30, hours=23), 30),
    (datetime.timedelta(hours=23), 0),
    (datetime.timedelta(seconds=1), 0),
    (datetime.timedelta(seconds=-1), -1),
    (datetime.timedelta(days=-2), -2),
    (datetime.timedelta(days=-2, hours=-1), -3),
])
def test_days_between(delta, expected):
    assert _tls_x509.days_between(NOW + delta, NOW) == expected


@pytest.mark.parametrize("days,expected", [
    (-1, ("critical", "expired")), (0, ("critical", "expiring_critical")), (7, ("critical", "expiring_critical")),
    (8, ("warning", "expiring_warning")), (30, ("warning", "expiring_warning")), (31, (None, None)),
])
def test_expiry_severity(days, expected):
    assert _tls_x509.expiry_severity(days, 30, 7) == expected


@pytest.mark.parametrize("spec,expected", [
    ("example.com", ("example.com", 443, "example.com", "none")),
    ("example.com:8443", ("example.com", 8443, "example.com", "none")),
    ("[::1]:8443", ("::1", 8443, "::1", "none")),
    ("::1", ("::1", 443, "::1", "none")),
    ({"host": "db", "starttls": "postgres"}, ("db", 5432, "db", "postgres")),
    ({"host": "mx", "starttls": "smtp", "port": "587"}, ("mx", 587, "mx", "smtp")),
    ({"host": "10.0.0.5", "server_name": "www.example.com"}, ("10.0.0.5", 443, "www.example.com", "none")),
])
def test_parse_endpoint(spec, expected):
    ep = _tls_net.parse_endpoint(spec)
    assert (ep["host"], ep["port"], ep["server_name"], ep["starttls"]) == expected


@pytest.mark.parametrize("spec", [
    {"port": 443}, {"host": "a", "starttls": "imap"}, {"host": "a", "port": 70000}, {"host": "a", "bogus": 1},
    "a:b", 42,
])
def test_parse_endpoint_rejects(spec):
    with pytest.raises(ValueError):
        _tls_net.parse_endpoint(spec)


def test_endpoint_target():
    assert _tls_net.endpoint_target(_tls_net.parse_endpoint("[::1]:443")) == "[::1]:443"
    assert _tls_net.endpoint_target(_tls_net.parse_endpoint("example.com")) == "example.com:443"


class _Cryptography38:
    """A certificate as cryptography < 40 shows it: without verify_directly_issued_by."""

    def __init__(self, cert):
        self._cert = cert

    def __getattr__(self, name):
        if name == "verify_directly_issued_by":
            raise AttributeError(name)
        return getattr(self._cert, name)


@pytest.mark.parametrize("key_kind", ["ec", "rsa", "ed25519"])
def test_signature_check_without_verify_directly_issued_by(key_kind):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import NameOID

    def key():
        if key_kind == "ec":
            return ec.generate_private_key(ec.SECP256R1())
        if key_kind == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ed25519.Ed25519PrivateKey.generate()

    def cert(cn, subject_key, issuer_name, signer):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
                   .public_key(subject_key.public_key()).serial_number(1)
                   .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=9)))
        return builder.sign(signer, None if key_kind == "ed25519" else hashes.SHA256())

    ca_key, other_key, leaf_key = key(), key(), key()
    ca = cert("ca", ca_key, None, ca_key)
    impostor = cert("ca", other_key, None, other_key)
    leaf = cert("leaf", leaf_key, ca.subject, ca_key)
    assert _tls_x509.signed_by(_Cryptography38(leaf), ca) is True
    assert _tls_x509.signed_by(_Cryptography38(leaf), impostor) is False
    assert _tls_x509.signed_by(_Cryptography38(ca), leaf) is False
    assert _tls_x509.is_self_signed(_Cryptography38(ca)) is True


def test_tls_keeps_the_names_cert_check_uses():
    for name in ("HAS_CRYPTOGRAPHY", "CRYPTOGRAPHY_IMPORT_ERROR", "TlsError", "check_endpoint", "check_files",
                 "load_trust_store", "parse_endpoint", "summarise", "utcnow"):
        assert hasattr(_tls, name), name
    assert _tls.TlsError is _tls_net.TlsError is _tls_x509.TlsError
