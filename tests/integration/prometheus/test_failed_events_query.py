# SPDX-License-Identifier: GPL-3.0-or-later
"""The postgres_exporter custom query behind FailedJobsPiling, run as the exporter runs it (verbatim)
against a real PostgreSQL: only failed rows of the last hour are counted, per table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ensure_collection_link

REPO = Path(__file__).resolve().parents[3]
DB = "sre_prom_failed_events"
sys.path.insert(0, str(ensure_collection_link()))
_SPEC = importlib.util.spec_from_file_location("sre_awx_render", REPO / "awx" / "render.py")
render = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(render)


@pytest.fixture(scope="module")
def events_db(pg_cluster):
    if DB not in pg_cluster.psql("SELECT datname FROM pg_database").split():
        pg_cluster.psql("CREATE DATABASE %s" % DB)
    pg_cluster.psql("""
        DROP TABLE IF EXISTS stripe_webhook_events, "WebhookEvent";
        CREATE TABLE stripe_webhook_events (id serial PRIMARY KEY, status text, event_type text,
                                            error_message text, created_at timestamptz);
        INSERT INTO stripe_webhook_events (status, event_type, error_message, created_at)
        SELECT 'failed', 'invoice.paid', 'timeout', now() - interval '30 minutes' FROM generate_series(1, 3)
        UNION ALL SELECT 'failed', 'invoice.paid', 'timeout', now() - interval '2 hours' FROM generate_series(1, 2)
        UNION ALL SELECT 'received', 'invoice.paid', NULL, now() FROM generate_series(1, 4);
        CREATE TABLE "WebhookEvent" (id serial PRIMARY KEY, status text, "createdAt" timestamptz);
        INSERT INTO "WebhookEvent" (status, "createdAt")
        VALUES ('FAILED', now()), ('failed', now()), ('FAILED', now() - interval '1 day');
    """, dbname=DB)
    return pg_cluster


def _rows(cluster, query):
    conn = cluster.connect(DB)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return sorted(cur.fetchall())
    finally:
        conn.close()


def test_shipped_query_counts_failed_rows_of_the_last_hour(events_db):
    queries = yaml.safe_load((REPO / "extensions" / "prometheus" / "postgres_exporter" / "queries.yml").read_text())
    spec = queries["sre_failed_events"]
    assert [list(m) for m in spec["metrics"]] == [["events_table"], ["last_hour"]]
    assert _rows(events_db, spec["query"]) == [("stripe_webhook_events", 3)]


def test_configured_tables_with_quoted_names(events_db):
    spec = render.exporter_queries({"postgres_exporter": {"failed_events_tables": [
        "stripe_webhook_events",
        {"table": '"WebhookEvent"', "time_column": '"createdAt"', "failed_status": "FAILED"}]}})
    assert _rows(events_db, spec["sre_failed_events"]["query"]) == [("WebhookEvent", 1), ("stripe_webhook_events", 3)]
