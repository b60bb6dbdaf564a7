# SPDX-License-Identifier: GPL-3.0-or-later
"""error_rate on localhost (no lab): a real HTTP server on 127.0.0.1 answers the SME Booking health JSON and a
Prometheus /metrics text whose counters grow between the two samples, beside JSON log files (app.json, error.json)
and an nginx combined access log written with the current time. The playbook runs through tests/playbook_runner.py
with a temporary inventory: over the threshold it fires and names the runbook of the cause, under it it does not,
a missing file or an unreachable URL is one clear finding (no traceback), and --check changes nothing. The module
alone (conftest.run_module) is run for the other causes (pool, deploy, memory) and for the Fly logs of the fake
flyctl."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import run_module
from playbook_runner import run_playbook

REPO = Path(__file__).resolve().parents[3]
FLYCTL = REPO / "lab" / "fake-flyctl" / "flyctl"
TOKEN = "tok-" + "9f3a61c2e7d84b05"  # a query-string secret that must never be printed
DEP_ERROR = "GOOGLE_CALENDAR API error: connect ECONNREFUSED 127.0.0.1:9"


class Twin:
    """The SME Booking twin's health and /metrics: every answer adds `step` requests, of which `errors` failed
    (502 on /api/bookings, app_errors_total{type=error_type}), and `heap_step` MB to heapUsed."""

    def __init__(self, step=20, errors=4, error_type="dependency", release="v2", heap_step=0):
        self.step, self.errors, self.error_type, self.release, self.heap_step = step, errors, error_type, release, heap_step
        self.counters = {}  # health and /metrics count on their own: each answer is one step
        self.heap = 50.0
        self.lock = threading.Lock()

    def tick(self, what):
        with self.lock:
            requests, failed = self.counters.get(what, (1000, 10))
            requests, failed = requests + self.step, failed + self.errors
            self.counters[what] = (requests, failed)
            if what == "health":
                self.heap += self.heap_step
            return requests, failed, self.heap

    def health(self):
        requests, failed, heap = self.tick("health")
        return json.dumps({"status": "healthy", "release": self.release, "totalRequests": requests,
                           "totalErrors": failed, "slowRequests": 3,
                           "memory": {"heapUsed": heap, "heapTotal": 120, "external": 4},
                           "database": {"healthy": True, "latencyMs": 3}, "mocks": {"googleCalendar": False}})

    def metrics(self):
        requests, failed, _heap = self.tick("metrics")
        labels = 'app="sme-booking-app",route="/api/bookings",method="GET"'
        return "\n".join([
            "# HELP http_requests_total Requests", "# TYPE http_requests_total counter",
            'http_requests_total{%s,status="200"} %d' % (labels, requests - failed),
            'http_requests_total{%s,status="502"} %d' % (labels, failed),
            'http_request_duration_seconds_bucket{le="0.3",route="/api/bookings"} %d' % requests,
            'http_request_duration_seconds_bucket{le="+Inf",route="/api/bookings"} %d' % requests,
            'app_errors_total{type="%s"} %d' % (self.error_type, failed),
            "process_resident_memory_bytes 5.24288e+07", ""])


@pytest.fixture
def twin():
    state = Twin()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/api/health":
                body, kind = state.health(), "application/json"
            elif path == "/metrics":
                body, kind = state.metrics(), "text/plain; version=0.0.4"
            else:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = "http://127.0.0.1:%d" % server.server_address[1]
    yield state
    server.shutdown()
    server.server_close()


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + ".%03dZ" % int((epoch % 1) * 1000)


def clf(epoch):
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch))


def write_logs(root, ok=20, failed=4, error_type="dependency", error=DEP_ERROR, releases=("v2",), nginx_5xx=5):
    """app.json / error.json as the SME twin writes them and an nginx access.log: `ok` good requests and `failed`
    errors in the last minutes, plus old lines (2 h ago, type db) that the window must leave out."""
    now = time.time()
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    app, errors, access = [], [], []
    old = now - 7200
    for i in range(10):  # outside the window
        errors.append({"timestamp": iso(old + i), "level": "error", "app": "sme-booking-app", "release": "v0",
                       "error": "sorry, too many clients already", "type": "db", "endpoint": "/api/old"})
        access.append('10.0.0.1 - - [%s] "GET /api/old HTTP/1.1" 502 10 "-" "curl/8"' % clf(old + i))
    for i in range(ok + failed):
        at = now - 120 + i
        release = releases[min(len(releases) - 1, i * len(releases) // (ok + failed))]
        status = 502 if i >= ok else 200
        app.append({"timestamp": iso(at), "level": "warn" if status >= 500 else "info", "app": "sme-booking-app",
                    "release": release, "endpoint": "/api/bookings", "status": status, "duration": 12 + i})
        if status >= 500:
            errors.append({"timestamp": iso(at), "level": "error", "app": "sme-booking-app", "release": release,
                           "error": error, "type": error_type, "endpoint": "/api/bookings"})
    for i in range(ok + failed):
        status = 502 if i < nginx_5xx else 200
        access.append('203.0.113.%d - - [%s] "GET /api/bookings/%d?token=%s HTTP/1.1" %d 157 "-" "Mozilla/5.0"'
                      % (i % 250, clf(now - 100 + i), i, TOKEN, status))
    (logs / "app.json").write_text("".join(json.dumps(r) + "\n" for r in app))
    (logs / "error.json").write_text("".join(json.dumps(r) + "\n" for r in errors))
    (root / "access.log").write_text("".join(line + "\n" for line in access))
    return logs, root / "access.log"


def inventory(tmp_path, **host_vars):
    base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "sre_target_kind": "systemd",
            "sre_app_name": "sme-booking-app", "sre_proxy_kind": "nginx", "sre_app_health_format": "sme",
            "error_rate_sample_interval_s": 0}
    base.update(host_vars)
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps({"all": {"hosts": {"twin": base}}}))
    return path


def play(tmp_path, host_vars, check=False, playbook="error_rate_diagnose", extra_vars=None, verbosity=1):
    r = run_playbook(playbook, tmp_path=tmp_path, inventory=inventory(tmp_path, **host_vars), target="twin",
                     python_interpreter=False, check=check, extra_vars=extra_vars, verbosity=verbosity, secrets=[TOKEN])
    return r, " ".join(r.output.split())


def every_source(twin, logs, access):
    """The host vars that point error_rate at every source of the twin: health, /metrics, JSON logs, access log."""
    return {"sre_app_health_url": twin.base + "/api/health?token=" + TOKEN,
            "sre_app_metrics_url": twin.base + "/metrics", "sre_app_json_log_files": [str(logs / "*.json")],
            "sre_proxy_access_log_files": [str(access)]}


def test_over_threshold_names_the_runbook_of_the_cause(tmp_path, twin):
    logs, access = write_logs(tmp_path)
    host_vars = every_source(twin, logs, access)
    for check in (False, True):
        r, out = play(tmp_path, host_vars, check=check)
        assert r.rc == 0 and r.changed("twin") == 0 and r.failed("twin") == 0, out
        assert "Traceback" not in out
        # every source on its own: health 4/20 between the samples, metrics the same, JSON logs 4 of 24, nginx 5 of 24
        assert "health (http://127.0.0.1:%s/api/health?token=***): 20 requests, 4 errors, 20.0 %%" % (
            twin.base.rsplit(":", 1)[1]) in out, out
        assert "metrics (%s/metrics): 20 requests, 4 errors, 20.0 %%" % twin.base in out, out
        assert "json_logs (%s, %s): 24 requests, 4 errors, 16.67 %%" % (logs / "app.json", logs / "error.json") in out
        assert "access_logs (%s): 24 requests, 5 errors, 20.83 %%" % access in out, out
        assert "error_rate_over_threshold" in out and "Worst endpoints: /api/bookings/:id 5, /api/bookings 4" in out
        assert "Errors by type: dependency 8" in out and "4 x [dependency] %s" % DEP_ERROR in out, out
        assert "Next: playbooks/dependency_diagnose.yml." in out, out  # the old db lines are outside the window
        record = r.incident_text()
        assert "likely_cause" in record and "run the dependency runbook next" in record


def test_under_threshold_does_not_fire(tmp_path, twin):
    twin.errors = 0
    logs, access = write_logs(tmp_path, failed=0, nginx_5xx=0)
    r, out = play(tmp_path, {"sre_app_health_url": twin.base + "/api/health",
                             "sre_app_metrics_url": twin.base + "/metrics",
                             "sre_app_json_log_files": [str(logs / "*.json")],
                             "sre_proxy_access_log_files": [str(access)]})
    assert r.rc == 0 and r.changed("twin") == 0, out
    assert "error_rate_over_threshold" not in out and "likely_cause" not in out, out
    assert "Error rate over the window (threshold 1 %): 0.0 %." in out and "Findings: none." in out, out


def test_missing_file_and_unreachable_url_are_findings(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens there once the socket is closed
    r, out = play(tmp_path, {"sre_app_health_url": "http://127.0.0.1:%d/api/health?token=%s" % (closed, TOKEN),
                             "sre_app_json_log_files": [str(tmp_path / "nope" / "*.json")]})
    assert r.rc == 0 and r.changed("twin") == 0 and "Traceback" not in out, out
    assert out.count("source_unavailable") >= 2, out
    assert "health (http://127.0.0.1:%d/api/health?token=***): not readable: " % closed in out, out
    assert "json_logs (%s): not readable: no such file" % (tmp_path / "nope" / "*.json") in out, out


def test_no_source_is_one_finding(tmp_path):
    r, out = play(tmp_path, {"sre_proxy_kind": "none"})
    assert r.rc == 0 and r.changed("twin") == 0 and "no_sources" in out and "Traceback" not in out, out


# ---------------------------------------------------------------- the module alone: the other causes


def errors_module(args):
    res = run_module("app_errors", dict({"sample_interval_s": 0}, **args))
    assert res["rc"] == 0 and "Traceback" not in res.get("raw", ""), res.get("raw")
    return res


def test_a_log_glob_in_an_existing_directory_with_no_file_yet_is_not_a_missing_source(tmp_path):
    """An app that has not logged since it started: its logs/ directory exists, *.json matches nothing yet."""
    (tmp_path / "logs").mkdir()
    res = errors_module({"json_log_files": [str(tmp_path / "logs" / "*.json")]})
    codes = [f["code"] for f in res["findings"]]
    assert "source_unavailable" not in codes and "log_empty" in codes, res["findings"]


def test_pool_exhausted_points_to_db_connections(tmp_path):
    logs, _access = write_logs(tmp_path, error_type="db", error="Timeout acquiring a connection. The pool is full.")
    res = errors_module({"json_log_files": [str(logs / "*.json")]})
    assert [n["runbook"] for n in res["next_runbook"]] == ["db_connections"]
    assert res["over_threshold"] and res["error_types"] == {"db": 4}


def test_a_release_change_in_the_window_points_to_deploy_failure(tmp_path, twin):
    logs, _access = write_logs(tmp_path, error_type="internal", error="TypeError: x is undefined",
                               releases=("v1", "v2"))
    twin.release = "v2"
    res = errors_module({"json_log_files": [str(logs / "*.json")], "health_url": twin.base + "/api/health"})
    assert res["releases"]["logs"] == ["v1", "v2"] and res["releases"]["health"] == "v2"
    assert res["next_runbook"][0]["runbook"] == "deploy_failure", res["next_runbook"]
    assert "errors under v2: 4" in res["next_runbook"][0]["evidence"][0]


def test_heap_growth_points_to_high_resource(twin):
    twin.heap_step = 30  # 80 MB at the first sample, 110 MB at the second
    res = errors_module({"health_url": twin.base + "/api/health", "threshold_pct": 50})
    assert res["memory"]["heap_growth_pct"] == 37.5
    assert [n["runbook"] for n in res["next_runbook"]] == ["high_resource"]
    assert not res["over_threshold"]  # 20 % < 50 %: the cause is an info finding then
    assert [f["severity"] for f in res["findings"] if f["code"] == "likely_cause"] == ["info"]


def test_fly_logs_of_the_fake_flyctl(tmp_path):
    env = {"FAKE_FLY_STATE": str(tmp_path / "fly.json")}
    run = [str(FLYCTL), "--app", "hotdash-production"]
    subprocess.run(run[:1] + ["deploy", "--image", "registry.fly.io/hotdash-production:bad-1"] + run[1:], env=env,
                   capture_output=True, text=True, check=False)
    proc = subprocess.run(run[:1] + ["logs", "--no-tail", "--json"] + run[1:], env=env, capture_output=True, text=True,
                          check=True)
    res = errors_module({"fly_logs": proc.stdout, "window_s": 600})
    fly = [s for s in res["sources"] if s["source"] == "fly_logs"][0]
    assert fly["ok"] and fly["requests"] is None and fly["errors"] >= 2, fly
    codes = [f["code"] for f in res["findings"]]
    assert "log_errors" in codes and "error_rate_over_threshold" not in codes, res["findings"]
    assert any("[PC01]" in e["message"] for e in res["top_errors"]), res["top_errors"]


def test_fly_target_reads_the_logs_through_the_target_interface(tmp_path):
    """Kind fly: the role reads `flyctl logs --json --no-tail` through the target role's fly_command (the fake
    flyctl, FAKE_FLY_STATE in the test's directory) and counts the error lines of a crashing release."""
    env = {"FAKE_FLY_STATE": str(tmp_path / "fly" / "state.json")}
    (tmp_path / "fly").mkdir()
    subprocess.run([str(FLYCTL), "deploy", "--image", "registry.fly.io/hotdash-production:bad-1", "--app",
                    "hotdash-production"], env=env, capture_output=True, text=True, check=False)
    host_vars = {"sre_target_kind": "fly", "sre_fly_app": "hotdash-production", "sre_flyctl": str(FLYCTL),
                 "sre_app_name": "hotdash-production", "sre_proxy_kind": "none", "error_rate_threshold_pct": 5}
    for check in (False, True):
        r = run_playbook("error_rate_diagnose", tmp_path=tmp_path, inventory=inventory(tmp_path, **host_vars),
                         target="twin", python_interpreter=False, check=check, verbosity=1, env=env)
        out = " ".join(r.output.split())
        assert r.rc == 0 and r.changed("twin") == 0 and "Traceback" not in out, out
        assert re.search(r"fly_logs \(flyctl logs\): [1-9]\d* error lines \(no request count there, no rate\), "
                         r"window 900 s", out) and "log_errors" in out, out


def test_caddy_journal_is_read_when_no_access_log_file_is_set(tmp_path):
    """Caddy (sre_proxy_kind caddy) logs to the journal: the role reads its unit's journal over the window. Here no
    such unit has lines (or the host has no journal): an empty source or one clear finding, never a failure."""
    r, out = play(tmp_path, {"sre_proxy_kind": "caddy", "sre_proxy_service": "sre-error-rate-test-no-such-unit",
                             "sre_app_health_url": ""})
    assert r.rc == 0 and r.changed("twin") == 0 and "Traceback" not in out, out
    assert ("access_logs (journal): no lines in the window 900 s" in out
            or "the journal of sre-error-rate-test-no-such-unit could not be read" in out), out


def test_caddy_json_access_lines_given_as_text():
    now = time.time()
    lines = [json.dumps({"level": "error" if i < 3 else "info", "ts": now - 60 + i, "logger": "http.log.access.log0",
                         "msg": "handled request", "status": 502 if i < 3 else 200, "duration": 0.5 if i < 2 else 0.01,
                         "request": {"method": "GET", "uri": "/api/orders/%d?key=%s" % (i, TOKEN)}})
             for i in range(10)]
    lines.append(json.dumps({"level": "info", "ts": now - 7200, "logger": "http.log.access.log0", "status": 500,
                             "request": {"method": "GET", "uri": "/old"}}))  # outside the window
    lines.append('{"level":"info","ts":%f,"logger":"tls","msg":"certificate obtained"}' % now)
    res = errors_module({"access_log_text": "\n".join(lines), "access_log_format": "caddy_json", "threshold_pct": 5})
    src = res["sources"][0]
    assert (src["source"], src["where"], src["requests"], src["errors"], src["slow"]) == ("access_logs", "journal", 10, 3, 2)
    assert res["over_threshold"] and res["endpoints"][0]["endpoint"] == "/api/orders/:id"
    assert TOKEN not in json.dumps({k: v for k, v in res.items() if k not in ("invocation", "raw")})


def remediate(tmp_path, host_vars, extra_vars=None, check=False):
    return play(tmp_path, host_vars, check=check, playbook="error_rate_remediate", extra_vars=extra_vars, verbosity=0)


def test_remediate_stops_on_a_cause_it_does_not_automate(tmp_path, twin):
    """A third-party API failing (dependency) has no automated remedy yet: one clear message, nothing changed."""
    logs, access = write_logs(tmp_path)
    host_vars = every_source(twin, logs, access)
    for check in (False, True):
        r, out = remediate(tmp_path, host_vars, extra_vars={"sre_confirm": "yes"}, check=check)
        assert r.rc != 0 and r.changed("twin") == 0 and r.failed("twin") == 1, out
        assert "Traceback" not in out and TOKEN not in r.output
        assert ("the likely cause is dependency, which has no automated remedy here yet: follow its runbook by hand"
                in out), out
        assert "Errors by type" in out and "Nothing was changed." in out, out


def test_remediate_under_the_threshold_changes_nothing(tmp_path, twin):
    twin.errors = 0
    logs, access = write_logs(tmp_path, failed=0, nginx_5xx=0)
    r, out = remediate(tmp_path, {"sre_app_health_url": twin.base + "/api/health",
                                  "sre_app_metrics_url": twin.base + "/metrics",
                                  "sre_app_json_log_files": [str(logs / "*.json")],
                                  "sre_proxy_access_log_files": [str(access)]}, extra_vars={"sre_confirm": "yes"})
    assert r.rc == 0 and r.changed("twin") == 0, out
    assert "the error rate is under 1 % (0.0 %) and no runbook was named (error_rate_handover): nothing to change" in out
    assert "Run db_connections remediate" in out and "included: sre.runbooks.db_connections" not in out, out


@pytest.mark.parametrize("answer", ["dependency", "bogus"])
def test_remediate_a_handover_it_cannot_run_is_one_clear_message(tmp_path, twin, answer):
    r, out = remediate(tmp_path, {"sre_app_health_url": twin.base + "/api/health"},
                       extra_vars={"sre_confirm": "yes", "error_rate_handover": answer})
    assert r.rc != 0 and r.changed("twin") == 0 and "Traceback" not in out, out
    assert re.search(r"error_rate_handover must be one of: .*auto, db_connections, deploy_failure, high_resource,"
                     r" got: %s" % answer, out), out
