# SPDX-License-Identifier: GPL-3.0-or-later
"""Blast radius of ending sessions (issue 11), against the real throwaway cluster.

- pg_triage and pg_slow_queries signal a session only while it is still the one they saw: pid together with
  backend_start (and query_start for cancels). A reused pid is simulated in process: the job reads the real
  activity, then the test changes what it saw (another backend_start, another query_start) before it acts.
- Sessions of backups, migrations and replication clients (application_name or query) are never ended.
- pg_triage lists every blocking chain, however short the wait; blocked_after only sets the severity.
- db_connections remediate ends, by default, only sessions of the app's own database and role.

Sessions log in as roles of their own (blast_app, blast_other) in databases of their own, so sessions of other
tests are never touched.
"""

from __future__ import annotations

import datetime
import sys
import time
import uuid

import psycopg2
import pytest

from conftest import ensure_collection_link, run_module
from pg_probes import alive, state_of, wait_for
from pg_sessions import run_in_background, run_playbook

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _slow_queries, _triage  # noqa: E402
from ansible_collections.sre.runbooks.plugins.modules import pg_slow_queries as slow_module  # noqa: E402
from ansible_collections.sre.runbooks.plugins.modules import pg_triage as triage_module  # noqa: E402

APP, APP_PASSWORD = "blast_app", "blast-app-pw-4c1e"
OTHER, OTHER_PASSWORD = "blast_other", "blast-other-pw-9a2d"
APP_DB, OTHER_DB = "blast_appdb", "blast_otherdb"
AN_HOUR = datetime.timedelta(hours=1)


@pytest.fixture(scope="module")
def blast_db(pg_cluster):
    for role, password in ((APP, APP_PASSWORD), (OTHER, OTHER_PASSWORD)):
        pg_cluster.psql("DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                        "CREATE ROLE %s LOGIN PASSWORD '%s'; END IF; END$$" % (role, role, password))
    existing = pg_cluster.psql("SELECT datname FROM pg_database").split()
    for name in (APP_DB, OTHER_DB):
        if name not in existing:
            pg_cluster.psql("CREATE DATABASE %s" % name)
    pg_cluster.psql("CREATE TABLE IF NOT EXISTS blast_t (id int PRIMARY KEY, v int); "
                    "INSERT INTO blast_t VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING; "
                    "CREATE TABLE IF NOT EXISTS knex_migrations (id serial PRIMARY KEY, name text); "
                    "GRANT ALL ON blast_t, knex_migrations TO %s, %s" % (APP, OTHER), dbname=APP_DB)
    return APP_DB


class Sessions:
    """Sessions of the blast roles, each with the application_name asked for; all closed at the end."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.tag = uuid.uuid4().hex[:8]
        self.app = "blast-%s" % self.tag
        self.conns = []
        self.threads = []

    def open(self, application=None, user=APP, dbname=APP_DB, autocommit=True, superuser=False):
        if superuser:
            conn = self.cluster.connect(dbname=dbname, application_name=application or self.app)
        else:
            password = APP_PASSWORD if user == APP else OTHER_PASSWORD
            conn = self.cluster.connect(dbname=dbname, user=user, password=password,
                                        application_name=application or self.app)
        conn.autocommit = autocommit
        self.conns.append(conn)
        return conn

    def run(self, conn, sql):
        with conn.cursor() as cur:
            cur.execute(sql)

    def background(self, conn, sql):
        return run_in_background(conn, sql, self.threads)

    def pids(self):
        return [c.get_backend_pid() for c in self.conns]

    def close(self):
        pids = ",".join(str(p) for p in self.pids()) or "0"
        self.cluster.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN (%s)" % pids)
        for conn in self.conns:
            try:
                conn.close()
            except psycopg2.Error:
                pass
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def sessions(pg_cluster, blast_db):
    s = Sessions(pg_cluster)
    yield s
    s.close()


def triage(cluster, check_mode=False, **args):
    base = dict(cluster.login_args(APP_DB), idle_after=1, idle_in_transaction_after=1, long_query_after=1,
                blocked_after=1)
    base.update(args)
    res = run_module("pg_triage", base, check_mode=check_mode)
    assert res["rc"] == 0, res["raw"]
    assert "Traceback" not in res["raw"] and cluster.password not in res["raw"]
    return res


def finding(res, code):
    found = [f for f in res["findings"] if f["code"] == code]
    return found[0] if found else None


# ---------------------------------------------------------------------------------- the session that was seen


class InProcessPg:
    """What a PgJob needs of PgModule (params, check_mode, result, connect, exec_sql, close) over a real
    connection, so that a test can change what the job saw between its read and its act."""

    def __init__(self, cluster, spec, empty_result, **params):
        self.cluster = cluster
        self.params = dict((name, list(opt["default"]) if isinstance(opt.get("default"), list) else opt.get("default"))
                           for name, opt in spec.items())
        self.params.update(params)
        self.check_mode = False
        self.result = empty_result()
        self.conn = None

    def connect(self, application_name, autocommit=False):
        # (the cluster's key=value DSN does not quote: the job's name without its space)
        self.conn = self.cluster.connect(dbname=APP_DB, application_name=application_name.replace(" ", "_"))
        self.conn.autocommit = True
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def exec_sql(self, query, args=None, cursor=None):
        with self.conn.cursor() as cur:
            text = cur.mogrify(query, args)
            self.result["queries"].append(text.decode() if isinstance(text, bytes) else text)
            cur.execute(query, args)
            return cur.fetchall() if cur.description else []

    def signals(self):
        return [q for q in self.result["queries"] if "pg_terminate_backend" in q or "pg_cancel_backend" in q]


LIMITS = dict(idle_after=1, idle_in_transaction_after=1, long_query_after=1, blocked_after=1)


def triage_job(cluster, **params):
    pg = InProcessPg(cluster, triage_module.argument_spec(), _triage.empty_result, **params)
    job = _triage.Triage(pg, dict(LIMITS))
    pg.connect(job.application_name)
    return pg, job


def test_triage_never_ends_a_reused_pid(pg_cluster, sessions):
    idle = sessions.open()
    sleeper = sessions.open()
    sessions.background(sleeper, "SELECT pg_sleep(30)")
    time.sleep(1.5)
    ours = sorted([idle.get_backend_pid(), sleeper.get_backend_pid()])
    pg, job = triage_job(pg_cluster, terminate=["idle", "long_running"], applications=[sessions.app])
    try:
        job.gather()
        # between the read and the signal both pids were reused by new connections: another backend_start
        # (.get: without the change the rows do not even carry it, and the test fails on what gets ended)
        for row in job.rows.values():
            if row["pid"] in ours:
                row["backend_start"] = row.get("backend_start", datetime.datetime.now(datetime.timezone.utc)) - AN_HOUR
        job.act()
    finally:
        pg.close()
    assert pg.result["would_terminate"] == ours
    assert pg.result["cancelled"] == [] and pg.result["terminated"] == []
    assert alive(pg_cluster, ours) == ours and state_of(pg_cluster, sleeper.get_backend_pid()) == "active"
    signals = pg.signals()
    assert len(signals) == 2 and all("backend_start" in q for q in signals), signals
    assert "query_start" in [q for q in signals if "pg_cancel_backend" in q][0]

    # the same run on what is really there: the query cancelled, the idle session ended
    pg, job = triage_job(pg_cluster, terminate=["idle", "long_running"], applications=[sessions.app])
    try:
        job.gather()
        job.act()
    finally:
        pg.close()
    assert pg.result["cancelled"] == [sleeper.get_backend_pid()]
    assert pg.result["terminated"] == [idle.get_backend_pid()]
    assert alive(pg_cluster, ours) == [sleeper.get_backend_pid()]


def test_slow_queries_never_signals_a_reused_pid(pg_cluster, sessions):
    runaway = sessions.open()
    sessions.background(runaway, "SELECT pg_sleep(60)")
    pid = runaway.get_backend_pid()
    time.sleep(1.5)
    pg = InProcessPg(pg_cluster, slow_module.argument_spec(), _slow_queries.empty_result, cancel_after="1",
                     applications=[sessions.app], terminate_if_cancel_fails=True)
    job = _slow_queries.SlowQueries(pg, slow_module.check_options(pg.params))
    pg.connect(job.application_name)
    try:
        job.activity()
        row = [r for r in job.rows if r["pid"] == pid][0]
        backend_start = row.get("backend_start", datetime.datetime.now(datetime.timezone.utc))
        query_start = row["query_start"]

        row["backend_start"] = backend_start - AN_HOUR  # the pid now belongs to a new connection
        job.cancel()
        assert pg.result["would_cancel"] == [pid] and pg.result["cancelled"] == [], pg.result
        assert state_of(pg_cluster, pid) == "active"

        row.update(backend_start=backend_start, query_start=query_start - AN_HOUR)  # same session, another query
        job.cancel()
        assert pg.result["cancelled"] == [] and state_of(pg_cluster, pid) == "active"

        row["query_start"] = query_start  # what is really there
        job.cancel()
        assert pg.result["cancelled"] == [pid]
    finally:
        pg.close()
    assert wait_for(lambda: state_of(pg_cluster, pid) == "idle")
    signals = pg.signals()
    assert len(signals) == 3 and all("backend_start" in q and "query_start" in q for q in signals), signals


# --------------------------------------------------------------------------------------------- protected sessions


def test_triage_never_ends_backups_migrations_or_replication_clients(pg_cluster, sessions):
    plain = sessions.open()
    dump = sessions.open("pg_dump", autocommit=False)  # pg_dump holds a repeatable read transaction
    sessions.run(dump, "SELECT 1")
    knex = sessions.open("node")  # a migration told by its query
    sessions.run(knex, "SELECT count(*) FROM knex_migrations")
    receiver = sessions.open("pg_receivewal")
    alembic = sessions.open("alembic")
    sessions.background(alembic, "SELECT pg_sleep(30)")
    time.sleep(1.5)
    protected = sorted(c.get_backend_pid() for c in (dump, knex, receiver, alembic))
    args = dict(terminate=["idle", "idle_in_transaction", "long_running"], users=[APP], databases=[APP_DB])

    chk = triage(pg_cluster, check_mode=True, **args)
    assert chk["would_terminate"] == [plain.get_backend_pid()]
    spared = finding(chk, "protected")
    assert spared and spared["severity"] == "info"
    by_pid = dict((s["pid"], s) for s in spared["sessions"])
    assert sorted(by_pid) == protected, spared
    assert by_pid[dump.get_backend_pid()]["application"] == "pg_dump"
    assert "pg_dump*" in by_pid[dump.get_backend_pid()]["reason"]
    assert "knex_migrations" in by_pid[knex.get_backend_pid()]["reason"]
    assert by_pid[alembic.get_backend_pid()]["kind"] == "long_running"
    assert "pid %d (pg_dump, " % dump.get_backend_pid() in spared["message"]
    plan = finding(chk, "terminate_plan")
    assert [(s["pid"], s["application"], s["user"], s["database"], s["kind"]) for s in plan["sessions"]] == [
        (plain.get_backend_pid(), sessions.app, APP, APP_DB, "idle")]
    assert "pid %d (%s, %s@%s, idle " % (plain.get_backend_pid(), sessions.app, APP, APP_DB) in plan["message"]

    res = triage(pg_cluster, **args)
    assert res["terminated"] == [plain.get_backend_pid()] and res["cancelled"] == []
    assert alive(pg_cluster, protected) == protected
    assert state_of(pg_cluster, alembic.get_backend_pid()) == "active"

    # the patterns are options: emptied, nothing is protected
    bare = triage(pg_cluster, check_mode=True, protected_applications=[], protected_queries=[], **args)
    assert bare["would_terminate"] == protected and finding(bare, "protected") is None


def test_slow_queries_never_cancels_a_backup(pg_cluster, sessions):
    web = sessions.open()
    sessions.background(web, "SELECT pg_sleep(30)")
    dump = sessions.open("pg_dump")
    sessions.background(dump, "SELECT pg_sleep(30)")
    time.sleep(1.5)
    res = run_module("pg_slow_queries", dict(pg_cluster.login_args(APP_DB), cancel_after="1", users=[APP],
                                             databases=[APP_DB]))
    assert res["rc"] == 0, res["raw"]
    assert res["would_cancel"] == [web.get_backend_pid()] and res["cancelled"] == [web.get_backend_pid()]
    spared = finding(res, "protected")
    assert spared and [s["pid"] for s in spared["sessions"]] == [dump.get_backend_pid()]
    assert spared["sessions"][0]["application"] == "pg_dump"
    assert state_of(pg_cluster, dump.get_backend_pid()) == "active"


# ------------------------------------------------------------------------------------------------ blocking chains


def chain_findings(res, root):
    return [f for f in res["findings"] if f["code"] == "blocking" and "pid %d " % root.get_backend_pid() in f["message"]]


def test_short_lock_wait_is_listed_blocked_after_sets_the_severity(pg_cluster, sessions):
    holder = sessions.open(autocommit=False)
    sessions.run(holder, "UPDATE blast_t SET v = v + 1 WHERE id = 1")
    waiter = sessions.open(autocommit=False)
    sessions.background(waiter, "UPDATE blast_t SET v = v + 1 WHERE id = 1")
    time.sleep(3)

    # the defaults (blocked_after 1m): a 3-second lock queue is listed, as an info finding
    res = run_module("pg_triage", pg_cluster.login_args(APP_DB))
    assert res["rc"] == 0, res["raw"]
    chains = [c for c in res["blocking"] if c["root_pid"] == holder.get_backend_pid()]
    assert len(chains) == 1, res["blocking"]
    assert chains[0]["blocked_pids"] == [waiter.get_backend_pid()] and chains[0]["depth"] == 1
    assert 2.5 <= chains[0]["wait_s"] < 60
    found = chain_findings(res, holder)
    assert len(found) == 1 and found[0]["severity"] == "info", res["findings"]

    # terminate=blockers ends only roots of chains over blocked_after
    chk = triage(pg_cluster, check_mode=True, blocked_after="1m", terminate=["blockers"], applications=[sessions.app])
    assert chk["would_terminate"] == [] and [c["root_pid"] for c in chk["blocking"]
                                             if c["root_pid"] == holder.get_backend_pid()]

    # over blocked_after: a warning, and the root may be ended
    over = triage(pg_cluster, check_mode=True, blocked_after=2, terminate=["blockers"], applications=[sessions.app])
    found = chain_findings(over, holder)
    assert len(found) == 1 and found[0]["severity"] == "warning"
    assert over["would_terminate"] == [holder.get_backend_pid()]
    assert alive(pg_cluster, [holder.get_backend_pid(), waiter.get_backend_pid()]) == sorted(
        [holder.get_backend_pid(), waiter.get_backend_pid()])


# ------------------------------------------------------------------------------ db_connections' default scope


def test_db_connections_default_scope_is_the_apps_database_and_role(pg_cluster, sessions, tmp_path):
    own = [sessions.open(), sessions.open()]
    other_role = sessions.open(user=OTHER)
    other_db = sessions.open(dbname=OTHER_DB)
    dump = sessions.open("pg_dump", autocommit=False)
    sessions.run(dump, "SELECT 1")
    migration = sessions.open("node")
    sessions.run(migration, "SELECT count(*) FROM knex_migrations")
    time.sleep(1.5)
    own_pids = sorted(c.get_backend_pid() for c in own)
    spared = sorted(c.get_backend_pid() for c in (other_role, other_db, dump, migration))
    ensure_collection_link()
    evars = {
        "sre_db_host": pg_cluster.host, "sre_db_port": pg_cluster.port, "sre_db_user": APP,
        "sre_db_password": APP_PASSWORD, "sre_db_name": APP_DB,
        "sre_db_unix_socket": str(pg_cluster.sockdir), "sre_db_admin_user": "postgres",
        "db_connections_admin_become": False,
        "db_connections_idle_after": 1, "db_connections_idle_in_transaction_after": 1,
        "db_connections_long_query_after": 1,
    }

    rc, changed, failed, out = run_playbook(pg_cluster, "db_connections_remediate.yml", tmp_path,
                                            dict(evars, sre_confirm=False))
    assert rc == 0 and changed == 0 and failed == 0, out
    plan = " ".join(out.split())  # the YAML callback wraps long lines
    assert "- end 2 sessions (idle, idle_in_transaction, long_running; pids %s) in %s of %s" % (
        ", ".join(str(p) for p in own_pids), APP_DB, APP) in plan, out
    for pid in own_pids:
        assert "- end pid %d: application %s, %s@%s, idle " % (pid, sessions.app, APP, APP_DB) in plan, out
    assert "- spare pid %d: application pg_dump, %s@%s (application_name" % (dump.get_backend_pid(), APP, APP_DB) \
        in plan, out
    assert "- spare pid %d: application node, %s@%s (query matches" % (migration.get_backend_pid(), APP, APP_DB) \
        in plan, out
    assert plan.index("- end pid") < plan.index("- spare pid")
    assert alive(pg_cluster, own_pids + spared) == sorted(own_pids + spared)

    rc, changed, failed, out = run_playbook(pg_cluster, "db_connections_remediate.yml", tmp_path,
                                            dict(evars, sre_confirm=True))
    assert rc == 0 and failed == 0 and changed >= 1, out
    assert "terminated 2 sessions" in out, out
    assert alive(pg_cluster, own_pids + spared) == spared
