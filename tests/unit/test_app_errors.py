# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of app_errors (plugins/module_utils/_app_errors.py) on text in the twins' exact formats: the SME
Booking health JSON, Prometheus text of the Node/Flask twins, the app's JSON log lines, nginx combined and Caddy
JSON access lines, Fly log entries; counter deltas, tallies, the cause of an error and the scrub."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _app_errors as ae  # noqa: E402
from ansible_collections.sre.runbooks.plugins.module_utils import _targets as t  # noqa: E402

HEALTH = json.dumps({
    "status": "healthy", "release": "v1.4.2", "totalRequests": 120, "totalErrors": 3, "slowRequests": 2,
    "memory": {"heapUsed": 52, "heapTotal": 80, "external": 4}, "database": {"healthy": True, "latencyMs": 3},
    "mocks": {"googleCalendar": False, "twilio": True},
})

METRICS = """# HELP http_requests_total Requests by route and status
# TYPE http_requests_total counter
http_requests_total{app="sme-booking-app",route="/api/bookings",method="GET",status="200"} 90
http_requests_total{app="sme-booking-app",route="/api/bookings",method="GET",status="502"} 6
http_requests_total{app="sme-booking-app",route="/api/services",method="GET",status="200"} 24
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1",route="/api/bookings"} 80
http_request_duration_seconds_bucket{le="0.3",route="/api/bookings"} 90
http_request_duration_seconds_bucket{le="1",route="/api/bookings"} 95
http_request_duration_seconds_bucket{le="+Inf",route="/api/bookings"} 96
http_request_duration_seconds_count{route="/api/bookings"} 96
http_request_duration_seconds_sum{route="/api/bookings"} 12.5
app_errors_total{type="dependency"} 5
app_errors_total{type="db"} 1
process_resident_memory_bytes 5.24288e+07
"""

APP_JSON = ('{"timestamp":"2026-12-01T12:00:00.000Z","level":"info","app":"sme-booking-app","release":"v1.4.2",'
            '"endpoint":"/api/bookings","status":200,"duration":12}')
ERROR_JSON = ('{"timestamp":"2026-12-01T12:00:01.000Z","level":"error","app":"sme-booking-app","release":"v1.4.2",'
              '"error":"GOOGLE_CALENDAR API error: connect ECONNREFUSED 127.0.0.1:9","type":"dependency",'
              '"endpoint":"/api/bookings"}')
NGINX = ('203.0.113.9 - - [01/Dec/2026:13:00:00 +0100] "GET /api/recipes/42?token=abc HTTP/1.1" 502 157 '
         '"https://cookcam.example/" "Mozilla/5.0 (X11)"')
CADDY = json.dumps({"level": "error", "ts": 1796126400.5, "logger": "http.log.access.log0", "msg": "handled request",
                    "request": {"remote_ip": "127.0.0.1", "method": "POST", "host": "saasresto.local",
                                "uri": "/api/orders/7?x=1", "headers": {"Authorization": ["REDACTED"]}},
                    "duration": 0.4123, "size": 12, "status": 500})
T0 = 1796126400.0  # 2026-12-01T12:00:00Z


def test_sme_health():
    h = ae.parse_health(HEALTH, "sme")
    assert h == {"status": "healthy", "release": "v1.4.2", "requests": 120, "errors": 3, "slow": 2, "heap_used": 52,
                 "heap_total": 80, "db_healthy": True, "db_latency_ms": 3}


def test_generic_health_uses_what_it_finds():
    h = ae.parse_health('{"status":"ok","version":"3.1","requests":"10","errors":1}', "generic")
    assert (h["release"], h["requests"], h["errors"], h["slow"], h["heap_used"]) == ("3.1", 10, 1, None, None)
    assert ae.parse_health('{"status":"ok"}', "sme")["requests"] is None


@pytest.mark.parametrize("body", ["<html>502 Bad Gateway</html>", "[1, 2]", ""])
def test_health_not_a_json_object(body):
    with pytest.raises(t.ParseError):
        ae.parse_health(body)


def test_prometheus_counters():
    samples = ae.parse_prometheus(METRICS + 'weird line\nlabels_with_escapes{a="x\\"y",b="c,d"} 1\n')
    assert ("labels_with_escapes", {"a": 'x"y', "b": "c,d"}, 1.0) in samples
    c = ae.metrics_counters(samples, slow_s=0.3)
    assert (c["requests"], c["errors"]) == (120.0, 6.0)
    assert c["by_route"] == {"/api/bookings": [96.0, 6.0], "/api/services": [24.0, 0.0]}
    assert c["error_types"] == {"dependency": 5.0, "db": 1.0}
    assert c["slow"] == 6.0 and c["rss_bytes"] == 52428800.0  # 96 in +Inf minus 90 at or under 0.3 s


def test_metrics_delta_and_counter_reset():
    first = ae.metrics_counters(ae.parse_prometheus(METRICS), 0.3)
    grown = METRICS.replace('status="502"} 6', 'status="502"} 16').replace('status="200"} 90', 'status="200"} 100')
    second = ae.metrics_counters(ae.parse_prometheus(grown), 0.3)
    d = ae.metrics_delta(first, second)
    assert (d["requests"], d["errors"], d["by_route"]["/api/bookings"]) == (20.0, 10.0, [20.0, 10.0])
    assert ae.counter_delta(500, 7) == 7 and ae.counter_delta(5, 9) == 4 and ae.counter_delta(None, 3) is None


def test_json_log_lines():
    info = ae.parse_json_log(APP_JSON)
    assert info == {"epoch": T0, "level": "info", "release": "v1.4.2", "endpoint": "/api/bookings", "status": 200,
                    "duration_ms": 12.0, "error": None, "type": None}
    err = ae.parse_json_log(ERROR_JSON)
    assert (err["level"], err["type"], err["status"], err["epoch"]) == ("error", "dependency", None, T0 + 1)
    assert err["error"].startswith("GOOGLE_CALENDAR API error")
    pino = ae.parse_json_log('{"level":50,"time":1796126400000,"msg":"too many clients already","req":{}}')
    assert (pino["level"], pino["epoch"], pino["error"]) == ("error", T0, "too many clients already")
    assert ae.parse_json_log("plain text") is None and ae.parse_json_log("{not json") is None


def test_nginx_combined():
    r = ae.parse_nginx_combined(NGINX)
    assert r == {"epoch": T0 + 3600 - 3600, "method": "GET", "endpoint": "/api/recipes/:id", "status": 502,
                 "duration_ms": None}
    timed = ae.parse_nginx_combined(NGINX.replace('+0100', '+0000') + " rt=0.512")
    assert timed["epoch"] == T0 + 3600 and timed["duration_ms"] == 512.0
    assert ae.parse_nginx_combined("2026/12/01 12:00:00 [error] 12#12: *1 connect() failed") is None


def test_caddy_json():
    r = ae.parse_caddy_json(CADDY)
    assert r == {"epoch": 1796126400.5, "method": "POST", "endpoint": "/api/orders/:id", "status": 500,
                 "duration_ms": pytest.approx(412.3)}
    assert ae.parse_caddy_json('{"level":"info","msg":"serving initial configuration"}') is None


def test_fly_entries():
    text = "".join(json.dumps(e, indent=4) + "\n" for e in [
        {"level": "info", "instance": "m1", "region": "iad", "timestamp": "2026-12-01T12:00:00Z",
         "message": "GET /api/products 200"},
        {"level": "error", "instance": "m1", "region": "iad", "timestamp": "2026-12-01T12:00:01Z",
         "message": "[PC01] instance refused connection"},
        {"level": "info", "instance": "m1", "region": "iad", "timestamp": "2026-12-01T12:00:02Z",
         "message": " ERROR Shopify API error: 429 Too Many Requests"},
        {"level": "info", "instance": "m1", "region": "iad", "timestamp": "2026-12-01T12:00:03Z",
         "message": ERROR_JSON.replace("2026-12-01T12:00:01.000Z", "2026-12-01T12:00:03.000Z")},
    ])
    records = [ae.fly_record(e) for e in t.parse_fly_logs(text)]
    assert [r["level"] for r in records] == ["info", "error", "error", "error"]
    assert [r["epoch"] - T0 for r in records] == [0, 1, 2, 3]
    assert records[3]["type"] == "dependency"


def test_tally_counts_requests_errors_and_releases():
    tally = ae.Tally("json_logs", slow_ms=300)
    lines = [APP_JSON, APP_JSON.replace('"duration":12', '"duration":450'),
             APP_JSON.replace('"status":200', '"status":503').replace("v1.4.2", "v1.5.0"), ERROR_JSON, ERROR_JSON]
    for line in lines:
        tally.add_record(ae.parse_json_log(line))
    assert (tally.requests, tally.errors_5xx, tally.error_lines, tally.errors, tally.slow) == (3, 1, 2, 2, 1)
    assert tally.types == {"dependency": 2}
    assert tally.by_endpoint() == {"/api/bookings": (3, 2)}
    assert ae.releases_seen(tally.releases) == ["v1.4.2", "v1.5.0"]
    assert ae.worst_endpoints(tally.by_endpoint(), "json_logs", 5) == [
        {"endpoint": "/api/bookings", "requests": 3, "errors": 2, "error_rate_pct": 66.67, "source": "json_logs"}]


def test_tally_rate_never_over_the_requests():
    """Error lines of an endpoint the app does not log as a request (its health check failing every few seconds
    while the database refuses it) are not errors among the requests: the rate stays at most 100 %."""
    tally = ae.Tally("json_logs", slow_ms=300)
    failed = APP_JSON.replace('"status":200', '"status":502')
    health = ERROR_JSON.replace("/api/bookings", "/api/health").replace('"dependency"', '"db"')
    for line in [APP_JSON, failed, failed] + [health] * 20:
        tally.add_record(ae.parse_json_log(line))
    assert (tally.requests, tally.errors_5xx, tally.error_lines, tally.errors) == (3, 2, 20, 2)
    assert ae.rate_pct(tally.errors, tally.requests) == 66.67
    assert tally.by_endpoint() == {"/api/bookings": (3, 2), "/api/health": (0, 20)}
    assert tally.types == {"db": 20}


@pytest.mark.parametrize("message,kind,runbook", [
    ("anything", "db", "db_connections"),
    ("sorry, too many clients already", None, "db_connections"),
    ("Timeout acquiring a connection. The pool is probably full.", "internal", "db_connections"),
    ("GOOGLE_CALENDAR API error: connect ECONNREFUSED 127.0.0.1:9", None, "dependency"),
    ("whatever", "dependency", "dependency"),
    ("FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory", None, "high_resource"),
    ("invalid signature on webhook", "webhook", None),
    ("jwt expired", "auth", None),
])
def test_classify_error(message, kind, runbook):
    assert ae.classify_error(message, kind) == runbook


@pytest.mark.parametrize("text,expected", [
    ("http://127.0.0.1:3001/api/health?token=s3cr3t&x=1", "http://127.0.0.1:3001/api/health?token=***&x=***"),
    ("https://user:pa55@metrics.example/metrics", "https://user:***@metrics.example/metrics"),
    ("Authorization: Bearer abcdefghijklmnop failed", "Authorization: Bearer *** failed"),
    ("stripe error api_key=sk_live_123456 rejected", "stripe error api_key=*** rejected"),
    ("GOOGLE_CALENDAR API error: connect ECONNREFUSED 127.0.0.1:9",
     "GOOGLE_CALENDAR API error: connect ECONNREFUSED 127.0.0.1:9"),
])
def test_scrub(text, expected):
    assert ae.scrub(text) == expected


@pytest.mark.parametrize("path,endpoint", [
    ("/api/bookings?date=2026-12-01", "/api/bookings"),
    ("/api/bookings/123/cancel", "/api/bookings/:id/cancel"),
    ("/r/0f8fad5b-d9cb-469f-a165-70867728950e", "/r/:id"),
    ("http://host/x/1", "/x/:id"),
    ("", "-"),
])
def test_endpoint_of(path, endpoint):
    assert ae.endpoint_of(path) == endpoint
