# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the logs of every service of a compose project (app_down).

Which services to read (from ``docker ps``), a summary per service (lines in time order, error lines) and the
service whose logs show the cause. Used by the filters compose_services and compose_log_summary.

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import re
import time


class ComposeLogsError(ValueError):
    """Input the filters cannot read, with the reason."""


_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?\s")
_RUNNING = ("running",)  # a restarting (crash-looping) container is not
DEFAULT_ERROR_REGEX = r"(?i)(error|fatal|exception|panic|unhandled|traceback|ECONNREFUSED|EADDRINUSE|ENOSPC)"


def line_epoch(line):
    """Epoch seconds of the RFC 3339 timestamp docker logs --timestamps puts first on a line, or None."""
    match = _TS.match(line or "")
    if not match:
        return None
    base = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    zone = match.group(3) or "Z"
    if zone != "Z":
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        base = base - offset if zone[0] == "+" else base + offset
    return base + (float("0." + match.group(2)) if match.group(2) else 0.0)


def container_state(text):
    """A container's state from docker ps {{.State}} (running, exited, ...) or {{.Status}} (Up 2 hours, Exited (1) ...)."""
    words = (text or "").strip().lower().split()
    if not words:
        return "unknown"
    if words[0] == "up":
        return "paused" if "(paused)" in words else "running"
    return words[0]


def select_services(ps_output, wanted=None, app=None):
    """Services of the project from docker ps lines 'id<TAB>service<TAB>state'."""
    if not isinstance(ps_output, str):
        raise ComposeLogsError("compose_services: expected docker ps output (text), got %s" % type(ps_output).__name__)
    wanted = [w for w in (wanted or []) if w]
    every = not wanted or "*" in wanted
    found = {}
    for raw in ps_output.splitlines():
        parts = raw.strip().split("\t")
        if len(parts) < 2 or not parts[1]:
            continue
        item = found.setdefault(parts[1], {"service": parts[1], "ids": [], "states": []})
        item["ids"].append(parts[0])
        item["states"].append(container_state(parts[2] if len(parts) > 2 else ""))
    names = sorted(found) if every else [w for w in wanted if w != "*"]
    out = []
    for name in names:
        item = found.get(name, {"service": name, "ids": [], "states": ["missing"]})
        item["running"] = any(s in _RUNNING for s in item["states"])
        item["state"] = ",".join(sorted(set(item["states"])))
        out.append(item)
    out.sort(key=lambda i: (i["service"] != app, 0))
    return out


def summarise(services, error_regex=None, lines=20, errors=5):
    """[{service, ids, states, running, lines: [raw lines]}] -> {services: [summary], cause: log_cause(...)}."""
    try:
        pattern = re.compile(error_regex or DEFAULT_ERROR_REGEX)
    except re.error as exc:
        raise ComposeLogsError("compose_log_summary: error_regex is not a regular expression: %s" % exc)
    try:
        keep, keep_errors = int(lines), int(errors)
    except (TypeError, ValueError):
        raise ComposeLogsError("compose_log_summary: lines and errors must be numbers")
    out = []
    for item in services or []:
        raw = [str(line) for line in (item.get("lines") or []) if str(line).strip()]
        order = sorted(range(len(raw)), key=lambda i: (line_epoch(raw[i]) or 0.0, i))  # stdout and stderr merged
        ordered = [raw[i] for i in order]
        bad = [line for line in ordered if pattern.search(line)]
        out.append({
            "service": item.get("service"), "containers": len(item.get("ids") or []),
            "state": item.get("state") or ",".join(item.get("states") or []) or "unknown",
            "running": bool(item.get("running")), "scanned": len(ordered),
            "lines": ordered[-keep:] if keep > 0 else [], "error_count": len(bad),
            "errors": bad[-keep_errors:] if keep_errors > 0 else [],
            "first_error": bad[0] if bad else None, "first_error_at": line_epoch(bad[0]) if bad else None,
        })
    return {"services": out, "cause": log_cause(out)}


def log_cause(summaries):
    """The service whose logs show the cause: {service, reason, first_error, error_count}."""
    with_errors = [s for s in (summaries or []) if s.get("error_count")]
    if not with_errors:
        return {"service": None, "reason": "no service's logs show an error", "first_error": None, "error_count": 0}
    best = sorted(with_errors, key=lambda s: (bool(s.get("running")),
                                              s.get("first_error_at") if s.get("first_error_at") is not None else float("inf"),
                                              -s["error_count"]))[0]
    if not best.get("running"):
        reason = "it is %s and its logs show errors" % (best.get("state") or "not running")
    elif len(with_errors) > 1 and best.get("first_error_at") is not None:
        reason = "its first error came before those of %s" % ", ".join(
            s["service"] for s in with_errors if s is not best)
    else:
        reason = "only its logs show errors" if len(with_errors) == 1 else "its logs show the most errors"
    if best.get("running"):  # a service stopped without an error line may be what the errors are about
        quiet = ["%s is %s" % (s["service"], s.get("state") or "not running") for s in summaries
                 if not s.get("running") and not s.get("error_count")]
        if quiet:
            reason += "; " + ", ".join(quiet) + " with no error in its logs"
    return {"service": best["service"], "reason": reason, "first_error": best.get("first_error"),
            "error_count": best["error_count"]}
