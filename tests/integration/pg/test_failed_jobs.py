# SPDX-License-Identifier: GPL-3.0-or-later
"""pg_failed_jobs and the failed_jobs runbook (role + playbooks) against the throwaway cluster.

The events table is CookCam's ``stripe_webhook_events`` (runbook 001, "Stripe Webhook Failures"), and a Prisma
twin with quoted mixed-case names (``"WebhookEvent"."createdAt"``, an enum status, ``timestamp(3)`` in UTC).
"""

from __future__ import annotations

import csv
import json
import os
import stat

import pytest

from conftest import run_module
from pg_sessions import run_playbook

DB = "failed_jobs_t"
STRIPE_KEY = "sk_live_51Hx9AbCdEfGhIjKlMn"

# id, status, event_type, minutes ago, error. Window 1h: 59 minutes ago is inside, 61 outside.
ROWS = [
    (1, "processed", "invoice.paid", 5, None),
    (2, "processed", "invoice.paid", 30, None),
    (3, "pending", "customer.created", 2, None),
    (4, "failed", "invoice.paid", 50, "No such customer: cus_123"),
    (5, "failed", "invoice.payment_failed", 40, "Stripe API error (key %s)" % STRIPE_KEY),
    (6, "failed", "invoice.paid", 59, "timeout after 30s " + "x" * 400),
    (7, "failed", "invoice.paid", 10, "signature mismatch whsec_abcdef123456 Bearer abcdefghijkl12345"),
    (8, "failed", "charge.refunded", 20, "db error: password=%s" % "triage-secret-9f2c"),
    (9, "failed", "invoice.paid", 61, "old failure just outside the window"),
    (10, "failed", "invoice.paid", 600, "old failure"),
    (11, "processed", "invoice.paid", 120, None),
]
IN_WINDOW_FAILED = [6, 4, 5, 8, 7]  # oldest first


@pytest.fixture(scope="module")
def db(pg_cluster):
    pg_cluster.psql("DROP DATABASE IF EXISTS %s" % DB)
    pg_cluster.psql("CREATE DATABASE %s" % DB)
    yield DB
    pg_cluster.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB)


@pytest.fixture
def events(pg_cluster, db):
    values = ", ".join("(%d, 'evt_%d', '%s', '%s', %s, now() - interval '%d minutes', NULL)" % (
        i, i, status, kind, "NULL" if err is None else "'%s'" % err.replace("'", "''"), minutes)
        for i, status, kind, minutes, err in ROWS)
    pg_cluster.psql(
        "DROP TABLE IF EXISTS stripe_webhook_events;"
        "CREATE TABLE stripe_webhook_events (id serial PRIMARY KEY, stripe_event_id text UNIQUE NOT NULL, "
        "status text NOT NULL CHECK (status IN ('pending', 'processed', 'failed')), event_type text NOT NULL, "
        "error_message text, created_at timestamptz NOT NULL DEFAULT now(), processed_at timestamptz);"
        "INSERT INTO stripe_webhook_events (id, stripe_event_id, status, event_type, error_message, created_at, "
        "processed_at) VALUES %s;" % values, dbname=db)
    return "stripe_webhook_events"


def statuses(pg_cluster, db, table="stripe_webhook_events", status="status"):
    out = pg_cluster.psql("SELECT string_agg(id || ':' || %s, ',' ORDER BY id) FROM %s" % (status, table), dbname=db)
    return dict(item.split(":") for item in out.strip().split(","))


def args(pg_cluster, db, **extra):
    base = dict(pg_cluster.login_args(db), table="stripe_webhook_events", window="1h")
    base.update(extra)
    return base


def no_traceback(result):
    assert "Traceback" not in result["raw"], result["raw"]


# ---------------------------------------------------------------------------------------------- module

def test_counts_by_status_window_boundaries_and_latest_errors(pg_cluster, db, events):
    res = run_module("pg_failed_jobs", args(pg_cluster, db, errors=6, error_length=80))
    no_traceback(res)
    assert res["rc"] == 0 and res["changed"] is False, res
    assert res["by_status"] == {"failed": 5, "processed": 2, "pending": 1}
    assert res["failed_in_window"] == 5
    assert res["failed_by_type"] == {"invoice.paid": 3, "charge.refunded": 1, "invoice.payment_failed": 1}
    assert res["window_seconds"] == 3600 and res["since"]
    # the latest failed rows whatever their age, newest first
    assert [e["id"] for e in res["latest_errors"]] == [7, 8, 5, 4, 6, 9]
    errors = {e["id"]: e["error"] for e in res["latest_errors"]}
    assert errors[4] == "No such customer: cus_123"
    assert len(errors[6]) == 80 and errors[6].endswith("...")
    assert STRIPE_KEY not in res["raw"] and "sk_live_***" in errors[5]
    assert "whsec_abcdef123456" not in res["raw"] and "abcdefghijkl12345" not in res["raw"]
    assert pg_cluster.password not in res["raw"]
    assert res["to_requeue"] == 0 and res["requeued"] == 0 and res["saved_to"] is None
    codes = {f["code"]: f for f in res["findings"]}
    assert codes["failed_jobs_over_threshold"]["severity"] == "warning" and res["status"] == "warning"
    assert set(codes["failed_jobs_over_threshold"]) == {"severity", "code", "message"}

    quiet = run_module("pg_failed_jobs", args(pg_cluster, db, threshold=6, window="30m", type_column="", error_column=""))
    assert quiet["rc"] == 0 and quiet["status"] == "ok" and quiet["findings"] == [], quiet
    assert [(e["type"], e["error"]) for e in quiet["latest_errors"]][:1] == [(None, None)]
    assert quiet["by_status"] == {"failed": 2, "pending": 1, "processed": 1} and quiet["failed_by_type"] == {}

    wide = run_module("pg_failed_jobs", args(pg_cluster, db, window="1h30m"))
    assert wide["failed_in_window"] == 6  # the row 61 minutes old is in a 90 minute window


def test_requeue_exactly_the_failed_rows_of_the_window_up_to_the_limit(pg_cluster, db, events, tmp_path):
    before = statuses(pg_cluster, db)
    save_dir = tmp_path / "saved"
    requeue = args(pg_cluster, db, mode="requeue", limit=3, save_dir=str(save_dir))

    check = run_module("pg_failed_jobs", requeue, check_mode=True)
    no_traceback(check)
    assert check["rc"] == 0 and check["changed"] is True, check
    assert check["to_requeue"] == 3 and check["planned_ids"] == IN_WINDOW_FAILED[:3] and check["requeued"] == 0
    assert check["saved_to"] is None and not save_dir.exists()
    assert statuses(pg_cluster, db) == before

    res = run_module("pg_failed_jobs", requeue)
    no_traceback(res)
    assert res["rc"] == 0 and res["changed"] is True, res
    assert res["requeued"] == 3 and res["requeued_ids"] == IN_WINDOW_FAILED[:3]
    assert {f["code"] for f in res["findings"]} >= {"failed_jobs_over_limit", "failed_jobs_requeued"}
    after = statuses(pg_cluster, db)
    assert {i for i in after if after[i] != before[i]} == {str(i) for i in IN_WINDOW_FAILED[:3]}
    assert all(after[str(i)] == "pending" for i in IN_WINDOW_FAILED[:3])

    saved = res["saved_to"]
    assert os.path.dirname(saved) == str(save_dir) and stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    doc = json.loads(open(saved).read())
    assert doc["row_count"] == 3 and [r["id"] for r in doc["rows"]] == IN_WINDOW_FAILED[:3]
    assert all(r["status"] == "failed" for r in doc["rows"]), "the rows as they were before the change"
    assert {"stripe_event_id", "error_message", "created_at", "processed_at"} <= set(doc["rows"][0])

    rest = run_module("pg_failed_jobs", dict(requeue, save_format="csv"))
    assert rest["requeued_ids"] == IN_WINDOW_FAILED[3:] and rest["saved_to"].endswith(".csv")
    with open(rest["saved_to"]) as handle:
        assert [int(r["id"]) for r in csv.DictReader(handle)] == IN_WINDOW_FAILED[3:]

    again = run_module("pg_failed_jobs", requeue)
    assert again["rc"] == 0 and again["changed"] is False and again["requeued"] == 0 and again["saved_to"] is None
    final = statuses(pg_cluster, db)
    assert final["9"] == "failed" and final["10"] == "failed", "rows older than the window are left alone"
    assert len(list(save_dir.iterdir())) == 2


def test_requeue_is_one_transaction(pg_cluster, db, events, tmp_path):
    """A trigger refuses the update of the last row: nothing is requeued, the message says so."""
    pg_cluster.psql(
        "CREATE OR REPLACE FUNCTION refuse_7() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
        "IF NEW.id = 7 THEN RAISE EXCEPTION 'refused by the test trigger'; END IF; RETURN NEW; END$$;"
        "CREATE TRIGGER refuse_7 BEFORE UPDATE ON stripe_webhook_events FOR EACH ROW EXECUTE FUNCTION refuse_7();",
        dbname=db)
    before = statuses(pg_cluster, db)
    res = run_module("pg_failed_jobs", args(pg_cluster, db, mode="requeue", save_dir=str(tmp_path / "saved")))
    no_traceback(res)
    assert res["rc"] != 0 and res["failed"] is True, res
    assert "refused by the test trigger" in res["msg"] and "NOT requeued: rolled back" in res["msg"], res["msg"]
    assert res["requeued"] == 0 and res["requeued_ids"] == []
    assert statuses(pg_cluster, db) == before
    # the rows were saved before the update was tried (the file stays, the message names it)
    saved = list((tmp_path / "saved").glob("*.json"))
    assert len(saved) == 1 and str(saved[0]) in res["msg"]
    assert [r["id"] for r in json.loads(saved[0].read_text())["rows"]] == IN_WINDOW_FAILED


def test_requeue_gives_up_on_a_locked_row_and_changes_nothing(pg_cluster, db, events, tmp_path):
    """A worker holds one of the failed rows: after lock_timeout the whole requeue is rolled back."""
    before = statuses(pg_cluster, db)
    worker = pg_cluster.connect(db)
    try:
        with worker.cursor() as cur:
            cur.execute("SELECT id FROM stripe_webhook_events WHERE id = 8 FOR UPDATE")
        locked = args(pg_cluster, db, mode="requeue", lock_timeout=1, save_dir=str(tmp_path / "saved"))
        res = run_module("pg_failed_jobs", locked)
    finally:
        worker.rollback()
        worker.close()
    no_traceback(res)
    assert res["rc"] != 0 and "lock timeout" in res["msg"], res
    assert statuses(pg_cluster, db) == before and not (tmp_path / "saved").exists()


def test_requeue_keeps_a_database_read_only(pg_cluster, db, events, tmp_path):
    """Writes stopped on purpose (default_transaction_read_only) stay stopped: the requeue fails and says why."""
    before = statuses(pg_cluster, db)
    pg_cluster.psql("ALTER DATABASE %s SET default_transaction_read_only = on" % db)
    try:
        res = run_module("pg_failed_jobs", args(pg_cluster, db, mode="requeue", save_dir=str(tmp_path / "saved")))
    finally:
        pg_cluster.psql("ALTER DATABASE %s RESET default_transaction_read_only" % db)
    no_traceback(res)
    assert res["rc"] != 0 and "in a read-only transaction" in res["msg"], res
    assert not (tmp_path / "saved").exists()
    assert statuses(pg_cluster, db) == before


def test_quoted_mixed_case_prisma_names(pg_cluster, db, tmp_path):
    pg_cluster.psql(
        'DROP TABLE IF EXISTS "WebhookEvent"; DROP TYPE IF EXISTS "WebhookStatus";'
        "CREATE TYPE \"WebhookStatus\" AS ENUM ('PENDING', 'PROCESSED', 'FAILED');"
        'CREATE TABLE "WebhookEvent" (id text PRIMARY KEY, "status" "WebhookStatus" NOT NULL, "eventType" text, '
        '"errorMessage" text, "createdAt" timestamp(3) NOT NULL);'
        "INSERT INTO \"WebhookEvent\" VALUES "
        "('a', 'FAILED', 'invoice.paid', 'boom', (now() AT TIME ZONE 'UTC') - interval '10 minutes'),"
        "('b', 'FAILED', 'invoice.paid', 'old', (now() AT TIME ZONE 'UTC') - interval '3 hours'),"
        "('c', 'PROCESSED', 'invoice.paid', NULL, (now() AT TIME ZONE 'UTC') - interval '5 minutes');", dbname=db)
    prisma = args(pg_cluster, db, table='public."WebhookEvent"', time_column='"createdAt"', error_column='"errorMessage"',
                  type_column='"eventType"', failed_status="FAILED", requeue_status="PENDING", timezone="UTC")
    res = run_module("pg_failed_jobs", prisma)
    no_traceback(res)
    assert res["rc"] == 0, res
    assert res["by_status"] == {"FAILED": 1, "PROCESSED": 1} and res["failed_by_type"] == {"invoice.paid": 1}
    assert [e["id"] for e in res["latest_errors"]] == ["a", "b"]

    done = run_module("pg_failed_jobs", dict(prisma, mode="requeue", save_dir=str(tmp_path)))
    assert done["rc"] == 0 and done["requeued_ids"] == ["a"], done
    assert statuses(pg_cluster, db, '"WebhookEvent"') == {"a": "PENDING", "b": "FAILED", "c": "PROCESSED"}


@pytest.mark.parametrize("extra,message", [
    ({"table": "no_such_table"}, "Checking the table option: table no_such_table does not exist"),
    ({"status_column": "state"}, "Checking the status_column option: table stripe_webhook_events has no column state"),
    ({"time_column": "event_type"}, "column event_type of stripe_webhook_events is text, not a timestamp"),
    ({"table": "events; DROP TABLE x"}, "Checking the options: table: 'events; DROP TABLE x' is not an identifier"),
    ({"time_column": '"createdAt'}, "Checking the options: time_column: '\"createdAt' is not an identifier"),
    ({"window": "soon"}, "Checking the options: invalid duration 'soon'"),
    ({"window": "0"}, "window must be longer than 0"),
    ({"limit": 0}, "limit must be at least 1"),
    ({"mode": "requeue"}, "save_dir"),
])
def test_bad_input_is_one_clear_message(pg_cluster, db, events, extra, message):
    res = run_module("pg_failed_jobs", args(pg_cluster, db, **extra))
    no_traceback(res)
    assert res["rc"] != 0 and res["failed"] is True and message in res["msg"], res.get("msg", res["raw"])
    assert statuses(pg_cluster, db)["4"] == "failed"


def test_wrong_password_is_a_clear_message_without_the_password(pg_cluster, db, events, tmp_path):
    wrong = "not-the-password-77x"
    diagnose = run_module("pg_failed_jobs", args(pg_cluster, db, login_password=wrong))
    no_traceback(diagnose)
    assert diagnose["rc"] == 0 and diagnose["status"] == "unreachable" and diagnose["error_category"] == "auth", diagnose
    assert "password authentication failed" in diagnose["error"]
    assert diagnose["findings"][0]["code"] == "unreachable"
    requeue = run_module("pg_failed_jobs", args(pg_cluster, db, login_password=wrong, mode="requeue",
                                                save_dir=str(tmp_path)))
    no_traceback(requeue)
    assert requeue["rc"] != 0 and requeue["msg"].startswith("Connecting to PostgreSQL:"), requeue
    assert "password authentication failed" in requeue["msg"]
    for result in (diagnose, requeue):
        assert wrong not in result["raw"] and pg_cluster.password not in result["raw"]
    assert statuses(pg_cluster, db)["4"] == "failed"


# ---------------------------------------------------------------------------------------------- playbooks

def playbook(pg_cluster, db, name, tmp_path, check=False, **extra):
    evars = {"sre_db_host": pg_cluster.host, "sre_db_port": pg_cluster.port, "sre_db_user": "postgres",
             "sre_db_password": pg_cluster.password, "sre_db_name": db, "failed_jobs_window": "1h",
             "failed_jobs_save_dir": str(tmp_path / "saved")}
    evars.update(extra)
    return run_playbook(pg_cluster, name, tmp_path, evars, check)


def test_diagnose_playbook_check_mode_changes_nothing(pg_cluster, db, events, tmp_path):
    before = statuses(pg_cluster, db)
    rc, changed, failed, out = playbook(pg_cluster, db, "failed_jobs_diagnose.yml", tmp_path, check=True)
    flat = " ".join(out.split())
    assert rc == 0 and changed == 0 and failed == 0, out
    assert "by status: failed 5, processed 2, pending 1" in flat, out
    assert "Failed in the window: 5 (by type: invoice.paid 3" in flat, out
    assert "Findings: failed_jobs_over_threshold." in flat, out
    assert STRIPE_KEY not in out
    assert statuses(pg_cluster, db) == before
    records = sorted((tmp_path / "incidents").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert (record["runbook"], record["phase"]) == ("failed_jobs", "diagnose")
    assert [f["code"] for f in record["findings"]] == ["failed_jobs_over_threshold"], record["findings"]
    assert STRIPE_KEY not in records[0].read_text()


def test_remediate_playbook_plan_then_confirm_then_idempotent(pg_cluster, db, events, tmp_path):
    before = statuses(pg_cluster, db)
    save_dir = tmp_path / "saved"

    rc, changed, failed, out = playbook(pg_cluster, db, "failed_jobs_remediate.yml", tmp_path, sre_confirm="no")
    flat = " ".join(out.split())
    assert rc == 0 and changed == 0 and failed == 0, out
    assert "Plan (failed_jobs remediate):" in flat and "- save 5 failed rows of stripe_webhook_events newer than 1h" in flat
    assert "Not confirmed" in flat, out
    assert statuses(pg_cluster, db) == before and not save_dir.exists()

    rc, changed, failed, out = playbook(pg_cluster, db, "failed_jobs_remediate.yml", tmp_path, check=True,
                                        sre_confirm="yes")
    assert rc == 0 and failed == 0, out
    assert "Check mode: would save and requeue 5 failed rows" in " ".join(out.split()), out
    assert statuses(pg_cluster, db) == before and not save_dir.exists()

    rc, changed, failed, out = playbook(pg_cluster, db, "failed_jobs_remediate.yml", tmp_path, sre_confirm="yes")
    flat = " ".join(out.split())
    assert rc == 0 and failed == 0 and changed >= 1, out
    assert "Requeued 5 failed rows of stripe_webhook_events" in flat and "ids 6, 4, 5, 8, 7" in flat, out
    assert "0 still failed" in flat, out
    after = statuses(pg_cluster, db)
    assert {i for i in after if after[i] != before[i]} == {str(i) for i in IN_WINDOW_FAILED}
    assert len(list(save_dir.glob("*.json"))) == 1
    codes = [[f["code"] for f in json.loads(p.read_text())["findings"]] for p in (tmp_path / "incidents").glob("*.json")]
    assert sum("failed_jobs_requeued" in c for c in codes) == 1, codes  # the record of the confirmed run

    rc, changed, failed, out = playbook(pg_cluster, db, "failed_jobs_remediate.yml", tmp_path, sre_confirm="yes")
    assert rc == 0 and changed == 0 and failed == 0, out
    assert "nothing to requeue" in out and len(list(save_dir.glob("*.json"))) == 1
    assert statuses(pg_cluster, db) == after


def test_remediate_playbook_bad_column_is_one_message(pg_cluster, db, events, tmp_path):
    rc, changed, failed, out = playbook(pg_cluster, db, "failed_jobs_remediate.yml", tmp_path, sre_confirm="yes",
                                        failed_jobs_time_column="createdAt;")
    assert rc != 0 and changed == 0 and failed == 1, out
    assert "failed_jobs_time_column" in out and "is not an identifier" in out and "Traceback" not in out


def test_playbooks_with_a_wrong_password_say_so_without_it(pg_cluster, db, events, tmp_path):
    wrong = "not-the-password-88y"
    result = run_playbook(pg_cluster, "failed_jobs_diagnose.yml", tmp_path, {
        "sre_db_host": pg_cluster.host, "sre_db_port": pg_cluster.port, "sre_db_user": "postgres",
        "sre_db_password": wrong, "sre_db_name": db}, True)
    rc, changed, failed, out = result
    assert rc == 0 and changed == 0 and failed == 0 and wrong not in out, out
    assert "did not answer (auth)" in " ".join(out.split()) and "Findings: unreachable." in out, out
    rc, changed, failed, out = playbook(pg_cluster, db, "failed_jobs_remediate.yml", tmp_path, sre_confirm="yes",
                                        sre_db_password=wrong)
    assert rc != 0 and failed == 1 and changed == 0 and wrong not in out, out
    assert "nothing was changed" in out and "Traceback" not in out
    assert statuses(pg_cluster, db)["4"] == "failed"
