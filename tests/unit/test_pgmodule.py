# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/module_utils/_pgmodule.py without a server: PgModule (argspec merge, exec_sql recording, scrub, fail_on,
the same keys on every exit) and PgJob (one unreachable path), with a stand-in AnsibleModule and connection; then
the three PostgreSQL modules run for real against a port nobody listens on."""

from __future__ import annotations

import sys

import psycopg2
import pytest

from conftest import ensure_collection_link, free_port, run_module

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _pgmodule  # noqa: E402
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import (  # noqa: E402
    PgConnectError,
    postgres_argument_spec,
    secrets_of,
)

SECRET = "hunter2-not-for-logs"
DSN_SECRET = "dsn-pass-9d1e"


class Exited(Exception):
    def __init__(self, failed, result):
        super().__init__(result.get("msg"))
        self.failed = failed
        self.result = result


class FakeModule:
    """AnsibleModule's surface that PgModule uses: params from the spec's defaults plus the test's args."""

    args: dict = {}

    def __init__(self, argument_spec, **kwargs):
        self.argument_spec = argument_spec
        self.kwargs = kwargs
        self.params = {name: spec.get("default") for name, spec in argument_spec.items()}
        self.params.update(self.args)
        self.check_mode = False
        self._diff = False

    def exit_json(self, **result):
        raise Exited(False, result)

    def fail_json(self, **result):
        raise Exited(True, result)


class FakeCursor:
    def __init__(self, conn):
        self.conn = conn
        self.description = None
        self.rowcount = -1
        self.rows = []

    def mogrify(self, query, args=None):
        return (query % tuple(repr(a) for a in args) if args else query).encode()

    def execute(self, query, args=None):
        self.conn.executed.append(query)
        if "boom" in query:
            raise psycopg2.OperationalError("boom: password authentication failed, password=%s in "
                                            "postgresql://app:%s@db/app" % (SECRET, DSN_SECRET))
        self.description = [("value",)]
        self.rows = [(len(self.conn.executed),)]
        self.rowcount = 1

    def fetchall(self):
        return self.rows

    def close(self):
        pass


class FakeConn:
    def __init__(self, dead=False):
        self.closed = 0
        self.dead = dead
        self.executed = []
        self.rolled_back = 0

    def cursor(self):
        return FakeCursor(self)

    def rollback(self):
        if self.dead:
            raise psycopg2.InterfaceError("connection already closed")
        self.rolled_back += 1

    def close(self):
        self.closed = 1


def empty_result():
    return dict(status="ok", findings=[], value=None, queries=[], error_category=None, error=None)


class Job(_pgmodule.PgJob):
    application_name = "sre.runbooks test"
    what = "Testing the wrapper"

    def steps(self):
        self.result["value"] = self.sql("SELECT %s", (1,))[0][0]
        self.findings.add(self.params["severity"], "seen", "the password is %s" % SECRET)
        if self.params["query"]:
            self.sql(self.params["query"])

    def changed(self):
        return self.result["value"] is not None


@pytest.fixture
def wrap(monkeypatch):
    """wrap(args, connect=...) -> a function running Job through PgModule; returns (failed, result, conn)."""
    monkeypatch.setattr(_pgmodule, "AnsibleModule", FakeModule)

    def make(args, connect=None, job=Job, **kwargs):
        FakeModule.args = dict(args)
        conn = FakeConn()

        def fake_connect(params, application_name=None, autocommit=False):
            if connect is not None:
                return connect(params)
            return conn

        monkeypatch.setattr(_pgmodule, "connect", fake_connect)
        spec = dict(severity=dict(type="str", default="info"), query=dict(type="str"),
                    fail_on=dict(type="str", default="never"))
        with pytest.raises(Exited) as exited:
            pg = _pgmodule.PgModule(spec, empty_result, **kwargs)
            pg.run(job(pg))
        return exited.value.failed, exited.value.result, conn

    return make


KEYS = set(empty_result()) | {"changed", "msg"}


def refused(params):
    raise PgConnectError("refused", "connection to server at 127.0.0.1, port 1 failed: Connection refused")


def saturated(params):
    raise PgConnectError("too_many_connections", "FATAL: sorry, too many clients already")


def test_the_argspec_is_merged_with_the_connection_options(monkeypatch):
    monkeypatch.setattr(_pgmodule, "AnsibleModule", FakeModule)
    FakeModule.args = {}
    pg = _pgmodule.PgModule(dict(extra=dict(type="int", default=3)), empty_result, supports_check_mode=True)
    assert set(pg.module.argument_spec) == set(postgres_argument_spec()) | {"extra"}
    assert pg.module.kwargs == {"supports_check_mode": True}
    assert pg.params["extra"] == 3 and pg.params["login_port"] == 5432


def test_success_records_every_statement(wrap):
    failed, res, conn = wrap({"login_password": SECRET})
    assert not failed and res["changed"] is True and res["value"] == 1
    assert res["queries"] == ["SELECT 1"] and conn.executed == ["SELECT %s"]
    assert res["status"] == "ok" and [f["code"] for f in res["findings"]] == ["seen"]
    assert conn.closed


def test_statements_without_their_values(wrap):
    failed, res, dummy = wrap({}, record_values=False)
    assert not failed and res["queries"] == ["SELECT %s"]


def test_a_database_error_fails_with_every_key_scrubbed_and_the_statement_recorded(wrap):
    failed, res, conn = wrap({"login_password": SECRET, "dsn": "postgresql://app:%s@db/app" % DSN_SECRET,
                              "query": "SELECT boom"})
    assert failed and set(res) == KEYS
    assert res["msg"].startswith("Testing the wrapper: boom: password authentication failed")
    assert res["queries"] == ["SELECT 1", "SELECT boom"]
    text = repr(res)
    assert SECRET not in text and DSN_SECRET not in text and "********" in res["msg"]
    assert conn.closed and conn.rolled_back == 0  # autocommit: nothing to roll back


def test_unreachable_is_a_result_with_the_same_keys(wrap):
    failed, res, dummy = wrap({}, connect=refused)
    assert not failed and set(res) == KEYS - {"msg"}
    assert res["status"] == "unreachable" and res["error_category"] == "refused" and res["changed"] is False
    assert [f["code"] for f in res["findings"]] == ["unreachable"] and res["queries"] == []


def test_too_many_clients_is_a_saturated_server(wrap):
    failed, res, dummy = wrap({}, connect=saturated)
    assert not failed and res["status"] == "critical" and res["error_category"] == "too_many_connections"
    assert [f["code"] for f in res["findings"]] == ["saturated"]


def test_unreachable_fails_when_the_job_says_so(wrap):
    class Strict(Job):
        unreachable_fails = True

    failed, res, dummy = wrap({}, connect=refused, job=Strict)
    assert failed and set(res) == KEYS
    assert res["msg"].startswith("Connecting to PostgreSQL: connection to server") and res["status"] == "unreachable"


@pytest.mark.parametrize("severity, fail_on, fails", [
    ("warning", "never", False), ("warning", "warning", True), ("warning", "critical", False),
    ("critical", "critical", True),
])
def test_fail_on(wrap, severity, fail_on, fails):
    failed, res, dummy = wrap({"severity": severity, "fail_on": fail_on, "login_password": SECRET})
    assert failed is fails and set(res) == (KEYS if fails else KEYS - {"msg"})
    assert res["status"] == severity and res["changed"] is True
    if fails:
        assert res["msg"].startswith("Testing the wrapper: status %s (seen: the password is ********" % severity)
    assert SECRET not in repr(res)


def test_unreachable_fails_on_critical(wrap):
    failed, res, dummy = wrap({"fail_on": "critical"}, connect=refused)
    assert failed and set(res) == KEYS and res["status"] == "unreachable"


def test_an_option_error_before_the_run_has_every_key(monkeypatch):
    monkeypatch.setattr(_pgmodule, "AnsibleModule", FakeModule)
    FakeModule.args = {"login_password": SECRET}
    pg = _pgmodule.PgModule({}, empty_result)
    with pytest.raises(Exited) as exited:
        pg.fail("Checking the options: %s is not a duration" % SECRET)
    assert exited.value.failed and set(exited.value.result) == KEYS
    assert exited.value.result["msg"] == "Checking the options: ******** is not a duration"


def test_missing_psycopg2_fails_with_every_key(monkeypatch):
    monkeypatch.setattr(_pgmodule, "AnsibleModule", FakeModule)
    monkeypatch.setattr(_pgmodule, "HAS_PSYCOPG2", False)
    FakeModule.args = {}
    with pytest.raises(Exited) as exited:
        _pgmodule.PgModule({}, empty_result)
    assert exited.value.failed and set(exited.value.result) == KEYS and "psycopg2" in exited.value.result["msg"]


def test_close_rolls_back_and_survives_a_dead_connection(monkeypatch):
    monkeypatch.setattr(_pgmodule, "AnsibleModule", FakeModule)
    FakeModule.args = {}
    pg = _pgmodule.PgModule({}, empty_result)
    for dead, rolled in ((False, 1), (True, 0)):
        conn = FakeConn(dead=dead)
        monkeypatch.setattr(_pgmodule, "connect", lambda params, application_name=None, autocommit=False: conn)
        pg.connect("test", autocommit=False)
        pg.close()
        assert conn.closed and conn.rolled_back == rolled and pg.conn is None
    pg.close()  # nothing open: nothing to do


@pytest.mark.parametrize("params, expected", [
    ({"login_password": "a"}, ["a"]),
    ({"dsn": "postgresql://u:p%40ss@db/x"}, ["p@ss"]),
    ({"dsn": "host=db password='s p' user=u", "login_password": "b"}, ["b", "s p"]),
    ({"dsn": "host=db bogus_option=1 password=x"}, []),  # invalid: scrub's patterns still catch password=
    ({}, []),
])
def test_secrets_of(params, expected):
    assert secrets_of(params) == expected


# ---- the real modules, no server: a port nobody listens on -----------------------------------------------

MODULE_KEYS = {
    "pg_triage": {"status", "findings", "server_version", "max_connections", "reserved_connections",
                  "saturation_pct", "connections", "sessions", "blocking", "prepared_transactions", "oldest_xact_s",
                  "terminated", "cancelled", "would_terminate", "queries", "error_category", "error"},
    "pg_slow_queries": {"status", "findings", "server_version", "pg_stat_statements", "statements", "active",
                        "seq_scan_tables", "settings", "would_cancel", "cancelled", "terminated", "settings_changed",
                        "queries", "error_category", "error", "query_memory", "memory_heavy"},
    "pg_orphans": {"relations", "total_orphans", "deleted", "saved_path", "restored", "already_present", "passes",
                   "status", "findings", "queries", "error_category", "error"},
}
EXTRA_ARGS = {"pg_orphans": {"relations": [{"child": "items", "column": "category_id", "parent": "categories"}]}}
ANSIBLE_KEYS = {"rc", "raw", "changed", "invocation", "failed", "msg"}


@pytest.mark.parametrize("name", sorted(MODULE_KEYS))
def test_modules_exit_with_their_keys_when_unreachable_or_misconfigured(name):
    args = dict(EXTRA_ARGS.get(name, {}), login_host="127.0.0.1", login_port=free_port(),
                login_password=SECRET, connect_timeout=2)
    res = run_module(name, args)
    assert set(res) - ANSIBLE_KEYS == MODULE_KEYS[name], res["raw"]
    assert res["error_category"] == "refused" and res["status"] == "unreachable"
    assert res["rc"] == (1 if name == "pg_orphans" else 0), res["raw"]
    assert SECRET not in res["raw"] and "Traceback" not in res["raw"]
    bad = run_module(name, dict(args, sample_size=-1) if name == "pg_orphans" else dict(args, long_query_after="soon"))
    assert bad["rc"] == 1 and bad["msg"].startswith("Checking the options: "), bad["raw"]
    assert set(bad) - ANSIBLE_KEYS == MODULE_KEYS[name]


# ---- protected sessions: one helper for pg_triage and pg_slow_queries ---------------------------------------

def test_protected_reason_matches_the_raw_text_never_a_redacted_one():
    """The patterns may name literals; protected_reason gets the text as the server has it and never redacts it
    (it is what both modules hand it: their rows keep the query as read)."""
    from ansible_collections.sre.runbooks.plugins.module_utils._slow_queries import clean_query

    raw = "SELECT  pg_advisory_lock(72707369)\n"
    patterns = list(_pgmodule.PROTECTED_QUERIES)
    assert _pgmodule.protected_reason("node", raw, [], patterns) == "query matches '*pg_advisory_lock(72707369)*'"
    assert _pgmodule.protected_reason("node", clean_query(raw, 200), [], patterns) is None  # SELECT pg_advisory_lock(?)
    backup = "COPY public.orders TO '/srv/backups/orders.csv'"
    assert _pgmodule.protected_reason(None, backup, [], ["copy * to '/srv/backups/*"]) is not None
    assert _pgmodule.protected_reason(None, clean_query(backup, 200), [], ["copy * to '/srv/backups/*"]) is None
    # application names, case-insensitive; no pattern, nothing protected; the reason never holds the query
    assert _pgmodule.protected_reason("PG_DUMP", None, ["pg_dump*"], []) == "application_name 'PG_DUMP' matches 'pg_dump*'"
    assert _pgmodule.protected_reason("pg_dump", raw, [], []) is None
    assert "72707369" not in _pgmodule.protected_reason("node", "SELECT 72707369 FROM knex_migrations", [], patterns)


def test_both_modules_take_the_protected_options_from_the_one_spec():
    from ansible_collections.sre.runbooks.plugins.modules import pg_slow_queries, pg_triage

    spec = _pgmodule.protected_argument_spec()
    for module in (pg_triage, pg_slow_queries):
        options = module.argument_spec()
        for name in ("protected_applications", "protected_queries"):
            assert options[name] == spec[name]
    assert spec["protected_queries"]["default"] == _pgmodule.PROTECTED_QUERIES
    assert spec["protected_queries"]["default"] is not _pgmodule.PROTECTED_QUERIES  # a copy per call


def _activity(pid, blocking=(), lock_wait=None, query_s=None, known=True):
    return {"pid": pid, "blocking_pids": list(blocking), "lock_wait_s": lock_wait, "query_s": query_s,
            "waitstart_known": known, "waiting_modes": ["ShareLock"] if blocking else None, "kind": "client",
            "state": "active" if blocking else "idle in transaction", "state_s": 10.0}


def test_terminate_blockers_picks_only_roots_that_wait_for_nothing_and_have_blocked_long_enough():
    """root_blockers over classify's chains (pg_triage's terminate=blockers): A <- B <- C, the root's blocking
    time is its own waiters' (B began to wait long after its query began); a deadlock cycle has no root to end."""
    from ansible_collections.sre.runbooks.plugins.module_utils._triage import classify, root_blockers

    limits = dict(idle_after=1e9, idle_in_transaction_after=1e9, long_query_after=1e9)
    rows = [_activity(1), _activity(2, [1], lock_wait=3.0, query_s=60.0), _activity(3, [2], lock_wait=50.0)]
    dummy, chains = classify(rows, own_pid=99, limits=limits)
    assert [(c["root_pid"], c["blocked_pids"], c["wait_s"], c["blocking_s"]) for c in chains] == [(1, [2, 3], 50.0, 3.0)]
    by_pid = dict((r["pid"], r) for r in rows)
    assert root_blockers(chains, by_pid, 2) == [1]
    assert root_blockers(chains, by_pid, 3) == []  # blocking for 3 s is not over blocked_after=3
    # before PostgreSQL 14 (no waitstart) the wait is the waiting query's age
    old = [_activity(1, known=False), _activity(2, [1], query_s=5.0, known=False)]
    dummy, chains = classify(old, own_pid=99, limits=limits)
    assert chains[0]["blocking_s"] == 5.0 and root_blockers(chains, dict((r["pid"], r) for r in old), 4) == [1]
    # a cycle (deadlock not yet broken) and the pids waiting on it: every root is itself blocked, none is picked
    cycle = [_activity(5, [6], lock_wait=9.0), _activity(6, [5], lock_wait=9.0), _activity(7, [5], lock_wait=9.0)]
    dummy, chains = classify(cycle, own_pid=99, limits=limits)
    assert chains and root_blockers(chains, dict((r["pid"], r) for r in cycle), 1) == []
    # a root the login cannot see (a prepared transaction's pid 0) is never picked
    assert root_blockers([{"root_pid": 0, "blocked_pids": [2], "blocking_s": 9.0}], by_pid, 1) == []
