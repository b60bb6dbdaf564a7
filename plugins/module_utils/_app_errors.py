# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the pure parts of the app_errors module (runbook error_rate).

Parsers for what an app exposes (the SME-style health JSON, Prometheus text, JSON log lines, nginx combined and
Caddy JSON access lines, Fly log entries), the per-source tallies, the counter deltas between two samples, the
likely causes (the runbook to run next) and a scrub for URLs and messages. No I/O here: the module reads.

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import json
import re

from ansible_collections.sre.runbooks.plugins.module_utils._targets import ParseError, parse_rfc3339

# ---------------------------------------------------------------- scrub

_URL_USERINFO_RE = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+(@)", re.IGNORECASE)
_QUERY_VALUE_RE = re.compile(r"([?&][^=&#\s]+=)[^&#\s\"']*")
_BEARER_RE = re.compile(r"\b(bearer|token|basic)\s+[A-Za-z0-9\-._~+/]{8,}=*", re.IGNORECASE)
_SECRET_KV_RE = re.compile(
    r"\b((?:[a-z0-9_\-]*(?:password|passwd|secret|token|api[_\-]?key|apikey|signature|authorization|credential)"
    r"[a-z0-9_\-]*)[\"']?\s*[=:]\s*[\"']?)(?!(?:bearer|basic|token)\s)(?!\*\*\*)([^\s\"'&,;}]+)", re.IGNORECASE)
MASK = "***"


def scrub(text):
    """Mask secrets in a message or URL: URL passwords, every query-string value, Bearer/Basic credentials and
    the values of secret-named keys (password=, api_key: ...). The rest stays readable."""
    if text is None:
        return None
    text = str(text)
    text = _URL_USERINFO_RE.sub(r"\1" + MASK + r"\2", text)
    text = _QUERY_VALUE_RE.sub(r"\1" + MASK, text)
    text = _BEARER_RE.sub(lambda m: m.group(1) + " " + MASK, text)
    text = _SECRET_KV_RE.sub(r"\1" + MASK, text)
    return text


_ID_SEGMENT_RE = re.compile(r"^(\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{24,})$",
                            re.IGNORECASE)


def endpoint_of(path):
    """The endpoint a request path belongs to: no query string or fragment, ids (numbers, UUIDs, long hex) made
    ``:id`` so /api/bookings/12 and /api/bookings/13 count as one endpoint."""
    if not path:
        return "-"
    path = str(path).split("?", 1)[0].split("#", 1)[0]
    if "://" in path:  # an absolute URI in the request line
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    parts = [":id" if _ID_SEGMENT_RE.match(p) else p for p in path.split("/")]
    return "/".join(parts) or "/"


# ---------------------------------------------------------------- health JSON

def _number(value):
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value) if "." in str(value) else int(str(value))
    except ValueError:
        return None


def _first(doc, names):
    for name in names:
        if isinstance(doc, dict) and name in doc:
            return doc[name]
    return None


def parse_health(text, health_format="sme"):
    """The health JSON as {status, release, requests, errors, slow, heap_used, heap_total, db_healthy,
    db_latency_ms}. ``sme`` reads the SME Booking shape (totalRequests, totalErrors, slowRequests, memory,
    database); ``generic`` tries the usual names (totalRequests/requests, totalErrors/errors, release/version)
    and leaves what it cannot find None. Raises ParseError when the body is not a JSON object."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ParseError("the health answer is not JSON (%s)" % exc)
    if not isinstance(doc, dict):
        raise ParseError("the health answer is not a JSON object")
    memory = doc.get("memory") if isinstance(doc.get("memory"), dict) else {}
    database = doc.get("database") if isinstance(doc.get("database"), dict) else {}
    if health_format == "sme":
        names = {"requests": ["totalRequests"], "errors": ["totalErrors"], "slow": ["slowRequests"],
                 "release": ["release"]}
    else:
        names = {"requests": ["totalRequests", "total_requests", "requests", "requestCount"],
                 "errors": ["totalErrors", "total_errors", "errors", "errorCount"],
                 "slow": ["slowRequests", "slow_requests", "slow"],
                 "release": ["release", "version", "commit", "revision"]}
    release = _first(doc, names["release"])
    db_healthy = database.get("healthy")
    return {
        "status": doc.get("status"),
        "release": str(release) if release is not None and not isinstance(release, (dict, list)) else None,
        "requests": _number(_first(doc, names["requests"])),
        "errors": _number(_first(doc, names["errors"])),
        "slow": _number(_first(doc, names["slow"])),
        "heap_used": _number(memory.get("heapUsed")),
        "heap_total": _number(memory.get("heapTotal")),
        "db_healthy": db_healthy if isinstance(db_healthy, bool) else None,
        "db_latency_ms": _number(database.get("latencyMs")),
    }


# ---------------------------------------------------------------- Prometheus text

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?\s*$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(value):
    return value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def parse_prometheus(text):
    """Prometheus text exposition -> [(name, {label: value}, float)]; comments and malformed lines are skipped."""
    samples = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE_RE.match(line)
        if not match:
            continue
        labels = {}
        body = match.group(3) or ""
        pos = 0
        while pos < len(body):
            lmatch = _LABEL_RE.match(body, pos)
            if not lmatch:
                break
            labels[lmatch.group(1)] = _unescape(lmatch.group(2))
            pos = lmatch.end()
        try:
            value = float(match.group(4))
        except ValueError:
            continue
        samples.append((match.group(1), labels, value))
    return samples


def metrics_counters(samples, slow_s=None):
    """The counters one /metrics sample holds: {requests, errors, by_route: {route: [requests, errors]},
    error_types: {type: n}, slow, rss_bytes}. errors are http_requests_total series with a 5xx status; slow is
    the requests above the histogram bucket nearest to slow_s (None without that histogram)."""
    out = {"requests": 0.0, "errors": 0.0, "by_route": {}, "error_types": {}, "slow": None, "rss_bytes": None,
           "has_requests": False}
    buckets = {}
    counts = 0.0
    for name, labels, value in samples:
        if name == "http_requests_total":
            out["has_requests"] = True
            route = labels.get("route") or labels.get("path") or labels.get("endpoint") or labels.get("handler") or "-"
            status = str(labels.get("status") or labels.get("code") or labels.get("status_code") or "")
            error = status.startswith("5")
            out["requests"] += value
            entry = out["by_route"].setdefault(route, [0.0, 0.0])
            entry[0] += value
            if error:
                out["errors"] += value
                entry[1] += value
        elif name == "app_errors_total":
            kind = labels.get("type") or "-"
            out["error_types"][kind] = out["error_types"].get(kind, 0.0) + value
        elif name == "process_resident_memory_bytes":
            out["rss_bytes"] = (out["rss_bytes"] or 0.0) + value
        elif name == "http_request_duration_seconds_bucket" and slow_s is not None:
            le = labels.get("le")
            try:
                bound = float("inf") if le in ("+Inf", "Inf", "inf") else float(le)
            except (TypeError, ValueError):
                continue
            buckets[bound] = buckets.get(bound, 0.0) + value
        elif name == "http_request_duration_seconds_count" and slow_s is not None:
            counts += value
    if buckets and slow_s is not None:
        finite = sorted(b for b in buckets if b != float("inf"))
        at_or_above = [b for b in finite if b >= slow_s]
        if at_or_above:
            total = buckets.get(float("inf"), counts or max(buckets.values()))
            out["slow"] = max(0.0, total - buckets[at_or_above[0]])
    return out


def counter_delta(first, second):
    """second - first for a counter; a smaller second value is a reset (the process restarted): second."""
    if first is None or second is None:
        return None
    return second if second < first else second - first


def metrics_delta(first, second):
    """Counters of two metrics_counters() samples -> the same shape for the interval between them."""
    routes = {}
    for route, (req, err) in second["by_route"].items():
        before = first["by_route"].get(route, [0.0, 0.0])
        routes[route] = [counter_delta(before[0], req), counter_delta(before[1], err)]
    types = dict((k, counter_delta(first["error_types"].get(k, 0.0), v)) for k, v in second["error_types"].items())
    slow = counter_delta(first["slow"], second["slow"]) if first["slow"] is not None else None
    return {"requests": counter_delta(first["requests"], second["requests"]),
            "errors": counter_delta(first["errors"], second["errors"]),
            "by_route": routes, "error_types": types, "slow": slow,
            "has_requests": second["has_requests"]}


# ---------------------------------------------------------------- log lines

_MONTHS = dict((m, i + 1) for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]))
_NGINX_RE = re.compile(
    r'^(?P<addr>\S+) \S+ (?P<user>\S+) \[(?P<day>\d{2})/(?P<mon>\w{3})/(?P<year>\d{4}):(?P<h>\d{2}):(?P<m>\d{2}):'
    r'(?P<s>\d{2}) (?P<tz>[+-]\d{4})\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) (?P<bytes>\S+)'
    r'(?: "(?:[^"\\]|\\.)*" "(?:[^"\\]|\\.)*")?(?P<rest>.*)$')
_REQUEST_TIME_RE = re.compile(r"(?:\brt=|\brequest_time=|\s)(\d+\.\d+)\s*$")


def parse_nginx_combined(line):
    """One nginx ``combined`` line -> {epoch, method, endpoint, status, duration_ms}; duration_ms when a request
    time follows the user agent (``rt=0.123`` or a bare seconds value), else None. None for other lines."""
    match = _NGINX_RE.match(line.strip())
    if not match or match.group("mon") not in _MONTHS:
        return None
    g = match.groupdict()
    epoch = calendar.timegm((int(g["year"]), _MONTHS[g["mon"]], int(g["day"]), int(g["h"]), int(g["m"]),
                             int(g["s"]), 0, 0, 0))
    tz = g["tz"]
    epoch -= (1 if tz[0] == "+" else -1) * (int(tz[1:3]) * 3600 + int(tz[3:5]) * 60)
    parts = g["request"].split()
    method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("-", g["request"] or "-")
    duration = None
    rt = _REQUEST_TIME_RE.search(g["rest"] or "")
    if rt:
        duration = float(rt.group(1)) * 1000.0
    return {"epoch": float(epoch), "method": method, "endpoint": endpoint_of(path), "status": int(g["status"]),
            "duration_ms": duration}


def _epoch_of(value):
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) / 1000.0 if value > 1e11 else float(value)  # milliseconds (pino) or seconds (Caddy)
    try:
        return parse_rfc3339(value)
    except ParseError:
        try:
            return _epoch_of(float(value))
        except ValueError:
            return None


def parse_caddy_json(line):
    """One Caddy access log line (JSON, logger http.log.access*) -> {epoch, method, endpoint, status,
    duration_ms}; None for other lines."""
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("request"), dict) or "status" not in doc:
        return None
    req = doc["request"]
    status = _number(doc.get("status"))
    duration = _number(doc.get("duration"))
    return {"epoch": _epoch_of(doc.get("ts")), "method": req.get("method") or "-",
            "endpoint": endpoint_of(req.get("uri") or req.get("path")),
            "status": int(status) if status is not None else None,
            "duration_ms": float(duration) * 1000.0 if duration is not None else None}


def parse_json_log(line):
    """One JSON log line of the app -> {epoch, level, release, endpoint, status, duration_ms, error, type};
    None when the line is not a JSON object. Levels may be names or pino numbers (50 = error)."""
    line = (line or "").strip()
    if not line.startswith("{"):
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return json_log_record(doc) if isinstance(doc, dict) else None


_PINO_LEVELS = {10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal"}


def json_log_record(doc):
    level = doc.get("level")
    if isinstance(level, int) and not isinstance(level, bool):
        level = _PINO_LEVELS.get(level, str(level))
    status = _number(doc.get("status") if doc.get("status") is not None else doc.get("statusCode"))
    duration = _number(doc.get("duration") if doc.get("duration") is not None else doc.get("responseTime"))
    error = doc.get("error") if doc.get("error") is not None else (doc.get("err") or None)
    if isinstance(error, dict):
        error = error.get("message") or json.dumps(error, sort_keys=True)
    message = doc.get("message") or doc.get("msg")
    endpoint = doc.get("endpoint") or doc.get("route") or doc.get("path") or doc.get("url")
    return {
        "epoch": _epoch_of(doc.get("timestamp") if doc.get("timestamp") is not None else doc.get("time")),
        "level": str(level or "").lower(),
        "release": str(doc["release"]) if doc.get("release") is not None else None,
        "endpoint": endpoint_of(endpoint) if endpoint else None,
        "status": int(status) if status is not None else None,
        "duration_ms": float(duration) if duration is not None else None,
        "error": str(error) if error is not None else (str(message) if message and str(level).lower() in (
            "error", "fatal") else None),
        "type": str(doc["type"]) if doc.get("type") is not None else None,
    }


_FLY_ERROR_RE = re.compile(r"\bERROR\b|\berror\b|\bError:|\b5\d\d\b|\[PC\d+\]")


def fly_record(entry):
    """A parse_fly_logs() entry -> a log record: the message parsed as the app's JSON log line when it is one,
    else a text line that is an error when its level is error/fatal or it reads like one (ERROR, Error:, a
    5xx status, a Fly proxy [PCnn] code)."""
    message = entry.get("message") or ""
    record = parse_json_log(message)
    if record is None:
        text_error = entry.get("level") in ("error", "fatal") or bool(_FLY_ERROR_RE.search(message))
        record = {"epoch": None, "level": "error" if text_error else (entry.get("level") or ""), "release": None,
                  "endpoint": None, "status": None, "duration_ms": None,
                  "error": message.strip() if text_error else None, "type": None}
    if record["epoch"] is None:
        record["epoch"] = entry.get("epoch")
    return record


# ---------------------------------------------------------------- tallies

class _ReleaseErrors(dict):
    def __missing__(self, key):
        self[key] = [0, 0]
        return self[key]


class Tally:
    """Requests, errors, slow requests, endpoints, error types and messages of one source over the window.

    A request is a line with a status (an error when it is 5xx); an error line is a line of level error/fatal.
    The errors of the source are the larger of the two counts (an app may log a failed request twice, once
    as its access line and once as its error line, or only once as either)."""

    def __init__(self, source, slow_ms):
        self.source = source
        self.slow_ms = slow_ms
        self.requests = 0
        self.errors_5xx = 0
        self.error_lines = 0
        self.slow = 0
        self.endpoints = {}  # endpoint -> [requests, 5xx, error lines]
        self.types = {}
        self.messages = {}  # (scrubbed message, type) -> count
        self.releases = []  # (epoch, release) in the window
        self._release_errors = _ReleaseErrors()
        self.lines = 0

    def _endpoint(self, endpoint):
        return self.endpoints.setdefault(endpoint or "-", [0, 0, 0])

    def add_request(self, endpoint, status, duration_ms):
        self.requests += 1
        entry = self._endpoint(endpoint)
        entry[0] += 1
        if status is not None and status >= 500:
            self.errors_5xx += 1
            entry[1] += 1
        if duration_ms is not None and duration_ms > self.slow_ms:
            self.slow += 1

    def add_error(self, message, kind, endpoint):
        self.error_lines += 1
        if endpoint:
            self._endpoint(endpoint)[2] += 1
        if kind:
            self.types[kind] = self.types.get(kind, 0) + 1
        if message:
            key = (scrub(message)[:300], kind or None)
            self.messages[key] = self.messages.get(key, 0) + 1

    def add_record(self, record):
        """A log record: a request when it has a status, an error when its level is error/fatal."""
        self.lines += 1
        if record.get("release"):
            self.releases.append((record.get("epoch") or 0.0, record["release"]))
        if record.get("status") is not None:
            self.add_request(record.get("endpoint"), record["status"], record.get("duration_ms"))
        release = record.get("release")
        if release and (record.get("status") or 0) >= 500:
            self._release_errors[release][0] += 1
        if release and record.get("level") in ("error", "fatal"):
            self._release_errors[release][1] += 1
        if record.get("level") in ("error", "fatal"):
            self.add_error(record.get("error"), record.get("type"), record.get("endpoint"))

    @property
    def errors_by_release(self):
        """{release: errors} counted as the source's errors are (the larger of 5xx lines and error lines)."""
        return dict((release, max(counts)) for release, counts in self._release_errors.items())

    @property
    def errors(self):
        """Without request lines, the error lines. With them, the errors among the requests: the larger of the 5xx
        lines and the error lines of endpoints that have request lines (or no endpoint), never more than the
        requests (an error line of an endpoint the app does not log as a request, its health check, is not one)."""
        if not self.requests:
            return max(self.errors_5xx, self.error_lines)
        on_endpoints = sum(el for _req, _e5, el in self.endpoints.values())
        counted = (self.error_lines - on_endpoints) + sum(el for req, _e5, el in self.endpoints.values() if req)
        return min(self.requests, max(self.errors_5xx, counted))

    def by_endpoint(self):
        return dict((name, (req, min(req, max(e5, el)) if req else el)) for name, (req, e5, el) in self.endpoints.items())


def rate_pct(errors, requests):
    if not requests:
        return None
    return round(100.0 * float(errors or 0) / float(requests), 2)


def worst_endpoints(by_endpoint, source, top):
    """[{endpoint, requests, errors, error_rate_pct, source}] with errors, most errors first."""
    rows = [{"endpoint": name, "requests": int(req or 0), "errors": int(err or 0),
             "error_rate_pct": rate_pct(err, req), "source": source}
            for name, (req, err) in by_endpoint.items() if err]
    rows.sort(key=lambda r: (-r["errors"], -(r["error_rate_pct"] or 0), r["endpoint"]))
    return rows[:top]


# ---------------------------------------------------------------- causes

CAUSES = {
    "db_connections": "database pool exhausted or the database failing",
    "deploy_failure": "a deploy in the window",
    "dependency": "a third-party API failing",
    "high_resource": "memory growth",
}
_DB_RE = re.compile(r"too many clients|timeout acquiring|remaining connection slots|connection pool|pool (?:is )?"
                    r"exhausted|can't reach database|connection terminated|ECONNREFUSED [^ ]*:5432|"
                    r"prisma|sequelize.*connection|database (?:is )?(?:down|unavailable)", re.IGNORECASE)
_DEPENDENCY_RE = re.compile(r"\bAPI error\b|third[- ]party|upstream|ETIMEDOUT|ENOTFOUND|status page|"
                            r"(?:google|calendar|twilio|sendgrid|stripe|shopify)\b.*(?:error|fail|timeout)", re.IGNORECASE)
_MEMORY_RE = re.compile(r"out of memory|heap out of memory|ENOMEM|JavaScript heap|allocation failed|OOM", re.IGNORECASE)


def classify_error(message, kind):
    """The runbook an error points to (db_connections, dependency, high_resource) or None."""
    kind = (kind or "").lower()
    if kind in ("db", "database", "prisma"):
        return "db_connections"
    if kind in ("dependency", "third_party", "external"):
        return "dependency"
    if kind in ("memory", "oom"):
        return "high_resource"
    text = message or ""
    if _DB_RE.search(text):
        return "db_connections"
    if _MEMORY_RE.search(text):
        return "high_resource"
    if _DEPENDENCY_RE.search(text):
        return "dependency"
    return None


def releases_seen(pairs):
    """Distinct releases in time order from (epoch, release) pairs."""
    seen = []
    for _epoch, release in sorted(pairs, key=lambda p: p[0]):
        if release not in seen:
            seen.append(release)
    return seen


def growth_pct(first, last):
    if not first or last is None:
        return None
    return round(100.0 * (float(last) - float(first)) / float(first), 1)
