# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: shared helpers for findings, statuses and durations.

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# Status order, worst last. "unreachable"/"unknown" rank as critical for fail_on purposes.
STATUS_RANK = {"ok": 0, "info": 0, "warning": 1, "critical": 2, "unknown": 2, "unreachable": 3}
SEVERITIES = ("info", "warning", "critical")
FAIL_ON_CHOICES = ["never", "warning", "critical"]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w)?\s*$", re.IGNORECASE)
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_UNIT_SECONDS = {
    None: 1.0, "ms": 0.001, "s": 1.0, "sec": 1.0, "secs": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0, "w": 604800.0,
}


def parse_duration(value):
    """Return seconds (float) for 90, "90", "90s", "5m", "2h", "1d", "1h30m".

    Raises ValueError with a readable message for anything else (negative values included).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("invalid duration %r: expected seconds or a string like 90s, 5m, 2h, 1d" % (value,))
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("invalid duration %r: must not be negative" % (value,))
        return float(value)
    text = str(value).strip()
    match = _DURATION_RE.match(text)
    if match:
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower() if match.group(2) else None]
    compact = text.replace(" ", "")
    parts = _DURATION_PART_RE.findall(compact)
    if parts and "".join(n + u for n, u in parts).lower() == compact.lower():
        return sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in parts)
    raise ValueError("invalid duration %r: expected seconds or a string like 90s, 5m, 2h, 1d" % (value,))


def parse_size(value):
    """Return bytes for 1024, "10k", "5MB", "1GiB". Raises ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", str(value), re.IGNORECASE)
    if not match:
        raise ValueError("invalid size %r: expected bytes or a string like 10k, 5M, 1G" % (value,))
    power = " kmgt".index(match.group(2).lower() or " ")
    return int(float(match.group(1)) * (1024 ** power))


def worst_status(statuses):
    """Return the worst of a list of statuses (ok < warning < critical < unreachable)."""
    worst = "ok"
    for status in statuses:
        if STATUS_RANK.get(status, 0) > STATUS_RANK.get(worst, 0):
            worst = status
    return worst


class Findings:
    """Collects {severity, code, message} findings and derives the overall status."""

    def __init__(self):
        self.items = []

    def add(self, severity, code, message, **extra):
        if severity not in SEVERITIES:
            raise ValueError("unknown severity %r" % (severity,))
        item = {"severity": severity, "code": code, "message": message}
        item.update(extra)
        self.items.append(item)
        return item

    def status(self, base="ok"):
        statuses = [base]
        statuses.extend(f["severity"] for f in self.items if f["severity"] != "info")
        return worst_status(statuses)

    def as_list(self):
        return list(self.items)


def should_fail(status, fail_on):
    """True when the status reaches the fail_on threshold (never|warning|critical)."""
    if fail_on in (None, "never"):
        return False
    threshold = STATUS_RANK["warning"] if fail_on == "warning" else STATUS_RANK["critical"]
    return STATUS_RANK.get(status, 0) >= threshold


def fail_message(what, status, findings):
    """One line for fail_json when fail_on trips: what was checked and the worst findings."""
    worst = [f for f in findings if f.get("severity") in ("critical", "warning")]
    worst.sort(key=lambda f: 0 if f["severity"] == "critical" else 1)
    detail = "; ".join("%s: %s" % (f["code"], f["message"]) for f in worst[:3])
    return "%s: status %s%s" % (what, status, (" (" + detail + ")") if detail else "")
