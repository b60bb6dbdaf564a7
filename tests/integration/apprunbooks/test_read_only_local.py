# SPDX-License-Identifier: GPL-3.0-or-later
"""read_only (runbook 001 "Option D: read-only mode", 003 "stop all writes") on localhost against a throwaway
cluster: diagnose says whether new sessions are read-only; remediate makes them so (the value before in a record
on the host), reports the session opened before that still writes, and ends it when asked; rollback lets new
sessions write again and removes the record. Unconfirmed and --check change nothing; a second run changes nothing;
a wrong password is one clear message."""

from __future__ import annotations

import json

import psycopg2
import pytest

from app_support import app_db, playbook  # noqa: F401  pylint: disable=unused-import


def flat(text):
    return " ".join(text.split())


def new_session_read_only(pg_cluster, db):
    return pg_cluster.psql("SHOW default_transaction_read_only", dbname=db).strip()


def new_session_insert(pg_cluster, db, menu_id):
    conn = psycopg2.connect(host=pg_cluster.host, port=pg_cluster.port, user=pg_cluster.user,
                            password=pg_cluster.password, dbname=db, application_name="app-web")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO menus (id, name) VALUES (%s, 'dinner')", (menu_id,))
    finally:
        conn.close()


@pytest.fixture
def writer(pg_cluster, app_db):
    """A session of the app opened before the switch, in a transaction that has written (it holds an xid)."""
    conn = psycopg2.connect(host=pg_cluster.host, port=pg_cluster.port, user=pg_cluster.user,
                            password=pg_cluster.password, dbname=app_db, application_name="app-worker")
    cur = conn.cursor()
    cur.execute("INSERT INTO menus (id, name) VALUES (1, 'lunch')")
    yield conn
    conn.close()


def test_read_only_on_and_off(playbook, pg_cluster, app_db, writer, tmp_path):
    variables = {"sre_db_name": app_db}
    record = tmp_path / "state" / "read_only" / ("%s.json" % app_db)

    rc, changed, out = playbook("read_only_remediate", variables)
    assert rc == 0 and changed == 0 and "Not confirmed: nothing is changed." in flat(out), out[-3000:]
    assert "database %s: new sessions are read-write" % app_db in flat(out), out[-3000:]
    assert "make new sessions of database %s read-only" % app_db in flat(out), out[-3000:]
    rc, changed, out = playbook("read_only_remediate", dict(variables, sre_confirm="yes"), check=True)
    assert rc == 0 and changed == 0 and "Check mode: would make database %s read-only" % app_db in flat(out), out
    assert new_session_read_only(pg_cluster, app_db) == "off" and not record.exists()

    rc, changed, out = playbook("read_only_remediate", dict(variables, sre_confirm="yes"))
    text = flat(out)
    assert rc == 0 and changed >= 1, out[-3000:]
    assert new_session_read_only(pg_cluster, app_db) == "on"
    assert "new sessions are read-only" in text and "1 opened before may still write (%d)" % writer.get_backend_pid() in text, text
    doc = json.loads(record.read_text())
    assert doc["database"] == app_db and doc["before"] == "" and doc["switched_at"].endswith("Z"), doc
    # the session opened before still writes (that is what the report warns of); a new one cannot
    writer.commit()
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        new_session_insert(pg_cluster, app_db, 2)

    rc, changed, out = playbook("read_only_remediate", dict(variables, sre_confirm="yes"))
    assert rc == 0 and changed == 0, out[-3000:]  # a second run changes nothing
    rc, changed, out = playbook("read_only_diagnose", variables, check=True)
    text = flat(out)
    assert rc == 0 and changed == 0 and "database_read_only" in text and "sessions_may_write" in text, out[-3000:]
    assert "pid %d %s app-worker" % (writer.get_backend_pid(), pg_cluster.user) in text, text

    rc, changed, out = playbook("read_only_remediate", dict(variables, sre_confirm="yes",
                                                            read_only_terminate_writers=True))
    assert rc == 0 and changed >= 1, out[-3000:]
    assert "end 1 sessions opened before the switch (pids %d)" % writer.get_backend_pid() in flat(out), out[-3000:]
    with pytest.raises(psycopg2.Error):
        writer.cursor().execute("SELECT 1")

    rc, changed, out = playbook("read_only_rollback", variables)
    assert rc == 0 and changed == 0 and "Not confirmed: nothing is changed." in flat(out), out[-3000:]
    assert new_session_read_only(pg_cluster, app_db) == "on" and record.exists()
    rc, changed, out = playbook("read_only_rollback", dict(variables, sre_confirm="yes"))
    assert rc == 0 and changed >= 1 and "new sessions may write again" in flat(out), out[-3000:]
    assert new_session_read_only(pg_cluster, app_db) == "off" and not record.exists()
    new_session_insert(pg_cluster, app_db, 2)
    rc, changed, out = playbook("read_only_rollback", dict(variables, sre_confirm="yes"))
    assert rc == 0 and changed == 0, out[-3000:]


def test_wrong_password_is_one_clear_message(playbook, pg_cluster, app_db):
    rc, changed, out = playbook("read_only_remediate", {"sre_db_name": app_db, "sre_db_password": "not-the-password",
                                                        "sre_confirm": "yes"})
    text = flat(out)
    assert rc != 0 and changed == 0 and "Traceback" not in out, out[-3000:]
    assert "read_only: database %s did not answer" % app_db in text and "Nothing was changed." in text, text
    assert new_session_read_only(pg_cluster, app_db) == "off"
