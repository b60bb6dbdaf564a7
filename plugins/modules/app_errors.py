#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: app_errors
short_description: The error rate of an app over a window, from what it exposes, and the likely cause
version_added: 0.1.0
description:
  - Works out the error rate of an app from every source it is given, each reported on its own, in
    RV(sources) (runbooks 001, 002 and 004, "Error Rate Spike" and "High Error Rate").
  - The health JSON (O(health_url)) and the Prometheus text (O(metrics_url)) hold counters since the
    process started; they are read twice, O(sample_interval_s) apart, and the rate is over that interval,
    not since boot.
  - JSON log lines (O(json_log_files)), proxy access lines (O(access_log_files)) and Fly log entries
    (O(fly_logs)) count only what is stamped inside the last O(window_s) seconds.
  - Groups errors by type and message and lists the endpoints with the most errors, then names the
    runbook to run next from the evidence (RV(next_runbook)), as runbook 002 lists the causes. A pool
    exhausted (errors of type C(db), C(too many clients), C(timeout acquiring), an unhealthy database in
    the health JSON) is C(db_connections); a third-party API failing (type C(dependency), C(API error)) is
    C(dependency); a release that changed in the window (the C(release) of log lines differs, or the
    health release differs from the oldest log line's, or changed between the samples) is
    C(deploy_failure); memory growing between the samples (heapUsed, resident memory) or out-of-memory
    errors is C(high_resource).
  - A source that cannot be read (missing file, unreachable URL, not JSON) is one finding
    C(source_unavailable); the other sources are still used. Never changes anything.
  - Query-string values, URL passwords, Bearer credentials and secret-named values are masked in every
    URL and message returned.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: The module only reads, so it runs the same way in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  health_url:
    description: The app's health URL (JSON). Read twice, O(sample_interval_s) apart.
    type: str
  health_format:
    description:
      - C(sme) reads C(totalRequests), C(totalErrors), C(slowRequests), C(release), C(memory.heapUsed) and
        C(database.healthy) (runbook 002's app); C(generic) tries the usual names and uses what it finds.
    type: str
    choices: [sme, generic]
    default: sme
  metrics_url:
    description:
      - The app's Prometheus C(/metrics) URL; C(http_requests_total{route,status}) counters (5xx are errors),
        C(app_errors_total{type}), C(http_request_duration_seconds_bucket) and C(process_resident_memory_bytes).
    type: str
  json_log_files:
    description: Files or globs of JSON logs, one object per line (C(timestamp), C(level), C(release), C(endpoint),
      C(status), C(duration), C(error), C(type)).
    type: list
    elements: path
    default: []
  access_log_files:
    description: Files or globs of proxy access logs, in O(access_log_format).
    type: list
    elements: path
    default: []
  access_log_text:
    description:
      - Access log lines given as text, in O(access_log_format), for example Caddy's JSON log read from its unit's
        journal by the role (Caddy writes its logs to stderr unless told otherwise). Reported as the source
        C(access_logs) with C(where) C(journal); only lines stamped in the window count.
    type: str
  access_log_format:
    description:
      - C(nginx_combined) is nginx's C(combined) format (a request time after the user agent is used for slow
        requests when present); C(caddy_json) is Caddy's JSON access log.
    type: str
    choices: [nginx_combined, caddy_json]
    default: nginx_combined
  fly_logs:
    description:
      - The output of C(flyctl logs --json --no-tail) (read through the target role's C(fly_command)). A message
        that is a JSON log line is read as one; other lines count as errors when their level is error or they
        read like one (C(ERROR), C(Error:), a 5xx status, a Fly proxy C([PCnn]) code).
    type: str
  window_s:
    description: Length of the log window in seconds (lines stamped earlier are not counted).
    type: int
    default: 900
  threshold_pct:
    description: Error rate (%) from which a source is the finding C(error_rate_over_threshold) (1 in runbook 002, 5 in 004).
    type: float
    default: 1.0
  min_requests:
    description: Requests a source needs in its window before its rate is held against O(threshold_pct).
    type: int
    default: 5
  slow_ms:
    description: A request taking longer than this (ms) is slow (runbook 002, 300 ms).
    type: int
    default: 300
  slow_pct:
    description: Share of slow requests (%) from which a source is the finding C(slow_requests).
    type: float
    default: 10.0
  sample_interval_s:
    description: Seconds between the two samples of the counters of O(health_url) and O(metrics_url) (0 reads them back to back).
    type: float
    default: 5
  memory_growth_pct:
    description: Growth of heapUsed or resident memory between the samples (%) that counts as memory growth.
    type: float
    default: 20.0
  top:
    description: Endpoints and error messages listed.
    type: int
    default: 10
  timeout:
    description: Timeout of each HTTP request, in seconds.
    type: int
    default: 10
  validate_certs:
    description: Verify TLS certificates of O(health_url) and O(metrics_url).
    type: bool
    default: true
  log_max_bytes:
    description: Bytes read from the end of each log file at most.
    type: int
    default: 67108864
  fail_on:
    description: Fail the task when the status reaches this severity.
    type: str
    choices: [never, warning, critical]
    default: never
seealso:
  - module: sre.runbooks.app_status
"""

EXAMPLES = r"""
- name: Work out the error rate of the SME Booking app over 15 minutes
  sre.runbooks.app_errors:
    health_url: http://127.0.0.1:3001/api/health
    metrics_url: http://127.0.0.1:3001/metrics
    json_log_files: [/opt/sme-booking-app/logs/*.json]
    window_s: 900
    threshold_pct: 1
  register: errors

- name: Error rate from the nginx access log
  sre.runbooks.app_errors:
    access_log_files: [/var/log/nginx/access.log]
    access_log_format: nginx_combined
    threshold_pct: 5
"""

RETURN = r"""
status:
  description: Worst severity of the findings, C(ok), C(warning) or C(critical).
  returned: always
  type: str
since:
  description: Start of the log window, ISO 8601 UTC.
  returned: always
  type: str
  sample: "2026-12-01T12:00:00Z"
window_s:
  description: Length of the log window.
  returned: always
  type: int
threshold_pct:
  description: The threshold used.
  returned: always
  type: float
error_rate_pct:
  description: The highest error rate of the sources that saw at least O(min_requests) requests, null when none did.
  returned: always
  type: float
over_threshold:
  description: True when a source's error rate is at or above O(threshold_pct).
  returned: always
  type: bool
sources:
  description: One entry per source given.
  returned: always
  type: list
  elements: dict
  contains:
    source:
      description: C(health), C(metrics), C(json_logs), C(access_logs) or C(fly_logs).
      type: str
    where:
      description: The URL (scrubbed) or the files read.
      type: str
    ok:
      description: False when the source could not be read.
      type: bool
    error:
      description: Why it could not be read.
      type: str
    over:
      description: C(samples N s apart) for counters, C(window N s) for logs.
      type: str
    requests:
      description: Requests counted, null when the source has no request count.
      type: int
    errors:
      description: Errors counted (5xx, error lines).
      type: int
    error_rate_pct:
      description: errors / requests in percent, null without requests.
      type: float
    slow:
      description: Slow requests (above O(slow_ms)), null when unknown.
      type: int
  sample:
    - {source: health, where: "http://127.0.0.1:3001/api/health", ok: true, error: null, over: samples 5 s apart,
       requests: 40, errors: 6, error_rate_pct: 15.0, slow: 2}
endpoints:
  description: The endpoints with the most errors, of every source.
  returned: always
  type: list
  elements: dict
  sample: [{endpoint: /api/bookings, requests: 30, errors: 6, error_rate_pct: 20.0, source: json_logs}]
error_types:
  description: Errors by type (the C(type) of JSON log lines, C(app_errors_total{type}) between the samples).
  returned: always
  type: dict
  sample: {dependency: 5, db: 1}
top_errors:
  description: The most frequent error messages (scrubbed), with their type and count.
  returned: always
  type: list
  elements: dict
  sample: [{message: "GOOGLE_CALENDAR API error: connect ECONNREFUSED 127.0.0.1:9", type: dependency, count: 5, source: json_logs}]
releases:
  description: C(health) (the release the health JSON names, last sample), C(health_first) and C(logs) (distinct
    releases of the log lines in the window, oldest first).
  returned: always
  type: dict
memory:
  description: heapUsed and resident memory at the two samples, and their growth in percent.
  returned: always
  type: dict
next_runbook:
  description: The runbooks the evidence points to, the strongest first, each with the cause and the evidence.
  returned: always
  type: list
  elements: dict
  sample: [{runbook: dependency, cause: a third-party API failing, weight: 5, evidence: ["5 errors of type dependency"]}]
findings:
  description: What looks wrong, worst first, C({severity, code, message}); C(likely_cause) findings carry C(runbook).
  returned: always
  type: list
  elements: dict
"""

import glob
import os
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

from ansible_collections.sre.runbooks.plugins.module_utils._common import (
    FAIL_ON_CHOICES, Findings, fail_message, should_fail,
)
from ansible_collections.sre.runbooks.plugins.module_utils._targets import ParseError, parse_fly_logs
from ansible_collections.sre.runbooks.plugins.module_utils import _app_errors as ae

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


class SourceError(Exception):
    """A source could not be read; the message says what and why (no secret in it)."""


def fetch(url, params):
    """GET url -> body text. An HTTP error status still returns its body (an unhealthy app answers 503 with
    its health JSON); a network failure raises SourceError."""
    try:
        resp = open_url(url, method="GET", timeout=params["timeout"], validate_certs=params["validate_certs"],
                        follow_redirects="safe", headers={"Accept": "application/json, text/plain"})
        return to_text(resp.read(), errors="surrogate_or_replace"), resp.getcode()
    except HTTPError as exc:
        try:
            body = exc.read()
        except (AttributeError, OSError, socket.error):
            body = b""
        return to_text(body or b"", errors="surrogate_or_replace"), exc.code
    except (URLError, socket.error, OSError, http_client.HTTPException, ValueError) as exc:
        raise SourceError(to_native(getattr(exc, "reason", exc)))


def expand(patterns):
    """(files, missing patterns, empty patterns): a glob whose directory exists and that matches no file yet (an
    app that has not logged since its start) is empty, not missing."""
    files, missing, empty = [], [], []
    for pattern in patterns:
        found = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        if found:
            files.extend(f for f in found if f not in files)
        elif glob.has_magic(pattern) and os.path.isdir(os.path.dirname(pattern) or "."):
            empty.append(pattern)
        else:
            missing.append(pattern)
    return files, missing, empty


def tail_lines(path, max_bytes):
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        if size > max_bytes:
            handle.seek(size - max_bytes)
            handle.readline()  # a partial line
        data = handle.read()
    return to_text(data, errors="surrogate_or_replace").splitlines()


class Run:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.findings = Findings()
        self.sources = []
        self.endpoints = []
        self.error_types = {}
        self.messages = []
        self.cause = {}  # runbook -> {weight, evidence}
        self.now = time.time()
        self.since = self.now - self.p["window_s"]
        self.releases = {"health": None, "health_first": None, "logs": []}
        self.memory = {"heap_used_first": None, "heap_used_last": None, "heap_growth_pct": None,
                       "rss_first": None, "rss_last": None, "rss_growth_pct": None}
        self.log_release_pairs = []
        self.errors_by_release = {}

    # ------------------------------------------------------------ helpers
    def evidence(self, runbook, weight, text):
        entry = self.cause.setdefault(runbook, {"weight": 0, "evidence": []})
        entry["weight"] += weight
        entry["evidence"].append(text)

    def unavailable(self, source, where, error):
        self.sources.append({"source": source, "where": where, "ok": False, "error": ae.scrub(error), "over": None,
                             "requests": None, "errors": None, "error_rate_pct": None, "slow": None})
        self.findings.add("warning", "source_unavailable", "%s %s could not be read: %s" % (source, where, ae.scrub(error)))

    def add_source(self, source, where, over, requests, errors, slow):
        self.sources.append({"source": source, "where": where, "ok": True, "error": None, "over": over,
                             "requests": int(requests) if requests is not None else None,
                             "errors": int(errors) if errors is not None else None,
                             "error_rate_pct": ae.rate_pct(errors, requests), "slow": int(slow) if slow is not None else None})

    def count_types(self, types):
        for kind, count in types.items():
            if count:
                self.error_types[kind] = self.error_types.get(kind, 0) + int(count)

    # ------------------------------------------------------------ counters (two samples)
    def sample(self):
        first = {}
        second = {}
        health_url, metrics_url = self.p["health_url"], self.p["metrics_url"]
        for name, url in (("health", health_url), ("metrics", metrics_url)):
            if url:
                first[name] = self.read_counter_source(name, url)
        if any(v is not None and not isinstance(v, SourceError) for v in first.values()) \
                and self.p["sample_interval_s"] > 0:
            time.sleep(self.p["sample_interval_s"])
        for name, url in (("health", health_url), ("metrics", metrics_url)):
            if url and not isinstance(first[name], SourceError):
                second[name] = self.read_counter_source(name, url)
        if health_url:
            self.health(first["health"], second.get("health"))
        if metrics_url:
            self.metrics(first["metrics"], second.get("metrics"))

    def read_counter_source(self, name, url):
        try:
            body, code = fetch(url, self.p)
            if name == "health":
                doc = ae.parse_health(body, self.p["health_format"])
                doc["http_status"] = code
                return doc
            if code >= 400:
                raise SourceError("HTTP %s" % code)
            return ae.metrics_counters(ae.parse_prometheus(body), self.p["slow_ms"] / 1000.0)
        except (SourceError, ParseError) as exc:
            return SourceError(to_native(exc))

    def over_text(self):
        return "samples %s s apart" % (("%g" % self.p["sample_interval_s"]))

    def health(self, first, second):
        where = ae.scrub(self.p["health_url"])
        if isinstance(first, SourceError) or isinstance(second, SourceError):
            self.unavailable("health", where, str(first if isinstance(first, SourceError) else second))
            return
        self.releases["health_first"], self.releases["health"] = first["release"], second["release"]
        requests = ae.counter_delta(first["requests"], second["requests"])
        errors = ae.counter_delta(first["errors"], second["errors"])
        slow = ae.counter_delta(first["slow"], second["slow"])
        self.add_source("health", where, self.over_text(), requests, errors, slow)
        if first["requests"] is not None and second["requests"] is not None and second["requests"] < first["requests"]:
            self.evidence("deploy_failure", 1, "the health counters went back to %s: the app restarted between the samples"
                          % second["requests"])
        if first["release"] and second["release"] and first["release"] != second["release"]:
            self.evidence("deploy_failure", 5, "the health release changed between the samples: %s -> %s"
                          % (first["release"], second["release"]))
        if second["requests"]:
            self.sources[-1]["since_start_rate_pct"] = ae.rate_pct(second["errors"], second["requests"])
        self.memory["heap_used_first"], self.memory["heap_used_last"] = first["heap_used"], second["heap_used"]
        self.memory["heap_growth_pct"] = ae.growth_pct(first["heap_used"], second["heap_used"])
        growth = self.memory["heap_growth_pct"]
        if growth is not None and growth >= self.p["memory_growth_pct"]:
            self.evidence("high_resource", 3, "heapUsed grew %s %% between the samples (%s -> %s)"
                          % (growth, first["heap_used"], second["heap_used"]))
        if second["db_healthy"] is False:
            self.evidence("db_connections", 5, "the health JSON says the database is not healthy")
            self.findings.add("critical", "database_unhealthy", "the health JSON at %s says the database is not healthy"
                              % where)
        status = str(second["status"] or "").lower()
        if second["http_status"] >= 400 or (status and status not in ("healthy", "ok", "up", "pass", "passing")):
            self.findings.add("warning", "app_unhealthy", "the health URL %s answered HTTP %s, status %s"
                              % (where, second["http_status"], second["status"]))

    def metrics(self, first, second):
        where = ae.scrub(self.p["metrics_url"])
        if isinstance(first, SourceError) or isinstance(second, SourceError):
            self.unavailable("metrics", where, str(first if isinstance(first, SourceError) else second))
            return
        delta = ae.metrics_delta(first, second)
        if not delta["has_requests"]:
            self.add_source("metrics", where, self.over_text(), None, None, delta["slow"])
        else:
            self.add_source("metrics", where, self.over_text(), delta["requests"], delta["errors"], delta["slow"])
            self.endpoints.extend(ae.worst_endpoints(delta["by_route"], "metrics", self.p["top"]))
        self.count_types(delta["error_types"])
        for kind, count in delta["error_types"].items():
            runbook = ae.classify_error("", kind)
            if runbook and count:
                self.evidence(runbook, int(count), "app_errors_total{type=\"%s\"} rose by %d between the samples"
                              % (kind, count))
        self.memory["rss_first"], self.memory["rss_last"] = first["rss_bytes"], second["rss_bytes"]
        growth = ae.growth_pct(first["rss_bytes"], second["rss_bytes"])
        self.memory["rss_growth_pct"] = growth
        if growth is not None and growth >= self.p["memory_growth_pct"]:
            self.evidence("high_resource", 3, "resident memory grew %s %% between the samples" % growth)

    # ------------------------------------------------------------ logs (window)
    def logs(self, source, patterns, parse):
        files, missing, empty = expand(patterns)
        for pattern in missing:
            self.unavailable(source, pattern, "no such file")
        for pattern in empty:
            self.findings.add("info", "log_empty", "%s %s: no file matches yet, so no log lines in the window"
                              % (source, pattern))
        if not files:
            return
        tally = ae.Tally(source, self.p["slow_ms"])
        unreadable = 0
        for path in files:
            try:
                lines = tail_lines(path, self.p["log_max_bytes"])
            except (IOError, OSError) as exc:
                self.unavailable(source, path, to_native(exc.strerror or exc))
                unreadable += 1
                continue
            for line in lines:
                record = parse(line)
                if record is None or record.get("epoch") is None or record["epoch"] < self.since:
                    continue
                tally.add_record(record)
        if unreadable == len(files):
            return
        self.finish_tally(tally, ", ".join(f for f in files), has_requests=tally.requests > 0)

    def text_log(self, source, where, lines, parse):
        tally = ae.Tally(source, self.p["slow_ms"])
        for line in lines:
            record = parse(line)
            if record is not None and record.get("epoch") is not None and record["epoch"] >= self.since:
                tally.add_record(record)
        self.finish_tally(tally, where, has_requests=tally.requests > 0)

    def fly(self):
        entries = parse_fly_logs(self.p["fly_logs"])
        tally = ae.Tally("fly_logs", self.p["slow_ms"])
        for entry in entries:
            record = ae.fly_record(entry)
            if record.get("epoch") is None or record["epoch"] < self.since:
                continue
            tally.add_record(record)
        self.finish_tally(tally, "flyctl logs", has_requests=tally.requests > 0)

    def finish_tally(self, tally, where, has_requests):
        over = "window %d s" % self.p["window_s"]
        if has_requests:
            self.add_source(tally.source, where, over, tally.requests, tally.errors, tally.slow)
            self.endpoints.extend(ae.worst_endpoints(tally.by_endpoint(), tally.source, self.p["top"]))
        else:
            self.add_source(tally.source, where, over, None, tally.errors, None)
            if tally.errors:
                self.findings.add("warning", "log_errors", "%s: %d error lines in the last %d s (no request count there, "
                                  "so no rate)" % (tally.source, tally.errors, self.p["window_s"]))
        self.sources[-1]["lines"] = tally.lines
        self.count_types(tally.types)
        for (message, kind), count in tally.messages.items():
            self.messages.append({"message": message, "type": kind, "count": count, "source": tally.source})
            runbook = ae.classify_error(message, kind)
            if runbook:
                self.evidence(runbook, count, "%d x %s%s" % (count, "[%s] " % kind if kind else "", message[:160]))
        for kind, count in tally.types.items():
            if not [m for m in tally.messages if m[1] == kind]:
                runbook = ae.classify_error("", kind)
                if runbook:
                    self.evidence(runbook, count, "%d errors of type %s" % (count, kind))
        self.log_release_pairs.extend(tally.releases)
        for release, count in tally.errors_by_release.items():
            self.errors_by_release[release] = self.errors_by_release.get(release, 0) + count

    # ------------------------------------------------------------ verdict
    def deploy_evidence(self):
        seen = ae.releases_seen(self.log_release_pairs)
        self.releases["logs"] = seen
        if len(seen) > 1:
            self.evidence("deploy_failure", 2 + self.errors_by_release.get(seen[-1], 0),
                          "the log lines of the window name %d releases: %s (errors under %s: %d)"
                          % (len(seen), " -> ".join(seen), seen[-1], self.errors_by_release.get(seen[-1], 0)))
        elif seen and self.releases["health"] and self.releases["health"] != seen[0]:
            self.evidence("deploy_failure", 2, "the health JSON names release %s, the oldest log line of the window %s"
                          % (self.releases["health"], seen[0]))

    def verdict(self):
        self.deploy_evidence()
        threshold = self.p["threshold_pct"]
        rated = [s for s in self.sources if s["ok"] and s["requests"] is not None
                 and s["requests"] >= self.p["min_requests"]]
        over = [s for s in rated if s["error_rate_pct"] is not None and s["error_rate_pct"] >= threshold]
        for s in over:
            self.findings.add("critical", "error_rate_over_threshold",
                              "%s: %s %% of %d requests failed (%d errors, %s; threshold %g %%)"
                              % (s["source"], s["error_rate_pct"], s["requests"], s["errors"], s["over"], threshold))
        for s in rated:
            if s["slow"] and 100.0 * s["slow"] / s["requests"] >= self.p["slow_pct"]:
                self.findings.add("warning", "slow_requests", "%s: %d of %d requests took longer than %d ms (%s)"
                                  % (s["source"], s["slow"], s["requests"], self.p["slow_ms"], s["over"]))
        if not any(s["requests"] for s in self.sources if s["ok"]) and any(s["ok"] for s in self.sources):
            self.findings.add("info", "no_requests", "no source saw a request (%s)" % ", ".join(
                "%s: %s" % (s["source"], s["over"]) for s in self.sources if s["ok"]))
        next_runbook = []
        order = ["db_connections", "deploy_failure", "dependency", "high_resource"]
        for runbook, data in sorted(self.cause.items(), key=lambda i: (-i[1]["weight"], order.index(i[0]))):
            next_runbook.append({"runbook": runbook, "cause": ae.CAUSES[runbook], "weight": data["weight"],
                                 "evidence": data["evidence"][:5]})
        for item in next_runbook:
            self.findings.add("warning" if over else "info", "likely_cause",
                              "likely cause: %s (%s): run the %s runbook next (playbooks/%s_diagnose.yml)"
                              % (item["cause"], "; ".join(item["evidence"][:2]), item["runbook"], item["runbook"]),
                              runbook=item["runbook"])
        rates = [s["error_rate_pct"] for s in rated if s["error_rate_pct"] is not None]
        self.endpoints.sort(key=lambda r: (-r["errors"], -(r["error_rate_pct"] or 0), r["endpoint"]))
        self.messages.sort(key=lambda m: (-m["count"], m["message"]))
        findings = sorted(self.findings.as_list(), key=lambda f: SEVERITY_ORDER[f["severity"]])
        return {
            "status": self.findings.status(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
            "window_s": self.p["window_s"], "threshold_pct": threshold,
            "error_rate_pct": max(rates) if rates else None, "over_threshold": bool(over),
            "sources": self.sources, "endpoints": self.endpoints[:self.p["top"]], "error_types": self.error_types,
            "top_errors": self.messages[:self.p["top"]], "releases": self.releases, "memory": self.memory,
            "next_runbook": next_runbook, "findings": findings,
        }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            health_url=dict(type="str"),
            health_format=dict(type="str", choices=["sme", "generic"], default="sme"),
            metrics_url=dict(type="str"),
            json_log_files=dict(type="list", elements="path", default=[]),
            access_log_files=dict(type="list", elements="path", default=[]),
            access_log_text=dict(type="str"),
            access_log_format=dict(type="str", choices=["nginx_combined", "caddy_json"], default="nginx_combined"),
            fly_logs=dict(type="str"),
            window_s=dict(type="int", default=900),
            threshold_pct=dict(type="float", default=1.0),
            min_requests=dict(type="int", default=5),
            slow_ms=dict(type="int", default=300),
            slow_pct=dict(type="float", default=10.0),
            sample_interval_s=dict(type="float", default=5),
            memory_growth_pct=dict(type="float", default=20.0),
            top=dict(type="int", default=10),
            timeout=dict(type="int", default=10),
            validate_certs=dict(type="bool", default=True),
            log_max_bytes=dict(type="int", default=67108864),
            fail_on=dict(type="str", choices=FAIL_ON_CHOICES, default="never"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for name in ("window_s", "sample_interval_s", "top", "timeout", "log_max_bytes", "slow_ms", "min_requests"):
        if p[name] < 0 or (name in ("window_s", "top", "timeout", "log_max_bytes") and p[name] == 0):
            module.fail_json(msg="app_errors: %s must be %s (got %s)" % (
                name, "positive" if name in ("window_s", "top", "timeout", "log_max_bytes") else "0 or more", p[name]))
    if p["threshold_pct"] <= 0 or p["threshold_pct"] > 100:
        module.fail_json(msg="app_errors: threshold_pct must be above 0 and at most 100 (got %s)" % p["threshold_pct"])
    if not (p["health_url"] or p["metrics_url"] or p["json_log_files"] or p["access_log_files"] or p["fly_logs"]
            or p["access_log_text"] is not None):
        module.fail_json(msg="app_errors: no source given (health_url, metrics_url, json_log_files, access_log_files, "
                             "access_log_text or fly_logs)")
    run = Run(module)
    run.sample()
    if p["json_log_files"]:
        run.logs("json_logs", p["json_log_files"], ae.parse_json_log)
    parse = ae.parse_nginx_combined if p["access_log_format"] == "nginx_combined" else ae.parse_caddy_json
    if p["access_log_files"]:
        run.logs("access_logs", p["access_log_files"], parse)
    if p["access_log_text"] is not None:
        run.text_log("access_logs", "journal", p["access_log_text"].splitlines(), parse)
    if p["fly_logs"]:
        run.fly()
    result = run.verdict()
    if should_fail(result["status"], p["fail_on"]):
        module.fail_json(msg=fail_message("app_errors", result["status"], result["findings"]), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
