# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for the pure helpers of pg_triage (plugins/module_utils/_triage.py: backend kinds, chains) and of
plugins/module_utils/_postgres.py (scrubbing, categories, DSN)."""

from __future__ import annotations

import pytest

from conftest import ensure_collection_link

import sys  # noqa: E402

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils._triage import (  # noqa: E402
    CLIENT,
    HIDDEN,
    backend_kind,
    build_chains,
)
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import (  # noqa: E402
    categorize,
    connection_kwargs,
    postgres_argument_spec,
    scrub,
)


@pytest.mark.parametrize("rows, expected", [
    ([], []),
    ([(1, []), (2, None)], []),
    # A <- B
    ([(1, []), (2, [1])], [{"root_pid": 1, "blocked_pids": [2], "depth": 1}]),
    # A <- B <- C, C also queued behind A (soft blocking)
    ([(1, []), (2, [1]), (3, [2])], [{"root_pid": 1, "blocked_pids": [2, 3], "depth": 2}]),
    ([(1, []), (2, [1]), (3, [1, 2])], [{"root_pid": 1, "blocked_pids": [2, 3], "depth": 2}]),
    # two independent roots
    ([(1, []), (2, [1]), (5, []), (6, [5]), (7, [5])],
     [{"root_pid": 1, "blocked_pids": [2], "depth": 1}, {"root_pid": 5, "blocked_pids": [6, 7], "depth": 1}]),
    # one session blocked by two roots
    ([(3, [1, 2])], [{"root_pid": 1, "blocked_pids": [3], "depth": 1}, {"root_pid": 2, "blocked_pids": [3], "depth": 1}]),
    # a long chain
    ([(2, [1]), (3, [2]), (4, [3]), (5, [4])], [{"root_pid": 1, "blocked_pids": [2, 3, 4, 5], "depth": 4}]),
    # a deadlock not yet broken: no infinite loop, every pid reported
    ([(1, [2]), (2, [1])], [{"root_pid": 1, "blocked_pids": [2], "depth": 1}, {"root_pid": 2, "blocked_pids": [1], "depth": 1}]),
])
def test_build_chains(rows, expected):
    chains = build_chains(rows)
    assert [{k: c[k] for k in ("root_pid", "blocked_pids", "depth")} for c in chains] == expected
    assert all(c["lock_modes"] == [] for c in chains)


def test_build_chains_lock_modes():
    chains = build_chains([(2, [1]), (3, [2])], {2: ["ShareLock"], 3: ["RowExclusiveLock", "ShareLock"]})
    assert chains[0]["lock_modes"] == ["RowExclusiveLock", "ShareLock"]


@pytest.mark.parametrize("text, secrets, expected", [
    ("password authentication failed", ["s3cret"], "password authentication failed"),
    ("bad s3cret here", ["s3cret"], "bad ******** here"),
    ("postgresql://app:p%40ss@db:5432/x failed", [], "postgresql://app:********@db:5432/x failed"),
    ("postgres://app:pw@db/x", [], "postgres://app:********@db/x"),
    ("host=db password=hunter2 user=app", [], "host=db password=******** user=app"),
    ("host=db password='with space' user=app", [], "host=db password=******** user=app"),
    ("PASSWORD = abc", [], "PASSWORD = ********"),
    ("nothing secret", [None, ""], "nothing secret"),
    (None, ["x"], None),
])
def test_scrub(text, secrets, expected):
    assert scrub(text, secrets) == expected


@pytest.mark.parametrize("message, category", [
    ('could not translate host name "nohost.invalid" to address: Name or service not known', "dns"),
    ("could not translate host name \"db\" to address: Temporary failure in name resolution", "dns"),
    ('connection to server at "127.0.0.1", port 1 failed: Connection refused\n\tIs the server running', "refused"),
    ('connection to server on socket "/run/postgresql/.s.PGSQL.5432" failed: No such file or directory', "refused"),
    ("connection to server at \"10.0.0.1\", port 5432 failed: timeout expired", "timeout"),
    ('FATAL:  password authentication failed for user "postgres"', "auth"),
    ('FATAL:  no pg_hba.conf entry for host "10.1.1.1", user "app", database "x", no encryption', "auth"),
    ("fe_sendauth: no password supplied", "auth"),
    ('FATAL:  role "nobody" does not exist', "auth"),
    ("server does not support SSL, but SSL was required", "ssl"),
    ("root certificate file \"/x.crt\" does not exist", "ssl"),
    ("FATAL:  sorry, too many clients already", "too_many_connections"),
    ("FATAL:  remaining connection slots are reserved for non-replication superuser connections",
     "too_many_connections"),
    ('FATAL:  database "nodb" does not exist', "other"),
    ('invalid connection option "bogus"', "other"),
    ("", "other"),
    (None, "other"),
])
def test_categorize(message, category):
    assert categorize(message) == category


def _params(**kw):
    spec = postgres_argument_spec()
    params = {k: v.get("default") for k, v in spec.items()}
    params.update(kw)
    return params


@pytest.mark.parametrize("params, expected", [
    (_params(login_host="db", login_password="pw", login_db="app"),
     {"host": "db", "port": "5432", "user": "postgres", "password": "pw", "dbname": "app", "sslmode": "prefer",
      "connect_timeout": "10"}),
    (_params(dsn="postgresql://app:pw@db:6543/appdb?sslmode=require"),
     {"host": "db", "port": "6543", "user": "app", "password": "pw", "dbname": "appdb", "sslmode": "require",
      "connect_timeout": "10"}),
    (_params(dsn="postgresql://app:pw@db:6543/appdb", login_host="other", login_port=7000, login_user="admin",
             login_db="x", ssl_mode="disable"),
     {"host": "other", "port": "7000", "user": "admin", "password": "pw", "dbname": "x", "sslmode": "disable",
      "connect_timeout": "10"}),
    (_params(login_unix_socket="/var/run/postgresql"),
     {"host": "/var/run/postgresql", "port": "5432", "user": "postgres", "sslmode": "prefer", "connect_timeout": "10"}),
    (_params(dsn="host=db user=app connect_timeout=3"),
     {"host": "db", "port": "5432", "user": "app", "sslmode": "prefer", "connect_timeout": "3"}),
])
def test_connection_kwargs(params, expected):
    assert connection_kwargs(params) == expected


def test_argument_spec_is_fresh_and_secret():
    first = postgres_argument_spec()
    first["login_host"]["default"] = "changed"
    second = postgres_argument_spec()
    assert "default" not in second["login_host"]
    assert second["login_password"]["no_log"] is True and second["dsn"]["no_log"] is True


def test_build_chains_deadlock_members_are_roots_of_their_waiters():
    # 1 <-> 2 deadlocked, 3 waits on 1: both members of the cycle block 3
    chains = build_chains([(1, [2]), (2, [1]), (3, [1])])
    assert [(c["root_pid"], c["blocked_pids"]) for c in chains] == [(1, [2, 3]), (2, [1, 3])]


def test_build_chains_long_lock_queue():
    # one holder and 400 waiters, each also queued behind every waiter ahead of it (pg_blocking_pids' soft
    # blocks): one pass over the edges (the old path search never finished from about 30 waiters on)
    waiters = range(2, 402)
    rows = [(1, [])] + [(pid, list(range(1, pid))) for pid in waiters]
    chains = build_chains(rows, {pid: ["ExclusiveLock"] for pid in waiters})
    assert len(chains) == 1
    assert chains[0]["root_pid"] == 1 and chains[0]["blocked_pids"] == list(waiters)
    assert chains[0]["depth"] == 400 and chains[0]["lock_modes"] == ["ExclusiveLock"]


def test_build_chains_deep_chain_without_recursion_limit():
    rows = [(pid, [pid - 1]) for pid in range(2, 5002)]
    chains = build_chains(rows)
    assert chains[0]["root_pid"] == 1 and chains[0]["depth"] == 5000


@pytest.mark.parametrize("backend_type, datid, usesysid, kind", [
    ("client backend", 5, 16385, CLIENT),
    ("client backend", None, None, CLIENT),
    # another role's session seen without pg_read_all_stats: a database and a role, nothing else
    (None, 5, 16385, HIDDEN),
    # the server's own processes seen without pg_read_all_stats: no database (checkpointer, walwriter...: no role;
    # the logical replication launcher: a role)
    (None, None, None, None),
    (None, None, 10, None),
    (None, 5, None, None),
    # visible non-client backends
    ("autovacuum worker", 5, None, None),
    ("walsender", None, 10, None),
    ("parallel worker", 5, 16385, None),
    ("logical replication launcher", None, 10, None),
])
def test_backend_kind(backend_type, datid, usesysid, kind):
    assert backend_kind(backend_type, datid, usesysid) == kind
