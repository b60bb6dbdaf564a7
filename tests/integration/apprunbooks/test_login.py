# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/login_*.yml on localhost against a throwaway database with the lab app's schema."""

from __future__ import annotations

import bcrypt
import pytest

EMAIL = "demo@demo.com"
OLD_HASH = bcrypt.hashpw(b"old-password", bcrypt.gensalt(4)).decode()
NEW_HASH = bcrypt.hashpw(b"Demo12345!", bcrypt.gensalt(4)).decode()


@pytest.fixture
def login_db(pg_cluster, app_db, tmp_path):
    """Two users; demo has 2 expired and 1 live session, the other 1 expired and 1 live; an auth log."""
    pg_cluster.psql(
        "INSERT INTO users (email, password_hash) VALUES ('Demo@Demo.com', '%s'), ('other@demo.com', '%s');"
        "INSERT INTO sessions (user_id, token_hash, created_at, expires_at) VALUES"
        " (1, 't1', now() - interval '3 days', now() - interval '2 days'),"
        " (1, 't2', now() - interval '2 days', now() - interval '1 day'),"
        " (1, 't3', now() - interval '1 hour', now() + interval '1 day'),"
        " (2, 't4', now() - interval '5 days', now() - interval '4 days'),"
        " (2, 't5', now() - interval '1 hour', now() + interval '6 hours');" % (OLD_HASH, OLD_HASH),
        dbname=app_db)
    log = tmp_path / "app.log"
    log.write_text("GET /health 200\nPOST /login 401 invalid credentials for demo@demo.com\nGET / 200\n")
    return {"sre_db_name": app_db, "login_email": EMAIL, "login_log_files": [str(log)]}


def count(pg_cluster, db, sql):
    return int(pg_cluster.psql(sql, dbname=db).strip())


def test_diagnose_finds_user_sessions_and_auth_errors(playbook, login_db):
    rc, changed, out = playbook("login_diagnose", login_db, check=True)
    assert rc == 0 and changed == 0, out
    assert "found, id 1" in out and "1 active / 2 expired sessions" in out, out
    assert "Sessions: 5 in total, 3 expired." in out, out
    assert "Auth errors in the logs: 1." in out and "expired_sessions, auth_errors" in out, out


def test_diagnose_reports_a_missing_user(playbook, login_db):
    rc, changed, out = playbook("login_diagnose", dict(login_db, login_email="nobody@demo.com"))
    assert rc == 0 and changed == 0, out
    assert "user_missing" in out and "not found" in out, out


def test_remediate_deletes_expired_sessions_exactly(playbook, login_db, pg_cluster):
    db = login_db["sre_db_name"]
    expired = "SELECT count(*) FROM sessions WHERE expires_at <= now()"
    assert count(pg_cluster, db, expired) == 3 and count(pg_cluster, db, "SELECT count(*) FROM sessions") == 5

    rc, changed, out = playbook("login_remediate", dict(login_db, sre_confirm="yes"), check=True)
    assert rc == 0 and changed == 0 and "Check mode: would delete 3 expired sessions" in out, out
    rc, changed, out = playbook("login_remediate", login_db)  # not confirmed
    assert rc == 0 and changed == 0 and "Not confirmed: would delete 3" in out, out
    assert count(pg_cluster, db, "SELECT count(*) FROM sessions") == 5

    rc, changed, out = playbook("login_remediate", dict(login_db, sre_confirm="yes"))
    assert rc == 0 and changed == 1 and "Deleted 3 expired sessions" in out, out
    assert count(pg_cluster, db, expired) == 0
    assert pg_cluster.psql("SELECT string_agg(token_hash, ',' ORDER BY id) FROM sessions", dbname=db).strip() == "t3,t5"

    rc, changed, out = playbook("login_remediate", dict(login_db, sre_confirm="yes"))
    assert rc == 0 and changed == 0 and "No expired sessions to delete" in out, out


def test_password_reset_sets_the_vaulted_hash_and_never_prints_it(playbook, login_db, pg_cluster, incident_text):
    db = login_db["sre_db_name"]
    stored = "SELECT password_hash FROM users WHERE id = %d"
    variables = dict(login_db, login_new_password_hash=NEW_HASH, login_delete_expired_sessions=False)
    outputs = []

    rc, changed, out = playbook("login_remediate", dict(variables, sre_confirm="yes"), check=True, diff=True, verbosity=3)
    outputs.append(out)
    assert rc == 0 and changed == 0 and "Check mode: would reset the password" in out, out
    assert pg_cluster.psql(stored % 1, dbname=db).strip() == OLD_HASH

    rc, changed, out = playbook("login_remediate", dict(variables, sre_confirm="yes"), diff=True, verbosity=3)
    outputs.append(out)
    assert rc == 0 and changed == 1 and "Reset the password of demo@demo.com" in out, out
    assert pg_cluster.psql(stored % 1, dbname=db).strip() == NEW_HASH
    assert pg_cluster.psql(stored % 2, dbname=db).strip() == OLD_HASH  # only that user
    assert bcrypt.checkpw(b"Demo12345!", pg_cluster.psql(stored % 1, dbname=db).strip().encode())

    rc, changed, out = playbook("login_remediate", dict(variables, sre_confirm="yes"), verbosity=3)
    outputs.append(out)
    assert rc == 0 and changed == 0 and "already has the vaulted hash" in out, out

    for text in outputs + [incident_text()]:
        assert NEW_HASH not in text and NEW_HASH[7:29] not in text


@pytest.mark.parametrize("bad", [
    "not-a-hash",
    "$2b$10$" + "A" * 52,                                               # one character short
    "$2x$10$" + "A" * 53,                                               # unknown variant
])
def test_password_reset_refuses_a_hash_that_is_not_bcrypt(playbook, login_db, pg_cluster, bad):
    rc, _, out = playbook("login_remediate", dict(login_db, login_new_password_hash=bad, sre_confirm="yes"), verbosity=3)
    assert rc != 0 and "is not a bcrypt hash" in out, out
    assert bad not in out
    assert pg_cluster.psql("SELECT password_hash FROM users WHERE id = 1", dbname=login_db["sre_db_name"]).strip() == OLD_HASH


def test_bad_identifier_is_refused_before_any_sql(playbook, login_db):
    rc, _, out = playbook("login_diagnose", dict(login_db, login_users_table='users"; DROP TABLE users; --'))
    assert rc != 0 and "must be a plain identifier" in out, out


def test_unknown_column_is_reported(playbook, login_db):
    rc, _, out = playbook("login_diagnose", dict(login_db, login_hash_column="passwordHash"))
    assert rc != 0 and "lacks passwordHash" in out, out
