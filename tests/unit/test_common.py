# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for plugins/module_utils/_common.py (durations, sizes, findings, fail_on)."""

from __future__ import annotations

import pytest

from conftest import ensure_collection_link

ensure_collection_link()
import sys  # noqa: E402

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils._common import (  # noqa: E402
    Findings,
    fail_message,
    parse_duration,
    parse_size,
    should_fail,
    worst_status,
)


@pytest.mark.parametrize(
    "value, seconds",
    [
        (0, 0.0), (90, 90.0), (1.5, 1.5), ("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("2h", 7200.0),
        ("1d", 86400.0), ("26h", 93600.0), ("1h30m", 5400.0), ("1w", 604800.0), (" 5 min ", 300.0),
        ("250ms", 0.25), ("2 days", 172800.0),
    ],
)
def test_parse_duration_accepts(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "abc", "5x", "-5", -1, "5m junk", True, "m5"])
def test_parse_duration_rejects_with_readable_message(value):
    with pytest.raises(ValueError) as err:
        parse_duration(value)
    assert "duration" in str(err.value)


def test_parse_duration_none_is_none():
    assert parse_duration(None) is None


@pytest.mark.parametrize(
    "value, size",
    [(0, 0), (1024, 1024), ("10k", 10240), ("5M", 5 * 1024 ** 2), ("1GiB", 1024 ** 3), ("2gb", 2 * 1024 ** 3), ("7b", 7)],
)
def test_parse_size(value, size):
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["ten", "5q", "1.2.3"])
def test_parse_size_rejects(value):
    with pytest.raises(ValueError):
        parse_size(value)


@pytest.mark.parametrize(
    "statuses, worst",
    [([], "ok"), (["ok"], "ok"), (["ok", "warning"], "warning"), (["critical", "warning"], "critical"),
     (["warning", "unreachable", "critical"], "unreachable")],
)
def test_worst_status(statuses, worst):
    assert worst_status(statuses) == worst


def test_findings_status_and_shape():
    findings = Findings()
    assert findings.status() == "ok"
    findings.add("info", "note", "just a note")
    assert findings.status() == "ok"
    findings.add("warning", "saturation_high", "85% of connections used", value=85)
    assert findings.status() == "warning"
    findings.add("critical", "saturated", "no slots left")
    assert findings.status() == "critical"
    assert findings.as_list()[1] == {"severity": "warning", "code": "saturation_high",
                                     "message": "85% of connections used", "value": 85}
    with pytest.raises(ValueError):
        findings.add("fatal", "x", "y")


@pytest.mark.parametrize(
    "status, fail_on, expected",
    [("ok", "never", False), ("critical", "never", False), ("warning", "warning", True),
     ("warning", "critical", False), ("critical", "critical", True), ("unreachable", "critical", True),
     ("ok", "warning", False), ("critical", None, False)],
)
def test_should_fail(status, fail_on, expected):
    assert should_fail(status, fail_on) is expected


def test_fail_message_names_worst_findings_first():
    msg = fail_message("PostgreSQL triage of db1", "critical", [
        {"severity": "warning", "code": "idle", "message": "3 idle"},
        {"severity": "critical", "code": "saturated", "message": "99%"},
    ])
    assert msg.startswith("PostgreSQL triage of db1: status critical (saturated: 99%; idle: 3 idle)")
