# SPDX-License-Identifier: GPL-3.0-or-later
"""pg_slow_queries and the slow_queries runbook against the real throwaway cluster.

Module: pg_stat_statements present vs absent database, a real pg_sleep found by pid, lock waits, sequential scan
hints (heavy table hinted, indexed one not), cancel exactly the runaway query (superusers, short queries and its
own session spared), a query deaf to cancel (it catches query_canceled) terminated only when asked,
log_min_duration_statement idempotent, unreachable servers. Playbooks: ansible-playbook against localhost.
Sessions use their own application_name, so other tests' sessions are never touched.
"""

from __future__ import annotations

import time
import uuid

import psycopg2
import pytest

from conftest import ensure_collection_link, run_module
from pg_probes import state_of, wait_for
from pg_sessions import run_in_background, run_playbook

ROLE = "slowq_app"
ROLE_PASSWORD = "slowq-pw-83d1"
DB_WITH = "slowq_stats"
DB_WITHOUT = "slowq_plain"

RESULT_KEYS = {"status", "findings", "server_version", "pg_stat_statements", "statements", "active",
               "seq_scan_tables", "settings", "would_cancel", "cancelled", "terminated", "settings_changed",
               "queries", "error_category", "error"}


@pytest.fixture(scope="module")
def slowq_db(pg_cluster):
    pg_cluster.psql("DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                    "CREATE ROLE %s LOGIN PASSWORD '%s'; END IF; END$$" % (ROLE, ROLE, ROLE_PASSWORD))
    existing = pg_cluster.psql("SELECT datname FROM pg_database").split()
    for name in (DB_WITH, DB_WITHOUT):
        if name not in existing:
            pg_cluster.psql("CREATE DATABASE %s" % name)
    pg_cluster.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", dbname=DB_WITH)
    pg_cluster.psql("DROP TABLE IF EXISTS heavy, indexed, locked; "
                    "CREATE TABLE heavy AS SELECT g AS id, g %% 97 AS v FROM generate_series(1, 20000) g; "
                    "CREATE TABLE indexed (id int PRIMARY KEY, v int); "
                    "INSERT INTO indexed SELECT g, g %% 97 FROM generate_series(1, 20000) g; "
                    "CREATE TABLE locked (id int PRIMARY KEY, v int); INSERT INTO locked VALUES (1, 0); "
                    "GRANT ALL ON heavy, indexed, locked TO %s" % ROLE, dbname=DB_WITH)
    yield DB_WITH
    reset_log_setting(pg_cluster)


class Sessions:
    """Sessions with one application_name, closed (cancelled first) at the end."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.app = "slowq-test-%s" % uuid.uuid4().hex[:8]
        self.conns = []
        self.threads = []

    def open(self, superuser=False, autocommit=True, dbname=DB_WITH):
        extra = {} if superuser else {"user": ROLE, "password": ROLE_PASSWORD}
        conn = self.cluster.connect(dbname=dbname, application_name=self.app, **extra)
        conn.autocommit = autocommit
        self.conns.append(conn)
        return conn

    def background(self, conn, sql):
        run_in_background(conn, sql, self.threads)

    def deaf(self):
        """A session whose query swallows cancels (plpgsql catching query_canceled, a real-world pattern); a
        terminate still ends it. Returns its pid."""
        conn = self.open()
        self.background(conn, "DO $$BEGIN LOOP BEGIN PERFORM pg_sleep(1); "
                              "EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END$$")
        return conn.get_backend_pid()

    def close(self):
        self.cluster.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '%s'"
                          % self.app)
        for conn in self.conns:
            try:
                conn.close()
            except psycopg2.Error:
                pass
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def sessions(pg_cluster, slowq_db):
    s = Sessions(pg_cluster)
    yield s
    s.close()


def scan(cluster, check_mode=False, diff=False, dbname=DB_WITH, **args):
    base = dict(cluster.login_args(dbname), long_query_after=1)
    base.update(args)
    res = run_module("pg_slow_queries", base, check_mode=check_mode, diff=diff)
    assert res["rc"] in (0, 1), res["raw"]
    assert "Traceback" not in res["raw"]
    assert cluster.password not in res["raw"]
    return res


def reset_log_setting(cluster):
    cluster.psql("ALTER SYSTEM RESET log_min_duration_statement")  # not in a transaction: one psql call each
    cluster.psql("SELECT pg_reload_conf()")
    assert wait_for(lambda: cluster.psql("SHOW log_min_duration_statement").strip() == "-1", timeout=5)


# --------------------------------------------------------------------------------------------------- module


def test_statements_with_and_without_pg_stat_statements(pg_cluster, slowq_db):
    marker = "slowq_marker_%s" % uuid.uuid4().hex[:6]
    conn = pg_cluster.connect(dbname=DB_WITH)
    conn.autocommit = True
    with conn.cursor() as cur:
        for value in range(5):
            cur.execute("SELECT count(*) AS %s FROM heavy WHERE v = %d" % (marker, value))
        cur.execute("ALTER ROLE %s PASSWORD '%s'" % (ROLE, ROLE_PASSWORD))  # utility statements keep literals
    conn.close()

    res = scan(pg_cluster, top=1000)
    assert RESULT_KEYS <= set(res) and res["rc"] == 0 and res["changed"] is False
    assert res["pg_stat_statements"]["loaded"] is True and res["pg_stat_statements"]["installed"] is True
    mine = [s for s in res["statements"] if marker in (s["query"] or "")]
    assert len(mine) == 1, res["statements"]
    stmt = mine[0]
    assert stmt["calls"] == 5 and stmt["rows"] == 5 and stmt["database"] == DB_WITH and stmt["user"] == "postgres"
    assert stmt["total_ms"] > 0 and stmt["mean_ms"] == pytest.approx(stmt["total_ms"] / 5, rel=0.01)
    assert stmt["query"] == "SELECT count(*) AS %s FROM heavy WHERE v = $1" % marker
    assert ROLE_PASSWORD not in res["raw"], "the literal of ALTER ROLE ... PASSWORD is redacted"
    assert any(s["query"] == "ALTER ROLE %s PASSWORD ?" % ROLE for s in res["statements"])
    assert not any("sre_runbooks_pg_slow_queries" in (s["query"] or "") for s in res["statements"])
    assert "top_statement" in {f["code"] for f in res["findings"]}
    assert res["settings"]["shared_preload_libraries"] == "pg_stat_statements"
    by_calls = scan(pg_cluster, top=3, order_by="calls", query_length=30)
    calls = [s["calls"] for s in by_calls["statements"]]
    assert len(calls) == 3 and calls == sorted(calls, reverse=True)
    assert all(len(s["query"]) <= 30 for s in by_calls["statements"])

    without = scan(pg_cluster, dbname=DB_WITHOUT)
    assert without["rc"] == 0 and without["statements"] == []
    assert without["pg_stat_statements"] == {"loaded": True, "installed": False, "version": None, "schema": None}
    missing = [f for f in without["findings"] if f["code"] == "pg_stat_statements_missing"]
    assert missing and "CREATE EXTENSION pg_stat_statements" in missing[0]["message"]


def test_active_queries_and_lock_waits(pg_cluster, sessions):
    sleeper = sessions.open()
    sessions.background(sleeper, "SELECT pg_sleep(30) /* slowq */")
    holder = sessions.open(autocommit=False)
    with holder.cursor() as cur:
        cur.execute("UPDATE locked SET v = v + 1 WHERE id = 1")
    waiter = sessions.open()
    sessions.background(waiter, "UPDATE locked SET v = v + 1 WHERE id = 1")
    time.sleep(1.5)
    res = scan(pg_cluster)
    active = {a["pid"]: a for a in res["active"] if a["application"] == sessions.app}
    assert set(active) == {sleeper.get_backend_pid(), waiter.get_backend_pid()}, res["active"]
    sleep = active[sleeper.get_backend_pid()]
    assert sleep["duration_s"] >= 1 and sleep["wait_event"] == "Timeout:PgSleep" and sleep["user"] == ROLE
    assert sleep["query"] == "SELECT pg_sleep(?) /* slowq */" and sleep["superuser"] is False
    blocked = active[waiter.get_backend_pid()]
    assert blocked["blocked_by"] == [holder.get_backend_pid()] and blocked["wait_event"].startswith("Lock:")
    durations = [a["duration_s"] for a in res["active"]]
    assert durations == sorted(durations, reverse=True)
    assert not [a for a in res["active"] if a["application"] == "sre.runbooks pg_slow_queries"]
    codes = {f["code"]: f["message"] for f in res["findings"]}
    assert str(sleeper.get_backend_pid()) in codes["long_running"]
    assert str(holder.get_backend_pid()) in codes["lock_waits"]
    assert res["status"] == "warning" and res["would_cancel"] == []


def test_memory_heavy_queries(pg_cluster, sessions):
    """The backend of a query that holds 300 MB (a repeat() result alive while pg_sleep runs) is the heaviest, by its
    private memory read from /proc (the throwaway cluster runs on this host); a plain pg_sleep is light."""
    heavy = sessions.open()
    sessions.background(heavy, "SELECT length(x), pg_sleep(30) /* slowq heavy */ FROM "
                               "(SELECT repeat('x', g) AS x FROM generate_series(300000000, 300000000) g) s")
    light = sessions.open()
    sessions.background(light, "SELECT pg_sleep(30) /* slowq light */")
    heavy_pid, light_pid = heavy.get_backend_pid(), light.get_backend_pid()
    asleep = "SELECT wait_event FROM pg_stat_activity WHERE pid = %d" % heavy_pid
    assert wait_for(lambda: pg_cluster.psql(asleep).strip() == "PgSleep", timeout=20)
    res = scan(pg_cluster, memory_heavy_mb=200, memory_heavy_top=2)
    assert res["query_memory"]["measured"] is True and res["query_memory"]["reason"] is None, res["query_memory"]
    active = {a["pid"]: a for a in res["active"]}
    assert active[heavy_pid]["memory_bytes"] >= 300 * 10 ** 6, active[heavy_pid]  # the 300 MB string
    assert active[light_pid]["memory_bytes"] < 100 * 1048576, active[light_pid]
    assert res["query_memory"]["total_bytes"] >= active[heavy_pid]["memory_bytes"] + active[light_pid]["memory_bytes"]
    assert [q["pid"] for q in res["memory_heavy"]][0] == heavy_pid and len(res["memory_heavy"]) == 2
    assert res["memory_heavy"][0]["query"].startswith("SELECT length(x), pg_sleep(?) /* slowq heavy */")
    found = [f for f in res["findings"] if f["code"] == "memory_heavy_query"]
    assert len(found) == 1 and found[0]["pids"] == [heavy_pid] and "heaviest pid %d" % heavy_pid in found[0]["message"]
    assert res["status"] == "warning"
    # not read when not asked: nothing measured, no finding
    off = scan(pg_cluster, query_memory=False, memory_heavy_mb=200)
    assert off["query_memory"] == {"measured": False, "reason": "query_memory is false", "total_bytes": None}
    assert all(a["memory_bytes"] is None for a in off["active"]) and off["memory_heavy"] == []
    assert "memory_heavy_query" not in {f["code"] for f in off["findings"]}


def test_seq_scan_hints(pg_cluster, slowq_db):
    conn = pg_cluster.connect(dbname=DB_WITH)
    conn.autocommit = True
    with conn.cursor() as cur:
        for value in range(12):
            cur.execute("SELECT count(*) FROM heavy WHERE v = %s", (value,))
            cur.execute("SELECT v FROM indexed WHERE id = %s", (value * 100 + 1,))
    conn.close()  # a backend flushes its table statistics when it exits

    def hinted():
        return [t for t in scan(pg_cluster, top=50)["seq_scan_tables"] if t["table"] in ("heavy", "indexed")]
    assert wait_for(lambda: [t["table"] for t in hinted()] == ["heavy"], timeout=5), hinted()
    res = scan(pg_cluster, top=50)
    heavy = [t for t in res["seq_scan_tables"] if t["table"] == "heavy"][0]
    assert heavy["schema"] == "public" and heavy["seq_scan"] >= 12 and heavy["n_live_tup"] == 20000
    assert heavy["seq_tup_read"] >= 12 * 20000 and not heavy["idx_scan"]
    assert heavy["hint"].startswith("public.heavy: ") and "index" in heavy["hint"]
    assert "seq_scans" in {f["code"] for f in res["findings"]}
    fewer = scan(pg_cluster, top=50, seq_scan_min_rows=50000)
    assert not [t for t in fewer["seq_scan_tables"] if t["table"] == "heavy"]


def test_cancel_exactly_the_runaway_query(pg_cluster, sessions):
    runaway = sessions.open()
    sessions.background(runaway, "SELECT pg_sleep(60)")
    su = sessions.open(superuser=True)
    sessions.background(su, "SELECT pg_sleep(60)")
    time.sleep(3.3)
    recent = sessions.open()
    sessions.background(recent, "SELECT pg_sleep(60)")
    time.sleep(0.2)
    pids = [c.get_backend_pid() for c in (runaway, su, recent)]
    args = dict(cancel_after="3s", applications=[sessions.app])

    chk = scan(pg_cluster, check_mode=True, **args)
    assert chk["would_cancel"] == [runaway.get_backend_pid()]
    assert chk["cancelled"] == [] and chk["terminated"] == [] and chk["changed"] is True
    assert [state_of(pg_cluster, p) for p in pids] == ["active"] * 3

    res = scan(pg_cluster, **args)
    assert res["changed"] is True and res["cancelled"] == [runaway.get_backend_pid()] and res["terminated"] == []
    assert "cancelled" in {f["code"] for f in res["findings"]}
    assert [state_of(pg_cluster, p) for p in pids] == ["idle", "active", "active"]

    recent.cancel()  # before it runs for 3 s too
    assert wait_for(lambda: state_of(pg_cluster, recent.get_backend_pid()) == "idle")
    again = scan(pg_cluster, **args)
    assert again["changed"] is False and again["would_cancel"] == [] and again["cancelled"] == []

    # superusers only when asked; the module's own session never
    su_too = scan(pg_cluster, check_mode=True, cancel_after=0, include_superusers=True, applications=[])
    assert su.get_backend_pid() in su_too["would_cancel"]
    workers = pg_cluster.psql("SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'").split()
    assert workers and not set(int(p) for p in workers) & set(su_too["would_cancel"])


def test_protected_by_a_pattern_that_only_the_raw_query_matches(pg_cluster, sessions):
    """Patterns match the query as the server has it, literals included: a Prisma-style migration (advisory lock
    72707369, the default pattern) and a backup marked by a string (a pattern of the caller's) are spared, although
    the returned texts, redacted, show neither the lock key nor the marker. Without the patterns both are
    cancelled, with the web query."""
    web = sessions.open()
    sessions.background(web, "SELECT pg_sleep(30)")
    migration = sessions.open()
    sessions.background(migration, "SELECT pg_advisory_lock(72707369), pg_sleep(30)")
    backup = sessions.open()
    sessions.background(backup, "SELECT 'nightly-export-7c1d' AS job, count(*), pg_sleep(30) FROM heavy")
    time.sleep(1.5)
    pids = dict((name, c.get_backend_pid()) for name, c in (("web", web), ("migration", migration), ("backup", backup)))
    patterns = ["*pg_advisory_lock(72707369)*", "*'nightly-export-*"]
    args = dict(cancel_after=1, applications=[sessions.app], protected_queries=patterns)

    chk = scan(pg_cluster, check_mode=True, **args)
    shown = dict((a["pid"], a["query"]) for a in chk["active"])
    assert shown[pids["migration"]] == "SELECT pg_advisory_lock(?), pg_sleep(?)"
    assert shown[pids["backup"]] == "SELECT ? AS job, count(*), pg_sleep(?) FROM heavy"
    assert "nightly-export-7c1d" not in chk["raw"]
    bare = scan(pg_cluster, check_mode=True, cancel_after=1, applications=[sessions.app], protected_queries=[])
    assert bare["would_cancel"] == sorted(pids.values()), bare

    res = scan(pg_cluster, **args)
    assert res["would_cancel"] == [pids["web"]] and res["cancelled"] == [pids["web"]], res
    spared = [f for f in res["findings"] if f["code"] == "protected"][0]
    reasons = dict((s["pid"], s["reason"]) for s in spared["sessions"])
    assert reasons == {pids["migration"]: "query matches '*pg_advisory_lock(72707369)*'",
                       pids["backup"]: "query matches \"*'nightly-export-*\""}, reasons
    assert wait_for(lambda: state_of(pg_cluster, pids["web"]) == "idle")
    assert [state_of(pg_cluster, pids[n]) for n in ("migration", "backup")] == ["active", "active"]


def test_cancel_ignored_then_terminate(pg_cluster, sessions):
    pid = sessions.deaf()
    time.sleep(1.5)
    args = dict(cancel_after=1, applications=[sessions.app])
    res = scan(pg_cluster, **args)
    assert res["cancelled"] == [pid] and res["terminated"] == []
    failed = [f for f in res["findings"] if f["code"] == "cancel_failed"]
    assert failed and str(pid) in failed[0]["message"] and res["status"] == "warning"
    assert state_of(pg_cluster, pid) == "active"

    res = scan(pg_cluster, terminate_if_cancel_fails=True, **args)
    assert res["terminated"] == [pid] and res["changed"] is True
    assert state_of(pg_cluster, pid) == "gone"
    assert "cancel_failed" not in {f["code"] for f in res["findings"]}


def test_log_min_duration_statement(pg_cluster, slowq_db):
    reset_log_setting(pg_cluster)
    time.sleep(0.3)
    chk = scan(pg_cluster, check_mode=True, diff=True, log_min_duration_statement=250)
    assert chk["changed"] is True
    assert chk["settings_changed"] == [{"name": "log_min_duration_statement", "before": -1, "after": 250}]
    assert chk["diff"] == {"before": "log_min_duration_statement = -1\n", "after": "log_min_duration_statement = 250\n"}
    assert pg_cluster.psql("SHOW log_min_duration_statement").strip() == "-1"

    res = scan(pg_cluster, log_min_duration_statement=250)
    assert res["changed"] is True and res["settings"]["log_min_duration_statement"] == "250ms"
    assert "setting_changed" in {f["code"] for f in res["findings"]}
    assert any(q.startswith("ALTER SYSTEM SET log_min_duration_statement = 250") for q in res["queries"])
    assert pg_cluster.psql("SHOW log_min_duration_statement").strip() == "250ms"

    again = scan(pg_cluster, log_min_duration_statement=250)
    assert again["changed"] is False and again["settings_changed"] == []
    assert "slow_query_log_off" not in {f["code"] for f in again["findings"]}

    denied = run_module("pg_slow_queries", dict(pg_cluster.login_args(DB_WITH), login_user=ROLE,
                                                login_password=ROLE_PASSWORD, log_min_duration_statement=100))
    assert denied["rc"] == 1 and denied["failed"] is True and "Traceback" not in denied["raw"]
    assert denied["msg"].startswith("Looking for slow queries: ") and "permission denied" in denied["msg"]
    assert ROLE_PASSWORD not in denied["raw"]


def test_app_login_sees_what_it_may(pg_cluster, sessions):
    other = sessions.open(superuser=True)
    sessions.background(other, "SELECT pg_sleep(30)")
    time.sleep(0.3)
    res = scan(pg_cluster, login_user=ROLE, login_password=ROLE_PASSWORD, cancel_after=0)
    assert res["rc"] == 0 and res["status"] != "unreachable", res
    assert res["pg_stat_statements"]["loaded"] is True and res["pg_stat_statements"]["installed"] is True
    assert "shared_preload_libraries" not in res["settings"] and "log_min_duration_statement" in res["settings"]
    assert "limited_visibility" in {f["code"] for f in res["findings"]}
    assert other.get_backend_pid() not in [a["pid"] for a in res["active"]]
    assert res["cancelled"] == [] and state_of(pg_cluster, other.get_backend_pid()) == "active"


@pytest.mark.parametrize("case, categories", [
    ("wrong_password", {"auth"}),
    ("wrong_port", {"refused"}),
    ("wrong_password_dsn", {"auth"}),
])
def test_unreachable(pg_cluster, case, categories):
    bad = "not-" + pg_cluster.password
    args = {
        "wrong_password": dict(pg_cluster.login_args(), login_password=bad),
        "wrong_port": dict(pg_cluster.login_args(), login_port=1),
        "wrong_password_dsn": {"dsn": "postgresql://postgres:%s@127.0.0.1:%d/postgres" % (bad, pg_cluster.port)},
    }[case]
    res = run_module("pg_slow_queries", dict(args, cancel_after="1s", log_min_duration_statement=100))
    assert res["rc"] == 0 and res["status"] == "unreachable" and res["changed"] is False, res["raw"]
    assert res["error_category"] in categories and RESULT_KEYS <= set(res)
    assert bad not in res["raw"] and pg_cluster.password not in res["raw"]
    failing = run_module("pg_slow_queries", dict(args, fail_on="critical"))
    assert failing["rc"] == 1 and failing["failed"] is True and "Traceback" not in failing["raw"]
    assert bad not in failing["raw"]


def test_bad_options(pg_cluster):
    res = run_module("pg_slow_queries", dict(pg_cluster.login_args(), cancel_after="soon"))
    assert res["rc"] == 1 and "cancel_after: invalid duration 'soon'" in res["msg"]
    res = run_module("pg_slow_queries", dict(pg_cluster.login_args(), log_min_duration_statement=-5))
    assert res["rc"] == 1 and "log_min_duration_statement" in res["msg"]
    assert "Traceback" not in res["raw"]


# --------------------------------------------------------------------------------------------------- playbooks


def playbook(cluster, name, tmp_path, app, check=False, **extra):
    ensure_collection_link()
    evars = {
        "sre_db_host": cluster.host, "sre_db_port": cluster.port, "sre_db_user": "postgres",
        "sre_db_password": cluster.password, "sre_db_name": DB_WITH,
        "sre_db_unix_socket": str(cluster.sockdir), "sre_db_admin_user": "postgres",
        "slow_queries_admin_become": False,
        "slow_queries_cancel_after_s": 1,
        "slow_queries_applications": [app],
    }
    evars.update(extra)
    return run_playbook(cluster, name, tmp_path, evars, check)


def test_playbooks_diagnose_plan_confirm_idempotent(pg_cluster, sessions, tmp_path):
    reset_log_setting(pg_cluster)
    runaway = sessions.open()
    sessions.background(runaway, "SELECT pg_sleep(120)")
    pid = runaway.get_backend_pid()
    time.sleep(1.5)

    rc, changed, failed, out = playbook(pg_cluster, "slow_queries_diagnose.yml", tmp_path, sessions.app, check=True)
    assert rc == 0 and changed == 0 and failed == 0, out
    assert "Diagnosis: status warning" in out and "pg_stat_statements: version" in out
    assert str(pid) in out and state_of(pg_cluster, pid) == "active"

    rc, changed, failed, out = playbook(pg_cluster, "slow_queries_remediate.yml", tmp_path, sessions.app,
                                        slow_queries_log_min_duration_ms=750)
    assert rc == 0 and changed == 0 and failed == 0, out
    assert "Plan (slow_queries remediate):" in out
    assert "cancel 1 queries running for more than 1s (pids %d)" % pid in out
    assert "set log_min_duration_statement from -1 to 750 ms" in out and "Not confirmed" in out
    assert state_of(pg_cluster, pid) == "active"
    assert pg_cluster.psql("SHOW log_min_duration_statement").strip() == "-1"

    rc, changed, failed, out = playbook(pg_cluster, "slow_queries_remediate.yml", tmp_path, sessions.app,
                                        sre_confirm=True, slow_queries_log_min_duration_ms=750)
    assert rc == 0 and failed == 0 and changed >= 1, out
    assert "Done: cancelled 1 queries (pids %d)" % pid in out
    assert "No query runs for more than 1s any more; log_min_duration_statement is 750ms" in out
    assert state_of(pg_cluster, pid) == "idle"
    assert pg_cluster.psql("SHOW log_min_duration_statement").strip() == "750ms"

    rc, changed, failed, out = playbook(pg_cluster, "slow_queries_remediate.yml", tmp_path, sessions.app,
                                        sre_confirm=True, slow_queries_log_min_duration_ms=750)
    assert rc == 0 and changed == 0 and failed == 0, out
    assert "- cancel 0 queries" in out and "leave log_min_duration_statement at 750ms" in out

    # the way back (issue 14): -1 as it is turns slow-query logging off again, and again changes nothing
    rc, changed, failed, out = playbook(pg_cluster, "slow_queries_remediate.yml", tmp_path, sessions.app,
                                        sre_confirm=True, slow_queries_log_min_duration_ms=-1,
                                        slow_queries_log_min_duration_exact=True)
    assert rc == 0 and failed == 0 and changed >= 1, out
    assert "set log_min_duration_statement from 750ms to -1 ms" in out or "from 750 to -1" in out, out
    assert pg_cluster.psql("SHOW log_min_duration_statement").strip() == "-1"
    rc, changed, failed, out = playbook(pg_cluster, "slow_queries_remediate.yml", tmp_path, sessions.app,
                                        sre_confirm=True, slow_queries_log_min_duration_ms=-1,
                                        slow_queries_log_min_duration_exact=True)
    assert rc == 0 and changed == 0 and failed == 0, out


def test_terminate_limit_caps_the_sessions_signalled(pg_cluster, sessions):
    """The same cap as pg_triage's terminate_limit: the longest running first, more is a warning (issue 11)."""
    runaways = []
    for dummy in range(3):
        conn = sessions.open()
        sessions.background(conn, "SELECT pg_sleep(60)")
        runaways.append(conn.get_backend_pid())
        time.sleep(0.3)
    time.sleep(1.2)
    args = dict(cancel_after=1, applications=[sessions.app], terminate_limit=2)

    chk = scan(pg_cluster, check_mode=True, **args)
    assert chk["would_cancel"] == sorted(runaways[:2]), chk  # the two that started first
    assert "terminate_limit" in {f["code"] for f in chk["findings"]} and chk["status"] == "warning"

    res = scan(pg_cluster, **args)
    assert res["cancelled"] == sorted(runaways[:2]) and res["terminated"] == []
    assert [state_of(pg_cluster, p) for p in runaways] == ["idle", "idle", "active"]

    none = scan(pg_cluster, check_mode=True, cancel_after=1, applications=[sessions.app], terminate_limit=0)
    assert none["would_cancel"] == [] and none["changed"] is False
    assert state_of(pg_cluster, runaways[2]) == "active"
    bad = run_module("pg_slow_queries", dict(pg_cluster.login_args(), terminate_limit=-1))
    assert bad["rc"] == 1 and "terminate_limit must be at least 0" in bad["msg"]
