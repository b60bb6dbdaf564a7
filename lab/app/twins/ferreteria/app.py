# SPDX-License-Identifier: GPL-3.0-or-later
"""Lab twin of Ferreteria (runbook 003): a small Flask app under gunicorn on PostgreSQL.

GET /health answers 200 {"status": "healthy", "database": "connected"} or 503 {"database": "disconnected"};
GET /ventas lists the latest sales; GET /metrics is Prometheus text (prometheus_client). A release whose
image carries /app/BAD exits at start, like a broken deploy; so does one started without a name of
REQUIRED_SECRETS (.env.prod) in its environment.
"""
import os
import sys
import time

import psycopg2
from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

RELEASE = os.environ.get("RELEASE", "dev")
if os.path.exists("/app/BAD") or os.environ.get("APP_BAD") == "1":
    sys.stderr.write("Error: release %s is broken: ImportError: cannot import name 'Venta' from 'models'\n" % RELEASE)
    sys.exit(1)

for _name in filter(None, os.environ.get("REQUIRED_SECRETS", "").split(",")):
    if not os.environ.get(_name):
        sys.stderr.write("Error: required secret %s is not set, refusing to start\n" % _name)
        sys.exit(1)

app = Flask(__name__)
REQUESTS = Counter("http_requests_total", "HTTP requests", ["app", "route", "method", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["app", "route"],
                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10))
ERRORS = Counter("app_errors_total", "Application errors by type", ["app", "type"])
APP = "ferreteria"


def connect():
    return psycopg2.connect(os.environ["DATABASE_URL"], connect_timeout=2, application_name="ferreteria-web")


@app.before_request
def _start():
    request.environ["lab.started"] = time.monotonic()


@app.after_request
def _count(resp):
    route = request.path if request.path in ("/", "/health", "/ventas", "/metrics") else "other"
    REQUESTS.labels(APP, route, request.method, str(resp.status_code)).inc()
    LATENCY.labels(APP, route).observe(time.monotonic() - request.environ.get("lab.started", time.monotonic()))
    return resp


@app.route("/health")
def health():
    try:
        with connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM tenant")
            tenants = cur.fetchone()[0]
        return jsonify(status="healthy", database="connected", tenants=tenants, release=RELEASE)
    except psycopg2.Error as err:
        ERRORS.labels(APP, "db").inc()
        app.logger.error("Error: health check failed: %s", str(err).strip())
        return jsonify(status="unhealthy", database="disconnected", release=RELEASE), 503


@app.route("/ventas")
def ventas():
    try:
        with connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT id, tenant_id, total_cents FROM sale ORDER BY created_at DESC LIMIT 20")
            return jsonify([dict(zip(("id", "tenant_id", "total_cents"), row)) for row in cur.fetchall()])
    except psycopg2.Error as err:
        ERRORS.labels(APP, "db").inc()
        app.logger.error("Error: ventas failed: %s", str(err).strip())
        return jsonify(error="database unavailable"), 503


@app.route("/metrics")
def metrics():
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


# The twin's memory leak (the High-memory runbooks): a rendered-page cache keyed by the full URL, query string
# included, never evicted, so every distinct link (?utm_source=... of a campaign) keeps a page in memory for good.
PAGE_CACHE = {}


@app.route("/")
def index():
    page = PAGE_CACHE.get(request.full_path)
    if page is None:
        page = PAGE_CACHE[request.full_path] = bytearray(b" " * (1 << 20))
    return "ferreteria (sre.runbooks lab twin), release %s\n" % RELEASE
