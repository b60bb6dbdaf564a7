# SPDX-License-Identifier: GPL-3.0-or-later
"""pg_triage against the real throwaway cluster: every kind of session found by pid, termination exact.

Each test uses its own application_name so sessions of other tests never count; terminable sessions log in
as a non-superuser role. Small thresholds (1 s) and ~1.5 s sleeps keep it fast.
"""

from __future__ import annotations

import time
import uuid

import psycopg2
import pytest

from conftest import run_module
from pg_probes import alive, lock_waiters, wait_for
from pg_sessions import run_in_background

ROLE = "triage_app"
ROLE_PASSWORD = "app-pw-71c3"
VIEWER = "triage_viewer"  # an app's own login: no superuser, no pg_read_all_stats / pg_monitor
MONITOR = "triage_monitor"  # granted pg_monitor
OTHER_PASSWORD = "other-pw-5e0a"
HIDDEN_KEY = "unknown (insufficient privilege)"


@pytest.fixture(scope="module")
def app_role(pg_cluster):
    pg_cluster.psql("DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                    "CREATE ROLE %s LOGIN PASSWORD '%s'; END IF; END$$" % (ROLE, ROLE, ROLE_PASSWORD))
    pg_cluster.psql("CREATE TABLE IF NOT EXISTS triage_t (id int PRIMARY KEY, v int); "
                    "INSERT INTO triage_t VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING; "
                    "GRANT ALL ON triage_t TO %s" % ROLE)
    return ROLE


class Sessions:
    """Opens sessions with a distinct application_name and closes them all at the end."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.app = "triage-test-%s" % uuid.uuid4().hex[:8]
        self.conns = []
        self.pids = {}
        self.threads = []

    def open(self, superuser=False, autocommit=True, user=None):
        if superuser:
            conn = self.cluster.connect(application_name=self.app)
        elif user:
            conn = self.cluster.connect(user=user, password=OTHER_PASSWORD, application_name=self.app)
        else:
            conn = self.cluster.connect(user=ROLE, password=ROLE_PASSWORD, application_name=self.app)
        conn.autocommit = autocommit
        self.conns.append(conn)
        self.pids[id(conn)] = conn.get_backend_pid()
        return conn

    def pid(self, conn):
        return self.pids[id(conn)]

    def background(self, conn, sql):
        """Run sql in a thread (it blocks or sleeps); errors (terminated session) are expected."""
        return run_in_background(conn, sql, self.threads)

    def close(self):
        for conn in self.conns:
            try:
                conn.cancel()
                conn.close()
            except psycopg2.Error:
                pass
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def sessions(pg_cluster, app_role):
    s = Sessions(pg_cluster)
    yield s
    s.close()


def triage(cluster, check_mode=False, **args):
    base = dict(cluster.login_args(), idle_after=1, idle_in_transaction_after=1, long_query_after=1, blocked_after=1)
    base.update(args)
    res = run_module("pg_triage", base, check_mode=check_mode)
    assert res["rc"] in (0, 1), res["raw"]
    assert cluster.password not in res["raw"]
    return res


def pids_of(res, kind, app):
    return sorted(s["pid"] for s in res["sessions"][kind] if s["application"] == app)


RESULT_KEYS = {"status", "findings", "server_version", "max_connections", "reserved_connections", "saturation_pct",
               "connections", "sessions", "blocking", "prepared_transactions", "oldest_xact_s", "terminated",
               "cancelled", "would_terminate", "queries", "error_category", "error"}


def test_read_only_reports_everything(pg_cluster, sessions):
    idle = [sessions.open() for dummy in range(2)]
    iit = sessions.open(autocommit=False)
    with iit.cursor() as cur:
        cur.execute("SELECT 1")
    aborted = sessions.open(autocommit=False)
    with aborted.cursor() as cur:
        with pytest.raises(psycopg2.Error):
            cur.execute("SELECT 1/0")
    sleeper = sessions.open()
    sessions.background(sleeper, "SELECT pg_sleep(30)")
    time.sleep(1.5)
    res = triage(pg_cluster)
    assert RESULT_KEYS <= set(res), res
    assert res["changed"] is False
    assert res["rc"] == 0
    assert res["server_version"].startswith("15")
    assert res["max_connections"] == 120
    assert res["reserved_connections"] == 3
    assert res["connections"]["by_application"][sessions.app] == 5
    assert res["saturation_pct"] == pytest.approx(100.0 * res["connections"]["total"] / 117, abs=0.1)
    assert pids_of(res, "idle", sessions.app) == sorted(sessions.pid(c) for c in idle)
    assert pids_of(res, "idle_in_transaction", sessions.app) == sorted([sessions.pid(iit), sessions.pid(aborted)])
    states = {s["pid"]: s["state"] for s in res["sessions"]["idle_in_transaction"]}
    assert states[sessions.pid(aborted)] == "idle in transaction (aborted)"
    assert pids_of(res, "long_running", sessions.app) == [sessions.pid(sleeper)]
    long = [s for s in res["sessions"]["long_running"] if s["pid"] == sessions.pid(sleeper)][0]
    assert long["query"].startswith("SELECT pg_sleep") and long["duration_s"] >= 1 and long["user"] == ROLE
    assert long["wait_event"] == "Timeout:PgSleep"
    codes = {f["code"] for f in res["findings"]}
    assert {"idle_sessions", "idle_in_transaction", "long_running"} <= codes
    assert res["status"] == "warning"
    assert res["oldest_xact_s"] >= 1
    assert res["terminated"] == [] and res["cancelled"] == [] and res["would_terminate"] == []
    assert any("pg_stat_activity" in q for q in res["queries"])
    assert alive(pg_cluster, [sessions.pid(c) for c in sessions.conns]) == sorted(sessions.pid(c) for c in sessions.conns)


def test_blocking_chain_three_deep(pg_cluster, sessions):
    a, b, c = sessions.open(autocommit=False), sessions.open(autocommit=False), sessions.open(autocommit=False)
    with a.cursor() as cur:
        cur.execute("UPDATE triage_t SET v = v + 1 WHERE id = 1")
    with b.cursor() as cur:
        cur.execute("UPDATE triage_t SET v = v + 1 WHERE id = 2")
    sessions.background(b, "UPDATE triage_t SET v = v + 1 WHERE id = 1")
    time.sleep(0.3)
    sessions.background(c, "UPDATE triage_t SET v = v + 1 WHERE id = 2")
    time.sleep(1.5)
    res = triage(pg_cluster)
    chains = [ch for ch in res["blocking"] if ch["root_pid"] == sessions.pid(a)]
    assert len(chains) == 1, res["blocking"]
    chain = chains[0]
    assert chain["blocked_pids"] == sorted([sessions.pid(b), sessions.pid(c)])
    assert chain["depth"] == 2
    assert "ShareLock" in chain["lock_modes"]
    assert "blocking" in {f["code"] for f in res["findings"]}

    # check mode: the root would be terminated, nothing is touched
    chk = triage(pg_cluster, check_mode=True, terminate=["blockers"], applications=[sessions.app])
    assert chk["would_terminate"] == [sessions.pid(a)]
    assert chk["terminated"] == [] and chk["changed"] is True
    assert alive(pg_cluster, [sessions.pid(a)]) == [sessions.pid(a)]

    # terminate the root blocker only: B gets its lock, C then waits on B (B holds its transaction open)
    done = triage(pg_cluster, terminate=["blockers"], applications=[sessions.app])
    assert done["terminated"] == [sessions.pid(a)] and done["changed"] is True
    assert alive(pg_cluster, [sessions.pid(x) for x in (a, b, c)]) == sorted([sessions.pid(b), sessions.pid(c)])


def finding(res, code):
    found = [f for f in res["findings"] if f["code"] == code]
    return found[0] if found else None


def test_terminate_blockers_ends_only_the_root_once_it_has_blocked_for_blocked_after(pg_cluster, sessions):
    """A blocks B blocks C, D idle in a transaction beside them. B runs a long query (3 s) before it begins to wait
    for A: its query is old, A's blocking young. terminate=blockers ends A only, and only once B has waited for
    longer than blocked_after (not once B's query is that old); B (a victim that blocks C), C and D never."""
    a, b, c, d = (sessions.open(autocommit=False) for dummy in range(4))
    with a.cursor() as cur:
        cur.execute("UPDATE triage_t SET v = v + 1 WHERE id = 1")
    with b.cursor() as cur:
        cur.execute("UPDATE triage_t SET v = v + 1 WHERE id = 2")
    with d.cursor() as cur:
        cur.execute("SELECT count(*) FROM triage_t")
    sessions.background(b, "DO $$BEGIN PERFORM pg_sleep(3); UPDATE triage_t SET v = v + 1 WHERE id = 1; END$$")
    time.sleep(0.2)
    sessions.background(c, "UPDATE triage_t SET v = v + 1 WHERE id = 2")
    assert wait_for(lambda: lock_waiters(pg_cluster, sessions.app) == 2, timeout=10)  # B now waits for A
    pa, pb, pc, pd = (sessions.pid(x) for x in (a, b, c, d))
    args = dict(terminate=["blockers"], applications=[sessions.app], blocked_after=2)

    young = triage(pg_cluster, **args)
    chain = [ch for ch in young["blocking"] if ch["root_pid"] == pa]
    assert len(chain) == 1 and chain[0]["blocked_pids"] == sorted([pb, pc]) and chain[0]["depth"] == 2, young
    assert chain[0]["blocking_s"] < 2 <= chain[0]["wait_s"]  # C has waited (for B) longer than A has blocked
    assert pids_of(young, "idle_in_transaction", sessions.app) == sorted([pa, pd])
    assert young["would_terminate"] == [] and young["terminated"] == [] and young["changed"] is False
    assert alive(pg_cluster, [pa, pb, pc, pd]) == sorted([pa, pb, pc, pd])

    assert wait_for(lambda: [ch["blocking_s"] for ch in triage(pg_cluster)["blocking"] if ch["root_pid"] == pa]
                    [0] > 2.2, timeout=10)
    chk = triage(pg_cluster, check_mode=True, **args)
    assert chk["would_terminate"] == [pa] and chk["terminated"] == [] and chk["cancelled"] == []
    assert chk["changed"] is True
    plan = finding(chk, "terminate_plan")
    assert [(e["pid"], e["kind"]) for e in plan["sessions"]] == [(pa, "blocker")], plan
    assert alive(pg_cluster, [pa, pb, pc, pd]) == sorted([pa, pb, pc, pd])

    done = triage(pg_cluster, **args)
    assert done["terminated"] == [pa] and done["cancelled"] == [] and done["changed"] is True
    assert alive(pg_cluster, [pa, pb, pc, pd]) == sorted([pb, pc, pd])
    # B got A's row lock and finished its DO block; C still waits for B
    assert wait_for(lambda: lock_waiters(pg_cluster, sessions.app) == 1, timeout=10)


def test_terminate_blockers_spares_a_root_protected_by_its_raw_query(pg_cluster, sessions):
    """A Prisma-style migration holds a row lock and its advisory lock 72707369, its last query led by a long
    sqlcommenter-style comment. The default protected_queries pattern names the lock key, a literal: it matches
    the text as read (beyond the 200 characters returned, literals included), never the redacted text returned.
    The root is spared and listed in the finding protected; with protected_queries: [] it would be ended."""
    comment = "/* app:web route:/orders/bulk traceparent:00-%s-01 %s */" % (uuid.uuid4().hex, "x" * 180)
    holder, waiter = sessions.open(autocommit=False), sessions.open(autocommit=False)
    with holder.cursor() as cur:
        cur.execute("UPDATE triage_t SET v = v + 1 WHERE id = 1")
        cur.execute(comment + " SELECT pg_advisory_lock(72707369)")
    sessions.background(waiter, "UPDATE triage_t SET v = v + 1 WHERE id = 1")
    assert wait_for(lambda: lock_waiters(pg_cluster, sessions.app) == 1, timeout=10)
    time.sleep(1.5)
    args = dict(terminate=["blockers"], applications=[sessions.app])

    res = triage(pg_cluster, **args)
    spared = finding(res, "protected")
    assert spared and [(s["pid"], s["kind"]) for s in spared["sessions"]] == [(sessions.pid(holder), "blocker")]
    assert spared["sessions"][0]["reason"] == "query matches '*pg_advisory_lock(72707369)*'"
    assert res["would_terminate"] == [] and res["terminated"] == [] and res["changed"] is False
    assert alive(pg_cluster, [sessions.pid(holder)]) == [sessions.pid(holder)]
    shown = [s for s in res["sessions"]["idle_in_transaction"] if s["pid"] == sessions.pid(holder)][0]["query"]
    assert shown == comment[:200]  # the returned text: cut to 200 characters, the lock call not in it

    bare = triage(pg_cluster, check_mode=True, protected_queries=[], **args)
    assert bare["would_terminate"] == [sessions.pid(holder)] and finding(bare, "protected") is None


def test_prepared_transaction(pg_cluster, app_role):
    gid = "triage-%s" % uuid.uuid4().hex[:8]
    conn = pg_cluster.connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("BEGIN; INSERT INTO triage_t VALUES (%s, 0); PREPARE TRANSACTION %s",
                        (int(time.time() * 1000) % 1000000 + 10, gid))
        time.sleep(1.5)
        res = triage(pg_cluster)
        found = [p for p in res["prepared_transactions"] if p["gid"] == gid]
        assert found and found[0]["owner"] == "postgres" and found[0]["database"] == "postgres"
        assert found[0]["age_s"] >= 1
        assert res["oldest_xact_s"] >= 1
        assert "prepared_transactions" in {f["code"] for f in res["findings"]}
    finally:
        pg_cluster.psql("ROLLBACK PREPARED '%s'" % gid)
        conn.close()


def test_terminate_targets_exactly(pg_cluster, sessions):
    idle = [sessions.open() for dummy in range(3)]
    su_idle = sessions.open(superuser=True)
    iit = sessions.open(autocommit=False)
    with iit.cursor() as cur:
        cur.execute("SELECT 1")
    sleeper = sessions.open()
    sessions.background(sleeper, "SELECT pg_sleep(30)")
    time.sleep(1.5)
    args = dict(terminate=["idle", "long_running"], applications=[sessions.app])

    chk = triage(pg_cluster, check_mode=True, **args)
    expected = sorted([sessions.pid(c) for c in idle] + [sessions.pid(sleeper)])
    assert chk["would_terminate"] == expected
    assert chk["terminated"] == [] and chk["cancelled"] == [] and chk["changed"] is True
    assert len(alive(pg_cluster, [sessions.pid(c) for c in sessions.conns])) == 6

    res = triage(pg_cluster, **args)
    assert res["changed"] is True
    assert res["cancelled"] == [sessions.pid(sleeper)]
    # the cancelled query's session is idle for less than idle_after now: spared
    assert res["terminated"] == sorted(sessions.pid(c) for c in idle)
    left = alive(pg_cluster, [sessions.pid(c) for c in sessions.conns])
    assert left == sorted([sessions.pid(su_idle), sessions.pid(iit), sessions.pid(sleeper)])

    # superusers only with include_superusers; the module's own session never
    time.sleep(1.2)
    again = triage(pg_cluster, terminate=["idle"], applications=[sessions.app], include_superusers=True)
    assert sorted(again["terminated"]) == sorted([sessions.pid(su_idle), sessions.pid(sleeper)])
    assert alive(pg_cluster, [sessions.pid(iit)]) == [sessions.pid(iit)]

    last = triage(pg_cluster, terminate=["idle"], applications=[sessions.app], include_superusers=True)
    assert last["changed"] is False and last["terminated"] == [] and last["would_terminate"] == []


def test_own_session_and_background_workers_spared(pg_cluster):
    res = triage(pg_cluster, check_mode=True, terminate=["idle", "idle_in_transaction", "long_running", "blockers"],
                 include_superusers=True, idle_after=0, long_query_after=0)
    activity = pg_cluster.psql("SELECT pid FROM pg_stat_activity WHERE backend_type <> 'client backend'").split()
    assert not set(int(p) for p in activity) & set(res["would_terminate"])
    own = [s for k in res["sessions"] for s in res["sessions"][k] if s["application"] == "sre.runbooks pg_triage"]
    assert own == []


def test_cancel_first_false_terminates_directly(pg_cluster, sessions):
    sleeper = sessions.open()
    sessions.background(sleeper, "SELECT pg_sleep(30)")
    time.sleep(1.5)
    res = triage(pg_cluster, terminate=["long_running"], cancel_first=False, applications=[sessions.app])
    assert res["cancelled"] == [] and res["terminated"] == [sessions.pid(sleeper)]


def test_terminate_limit(pg_cluster, sessions):
    idle = [sessions.open() for dummy in range(3)]
    time.sleep(1.5)
    res = triage(pg_cluster, terminate=["idle"], terminate_limit=2, applications=[sessions.app])
    assert len(res["terminated"]) == 2 and set(res["terminated"]) <= {sessions.pid(c) for c in idle}
    assert "terminate_limit" in {f["code"] for f in res["findings"]}


def test_filters_by_database_and_user(pg_cluster, sessions):
    conns = [sessions.open() for dummy in range(2)]
    time.sleep(1.5)
    res = triage(pg_cluster, check_mode=True, terminate=["idle"], applications=[sessions.app], databases=["nodb"])
    assert res["would_terminate"] == [] and res["changed"] is False
    res = triage(pg_cluster, check_mode=True, terminate=["idle"], applications=[sessions.app], users=[ROLE])
    assert res["would_terminate"] == sorted(sessions.pid(c) for c in conns)


def test_dsn_connection(pg_cluster):
    url = "postgresql://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable" % (pg_cluster.password, pg_cluster.port)
    res = run_module("pg_triage", {"dsn": url})
    assert res["rc"] == 0 and res["status"] in ("ok", "warning"), res["raw"]
    assert pg_cluster.password not in res["raw"]
    kv = run_module("pg_triage", {"dsn": pg_cluster.dsn()})
    assert kv["rc"] == 0 and kv["server_version"].startswith("15")
    sock = run_module("pg_triage", {"login_unix_socket": str(pg_cluster.sockdir), "login_port": pg_cluster.port})
    assert sock["rc"] == 0 and sock["error"] is None, sock["raw"]


@pytest.mark.parametrize("case, categories", [
    ("wrong_password", {"auth"}),
    ("wrong_password_dsn", {"auth"}),
    ("wrong_port", {"refused"}),
    ("unknown_host", {"dns", "other"}),
    ("bad_dsn", {"other"}),
])
def test_unreachable(pg_cluster, case, categories):
    bad = "not-" + pg_cluster.password
    args = {
        "wrong_password": dict(pg_cluster.login_args(), login_password=bad),
        "wrong_password_dsn": {"dsn": "postgresql://postgres:%s@127.0.0.1:%d/postgres" % (bad, pg_cluster.port)},
        "wrong_port": dict(pg_cluster.login_args(), login_port=1),
        "unknown_host": dict(pg_cluster.login_args(), login_host="nohost.invalid"),
        "bad_dsn": {"dsn": "host=127.0.0.1 password=%s bogus_option=1" % bad},
    }[case]
    res = run_module("pg_triage", args)
    assert res["rc"] == 0, res["raw"]
    assert res["status"] == "unreachable" and res["changed"] is False
    assert res["error_category"] in categories, res
    assert bad not in res["raw"] and pg_cluster.password not in res["raw"]
    assert RESULT_KEYS <= set(res)
    failing = run_module("pg_triage", dict(args, fail_on="critical"))
    assert failing["rc"] == 1 and failing["failed"] is True
    assert bad not in failing["raw"]


def test_too_many_clients(pg_cluster, app_role):
    # connect as the non-superuser until the non-reserved slots are full
    conns = []
    try:
        while True:
            try:
                conns.append(pg_cluster.connect(user=ROLE, password=ROLE_PASSWORD, application_name="triage-filler"))
            except psycopg2.OperationalError:
                break
            assert len(conns) < 130
        res = run_module("pg_triage", dict(pg_cluster.login_args(), login_user=ROLE, login_password=ROLE_PASSWORD))
        assert res["status"] == "critical" and res["error_category"] == "too_many_connections", res
        assert "saturated" in {f["code"] for f in res["findings"]}
        # a superuser still gets in through the reserved slots and sees the saturation
        su = run_module("pg_triage", pg_cluster.login_args())
        assert su["status"] == "critical" and su["saturation_pct"] >= 95
        assert "saturation" in {f["code"] for f in su["findings"]}
    finally:
        for conn in conns:
            conn.close()


def test_bad_duration(pg_cluster):
    res = run_module("pg_triage", dict(pg_cluster.login_args(), idle_after="soon"))
    assert res["rc"] == 1 and res["failed"] is True
    assert "idle_after" not in res["msg"] or "soon" in res["msg"]
    assert "invalid duration 'soon'" in res["msg"]
    assert "Traceback" not in res["raw"]


def test_long_lock_queue(pg_cluster, sessions):
    """40 sessions queued on one row: pg_blocking_pids lists each behind the holder and every waiter ahead of it
    (soft blocks). One chain from the holder, as deep as the queue (the old path search never returned)."""
    holder = sessions.open(autocommit=False)
    with holder.cursor() as cur:
        cur.execute("UPDATE triage_t SET v = v + 1 WHERE id = 1")
    waiters = []
    for dummy in range(40):
        conn = sessions.open(autocommit=False)
        sessions.background(conn, "UPDATE triage_t SET v = v + 1 WHERE id = 1")
        waiters.append(sessions.pid(conn))
    assert wait_for(lambda: lock_waiters(pg_cluster, sessions.app) == 40, timeout=20)
    time.sleep(1.2)
    res = triage(pg_cluster, applications=[sessions.app])
    chains = [c for c in res["blocking"] if c["root_pid"] == sessions.pid(holder)]
    assert len(chains) == 1 and chains[0]["blocked_pids"] == sorted(waiters), res["blocking"]
    assert chains[0]["depth"] >= 2
    assert {c["root_pid"] for c in res["blocking"]} == {sessions.pid(holder)}


@pytest.fixture(scope="module")
def other_logins(pg_cluster, app_role):
    for role, grant in ((VIEWER, None), (MONITOR, "pg_monitor")):
        pg_cluster.psql("DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                        "CREATE ROLE %s LOGIN PASSWORD '%s'; END IF; END$$" % (role, role, OTHER_PASSWORD))
        if grant:
            pg_cluster.psql("GRANT %s TO %s" % (grant, role))
    pg_cluster.psql("GRANT ALL ON triage_t TO %s" % VIEWER)
    return VIEWER, MONITOR


def as_login(cluster, role, check_mode=False, **args):
    return triage(cluster, check_mode=check_mode, login_user=role, login_password=OTHER_PASSWORD, **args)


def client_backends(cluster):
    return int(cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"))


def test_unprivileged_login_counts_sessions_it_cannot_inspect(pg_cluster, sessions, other_logins):
    """The app's own login sees other roles' sessions without backend_type, state nor query: they still fill the
    pool. 95 of triage_app's sessions (idle, idle in a transaction, a long query) with 117 usable slots: saturation
    82%, seen by the unprivileged login as by a superuser; none of them is listed nor ended."""
    idle = [sessions.open() for dummy in range(93)]
    iit = sessions.open(autocommit=False)
    with iit.cursor() as cur:
        cur.execute("SELECT 1")
    sleeper = sessions.open()
    sessions.background(sleeper, "SELECT pg_sleep(30)")
    others = sorted(sessions.pid(c) for c in sessions.conns)
    time.sleep(1.5)
    everything = ["idle", "idle_in_transaction", "long_running", "blockers"]

    res = as_login(pg_cluster, VIEWER, terminate=everything)
    expected_total = client_backends(pg_cluster)  # psql's own session stands for the module's
    conns = res["connections"]
    assert res["rc"] == 0 and res["error"] is None, res["raw"]
    assert conns["total"] == expected_total and conns["total"] >= 96, conns
    assert conns["by_application"][sessions.app] == 95
    assert conns["by_user"][ROLE] == 95 and conns["by_user"][VIEWER] == 1
    assert conns["by_state"][HIDDEN_KEY] == conns["total"] - 1 and conns["by_state"]["active"] == 1, conns
    assert conns["by_client"][HIDDEN_KEY] == conns["total"] - 1
    assert res["saturation_pct"] == pytest.approx(100.0 * conns["total"] / 117, abs=0.1)
    assert res["saturation_pct"] >= 80
    findings = {f["code"]: f for f in res["findings"]}
    assert findings["saturation"]["severity"] == "warning"
    assert findings["limited_visibility"]["severity"] == "warning"
    message = findings["limited_visibility"]["message"]
    assert message.startswith("%d sessions of other roles" % (conns["total"] - 1)), message
    assert "%s: 95" % ROLE in message
    assert "GRANT pg_monitor TO %s" % VIEWER in message and "pg_read_all_stats" in message
    assert "pg_signal_backend" in message
    assert res["status"] == "warning"
    listed = [s["pid"] for kind in res["sessions"] for s in res["sessions"][kind]]
    assert not set(listed) & set(others)
    assert res["would_terminate"] == [] and res["terminated"] == [] and res["cancelled"] == []
    assert res["changed"] is False
    assert alive(pg_cluster, others) == others
    state = pg_cluster.psql("SELECT state FROM pg_stat_activity WHERE pid = %d" % sessions.pid(sleeper)).strip()
    assert state == "active"

    # granted pg_monitor: the same sessions fully visible, the same count
    mon = as_login(pg_cluster, MONITOR, check_mode=True, terminate=["idle", "idle_in_transaction", "long_running"],
                   applications=[sessions.app], terminate_limit=200)
    assert mon["connections"]["total"] == conns["total"]
    assert mon["saturation_pct"] == res["saturation_pct"]
    assert HIDDEN_KEY not in mon["connections"]["by_state"] and HIDDEN_KEY not in mon["connections"]["by_client"]
    assert mon["connections"]["by_state"]["idle"] >= 93
    assert "limited_visibility" not in {f["code"] for f in mon["findings"]}
    assert pids_of(mon, "idle", sessions.app) == sorted(sessions.pid(c) for c in idle)
    assert pids_of(mon, "idle_in_transaction", sessions.app) == [sessions.pid(iit)]
    assert pids_of(mon, "long_running", sessions.app) == [sessions.pid(sleeper)]
    assert mon["would_terminate"] == others
    assert alive(pg_cluster, others) == others


def test_unprivileged_login_never_ends_a_blocker_it_cannot_inspect(pg_cluster, sessions, other_logins):
    """triage_app holds a row lock the viewer's own session waits for: the chain is reported, its root (hidden
    from the viewer) is not ended."""
    holder = sessions.open(autocommit=False)
    with holder.cursor() as cur:
        cur.execute("UPDATE triage_t SET v = v + 1 WHERE id = 1")
    waiter = sessions.open(autocommit=False, user=VIEWER)
    sessions.background(waiter, "UPDATE triage_t SET v = v + 1 WHERE id = 1")
    time.sleep(1.5)
    res = as_login(pg_cluster, VIEWER, terminate=["blockers"], applications=[sessions.app])
    chains = [c for c in res["blocking"] if c["root_pid"] == sessions.pid(holder)]
    assert len(chains) == 1 and chains[0]["blocked_pids"] == [sessions.pid(waiter)], res["blocking"]
    blocking = [f["message"] for f in res["findings"] if f["code"] == "blocking"]
    assert any("may not inspect nor end" in m for m in blocking), blocking
    assert "limited_visibility" in {f["code"] for f in res["findings"]}
    assert res["would_terminate"] == [] and res["terminated"] == [] and res["cancelled"] == []
    assert alive(pg_cluster, [sessions.pid(holder), sessions.pid(waiter)]) == sorted(
        [sessions.pid(holder), sessions.pid(waiter)])


def test_query_literals_never_in_the_result(pg_cluster, sessions):
    """Query texts are returned with their literals redacted (pg_slow_queries' one redaction): a secret in a running
    query, in a blocker's last query or in a waiting query shows nowhere in the result, the plans included."""
    canary = "canary-secret-123"
    sleeper = sessions.open()
    sessions.background(sleeper, "SELECT '%s', pg_sleep(30)" % canary)
    holder, waiter = sessions.open(autocommit=False), sessions.open(autocommit=False)
    with holder.cursor() as cur:
        cur.execute("UPDATE triage_t SET v = 4711 WHERE id = 1 AND '%s-holder' <> ''" % canary)
    sessions.background(waiter, "UPDATE triage_t SET v = v + 1 WHERE id = 1 AND $x$%s-waiter$x$ <> ''" % canary)
    time.sleep(1.5)
    res = triage(pg_cluster)
    plan = triage(pg_cluster, check_mode=True, terminate=["long_running", "idle_in_transaction", "blockers"],
                  applications=[sessions.app])
    for result in (res, plan):
        assert result["rc"] == 0 and canary not in result["raw"], result["raw"]
    by_pid = {s["pid"]: s for kind in res["sessions"].values() for s in kind}
    assert by_pid[sessions.pid(sleeper)]["query"] == "SELECT ?, pg_sleep(?)"
    assert by_pid[sessions.pid(holder)]["query"] == "UPDATE triage_t SET v = ? WHERE id = ? AND ? <> ?"
    assert by_pid[sessions.pid(waiter)]["query"] == "UPDATE triage_t SET v = v + ? WHERE id = ? AND ? <> ?"
    chains = [c for c in res["blocking"] if c["root_pid"] == sessions.pid(holder)]
    assert chains and chains[0]["blocked_pids"] == [sessions.pid(waiter)]
    assert sorted(plan["would_terminate"]) == sorted(sessions.pid(c) for c in (sleeper, holder, waiter))
