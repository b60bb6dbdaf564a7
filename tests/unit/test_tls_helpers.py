# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure helpers of plugins/module_utils/_tls.py: hostname matching, days left, endpoint parsing, severities."""

from __future__ import annotations

import datetime

import pytest

from conftest import ensure_collection_link

import sys  # noqa: E402

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _tls  # noqa: E402

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
    assert _tls.hostname_matches(hostname, dns, ips) is expected


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
    assert _tls.days_between(NOW + delta, NOW) == expected


@pytest.mark.parametrize("days,expected", [
    (-1, ("critical", "expired")), (0, ("critical", "expiring_critical")), (7, ("critical", "expiring_critical")),
    (8, ("warning", "expiring_warning")), (30, ("warning", "expiring_warning")), (31, (None, None)),
])
def test_expiry_severity(days, expected):
    assert _tls.expiry_severity(days, 30, 7) == expected


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
    ep = _tls.parse_endpoint(spec)
    assert (ep["host"], ep["port"], ep["server_name"], ep["starttls"]) == expected


@pytest.mark.parametrize("spec", [
    {"port": 443}, {"host": "a", "starttls": "imap"}, {"host": "a", "port": 70000}, {"host": "a", "bogus": 1},
    "a:b", 42,
])
def test_parse_endpoint_rejects(spec):
    with pytest.raises(ValueError):
        _tls.parse_endpoint(spec)


def test_endpoint_target():
    assert _tls.endpoint_target(_tls.parse_endpoint("[::1]:443")) == "[::1]:443"
    assert _tls.endpoint_target(_tls.parse_endpoint("example.com")) == "example.com:443"
