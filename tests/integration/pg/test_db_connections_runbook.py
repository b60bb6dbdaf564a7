# SPDX-License-Identifier: GPL-3.0-or-later
"""db_connections runbook (role + playbooks) with ansible-playbook against localhost and the throwaway cluster."""

from __future__ import annotations

import time
import uuid

import psycopg2
import pytest

from conftest import ensure_collection_link
from pg_sessions import run_playbook

ROLE = "dbconn_app"
ROLE_PASSWORD = "dbconn-pw-5e1a"


@pytest.fixture(scope="module")
def app_role(pg_cluster):
    pg_cluster.psql("DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                    "CREATE ROLE %s LOGIN PASSWORD '%s'; END IF; END$$" % (ROLE, ROLE, ROLE_PASSWORD))
    return ROLE


def playbook(cluster, name, tmp_path, app, check=False, **extra):
    ensure_collection_link()
    evars = {
        "sre_db_host": cluster.host, "sre_db_port": cluster.port, "sre_db_user": "postgres",
        "sre_db_password": cluster.password, "sre_db_name": "postgres",
        "sre_db_unix_socket": str(cluster.sockdir), "sre_db_admin_user": "postgres",
        "db_connections_admin_become": False,
        "db_connections_idle_after": 1, "db_connections_idle_in_transaction_after": 1,
        "db_connections_long_query_after": 1,
        "db_connections_applications": [app],
    }
    evars.update(extra)
    return run_playbook(cluster, name, tmp_path, evars, check)


def alive(cluster, pids):
    out = cluster.psql("SELECT pid FROM pg_stat_activity WHERE pid IN (%s)" % ",".join(str(p) for p in pids))
    return sorted(int(x) for x in out.split())


@pytest.fixture
def idle_sessions(pg_cluster, app_role):
    app = "dbconn-test-%s" % uuid.uuid4().hex[:8]
    conns = []
    for dummy in range(4):
        conn = psycopg2.connect(pg_cluster.dsn(user=ROLE, password=ROLE_PASSWORD, application_name=app))
        conn.autocommit = True
        conns.append(conn)
    su = pg_cluster.connect(application_name=app)  # a superuser's session: never ended
    conns.append(su)
    time.sleep(1.5)
    yield app, [c.get_backend_pid() for c in conns[:4]], su.get_backend_pid()
    for conn in conns:
        try:
            conn.close()
        except psycopg2.Error:
            pass


def test_diagnose_check_mode_changes_nothing(pg_cluster, idle_sessions, tmp_path):
    app, pids, su_pid = idle_sessions
    rc, changed, failed, out = playbook(pg_cluster, "db_connections_diagnose.yml", tmp_path, app, check=True)
    assert rc == 0 and changed == 0 and failed == 0, out
    assert "Diagnosis: status" in out and "idle over 1:" in out
    assert alive(pg_cluster, pids + [su_pid]) == sorted(pids + [su_pid])


def test_remediate_plan_then_confirm_then_idempotent(pg_cluster, idle_sessions, tmp_path):
    app, pids, su_pid = idle_sessions

    rc, changed, failed, out = playbook(pg_cluster, "db_connections_remediate.yml", tmp_path, app, sre_confirm=False)
    assert rc == 0 and changed == 0 and failed == 0, out
    assert "Plan (db_connections remediate):" in out and "- end 4 sessions" in out and "Not confirmed" in out
    assert alive(pg_cluster, pids + [su_pid]) == sorted(pids + [su_pid])

    rc, changed, failed, out = playbook(pg_cluster, "db_connections_remediate.yml", tmp_path, app, sre_confirm=True)
    assert rc == 0 and failed == 0 and changed >= 1, out
    assert "terminated 4 sessions" in out, out
    assert alive(pg_cluster, pids + [su_pid]) == [su_pid]
    assert "Saturation now" in out

    rc, changed, failed, out = playbook(pg_cluster, "db_connections_remediate.yml", tmp_path, app, sre_confirm=True)
    assert rc == 0 and changed == 0 and failed == 0, out
    assert "- end 0 sessions" in out


def test_remediate_check_mode_confirmed_touches_nothing(pg_cluster, idle_sessions, tmp_path):
    app, pids, su_pid = idle_sessions
    rc, changed, failed, out = playbook(pg_cluster, "db_connections_remediate.yml", tmp_path, app, check=True,
                                        sre_confirm=True)
    assert rc == 0 and failed == 0, out
    assert alive(pg_cluster, pids + [su_pid]) == sorted(pids + [su_pid])
