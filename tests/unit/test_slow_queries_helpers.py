# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for the pure helpers of plugins/module_utils/_slow_queries.py (redaction, hints, cancel targets,
the memory of backends read from a /proc tree)."""

from __future__ import annotations

import sys

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils._slow_queries import (  # noqa: E402
    backend_memory,
    cancel_targets,
    clean_query,
    seq_scan_hint,
    version_tuple,
)


@pytest.mark.parametrize("text, expected", [
    ("SELECT * FROM t1 WHERE a = 5 AND b = 'x''y' LIMIT 10", "SELECT * FROM t1 WHERE a = ? AND b = ? LIMIT ?"),
    ("ALTER ROLE app PASSWORD 'hunter2'", "ALTER ROLE app PASSWORD ?"),
    ("SELECT E'it\\'s', 'C:\\', 2", "SELECT ?, ?, ?"),
    ("SELECT $$secret$$, $tag$x $$ y$tag$, $1, \"col 5\"", "SELECT ?, ?, $1, \"col 5\""),
    ("select  pg_sleep(30)\n  /* app='web' 5 */", "select pg_sleep(?) /* app='web' 5 */"),
    ("SELECT 1.5e3, .5, x-3, t2.c3", "SELECT ?, ?, x-?, t2.c3"),
    ("INSERT INTO users VALUES ('ana@example.com', 'unterminated", "INSERT INTO users VALUES (?, ?"),
    ("SELECT count(*) FROM big WHERE v = $1", "SELECT count(*) FROM big WHERE v = $1"),
    ("SELECT 'ünïcode' AS naïve", "SELECT ? AS naïve"),
    ("", ""),
])
def test_clean_query_redacts_literals(text, expected):
    assert clean_query(text, 500) == expected


def test_clean_query_keeps_literals_when_asked_and_cuts():
    assert clean_query("SELECT  'a'\n, 5", 500, redact=False) == "SELECT 'a' , 5"
    assert clean_query("SELECT 'secret' FROM t", 10) == "SELECT ? F"
    assert clean_query(None, 10) is None


TABLE = {"schema": "public", "table": "orders", "seq_scan": 40, "seq_tup_read": 4000000, "idx_scan": 2,
         "n_live_tup": 100000}


@pytest.mark.parametrize("statements, example", [
    ([], None),
    ([{"queryid": 7, "query": "CREATE TABLE orders_copy AS SELECT 1"},
      {"queryid": 8, "query": "SELECT * FROM public.orders WHERE customer = $1"}], 8),
    ([{"queryid": 9, "query": "SELECT * FROM orders_archive"}], None),
    ([{"queryid": 10, "query": "UPDATE \"orders\" SET x = $1"}], 10),
    ([{"queryid": 11, "query": "SELECT * FROM a JOIN Orders o ON o.id = a.id"}], 11),
])
def test_seq_scan_hint(statements, example):
    hint = seq_scan_hint(TABLE, statements)
    assert hint.startswith("public.orders: 40 sequential scans read 4000000 rows (100000 per scan, 100000 live rows) "
                           "against 2 index scans; an index")
    if example is None:
        assert "for example" not in hint
    else:
        assert "(for example statement %d: " % example in hint


def _row(pid, duration, **kw):
    row = {"pid": pid, "backend_type": "client backend", "state": "active", "duration_s": duration,
           "superuser": False, "database": "app", "user": "app", "application": "web"}
    row.update(kw)
    return row


@pytest.mark.parametrize("rows, kwargs, expected", [
    ([_row(1, 400), _row(2, 100), _row(3, 900)], {}, [3, 1]),
    ([_row(1, 400, superuser=True)], {}, []),
    ([_row(1, 400, superuser=True)], {"include_superusers": True}, [1]),
    ([_row(1, 400, backend_type="parallel worker"), _row(2, 400, backend_type="autovacuum worker")], {}, []),
    ([_row(1, 400, state="idle in transaction"), _row(2, None)], {}, []),
    ([_row(1, 300)], {}, []),  # over, not at, the threshold
    ([_row(1, 400, database="other"), _row(2, 400)], {"databases": ["app"]}, [2]),
    ([_row(1, 400, user="etl"), _row(2, 400)], {"users": ["etl"]}, [1]),
    ([_row(1, 400, application="psql"), _row(2, 400)], {"applications": ["web"]}, [2]),
])
def test_cancel_targets(rows, kwargs, expected):
    assert [r["pid"] for r in cancel_targets(rows, 300, **kwargs)] == expected


@pytest.mark.parametrize("text, expected", [("1.10", (1, 10)), ("1.8", (1, 8)), (None, ()), ("1.x", ())])
def test_version_tuple(text, expected):
    assert version_tuple(text) == expected
    assert (version_tuple("1.10") >= (1, 8)) is True


def fake_proc(root, pid, title, ppid, rss_anon_kb=None):
    where = root / str(pid)
    where.mkdir()
    (where / "cmdline").write_bytes(title.replace(" ", "\0").encode() + b"\0\0\0")
    lines = ["Name:\tpostgres", "PPid:\t%d" % ppid]
    if rss_anon_kb is not None:
        lines.append("RssAnon:\t  %d kB" % rss_anon_kb)
    (where / "status").write_text("\n".join(lines) + "\n")


def test_backend_memory_reads_the_backends_of_this_server_only(tmp_path):
    fake_proc(tmp_path, 100, "postgres: 15/main: sre saasresto [local] SELECT", 1, 2048)  # this module's backend
    fake_proc(tmp_path, 101, "postgres: 15/main: app saasresto 10.0.0.5(4242) SELECT", 1, 307200)
    fake_proc(tmp_path, 102, "postgres: 15/main: app saasresto 10.0.0.5(4243) idle", 1, 1024)
    fake_proc(tmp_path, 103, "postgres: other: app x [local] SELECT", 77, 999999)  # another postmaster
    measured, reason, sizes = backend_memory(100, "sre", "saasresto", [101, 102, 103, 104], proc=str(tmp_path))
    assert measured is True and reason is None
    assert sizes == {101: 307200 * 1024, 102: 1024 * 1024}  # 103: another server; 104: gone


@pytest.mark.parametrize("title", [
    "postgres: 15/main: sre otherdb [local] SELECT",  # the pid is some backend, not this session's
    "python3 worker.py",  # the pid is not postgres here: another pid namespace
])
def test_backend_memory_is_not_measured_when_the_server_is_not_this_hosts(tmp_path, title):
    fake_proc(tmp_path, 100, title, 1, 2048)
    fake_proc(tmp_path, 101, "postgres: 15/main: app saasresto 10.0.0.5(4242) SELECT", 1, 307200)
    measured, reason, sizes = backend_memory(100, "sre", "saasresto", [101], proc=str(tmp_path))
    assert (measured, sizes) == (False, {}) and "not visible from this host" in reason
    assert backend_memory(555, "sre", "saasresto", [101], proc=str(tmp_path))[0] is False  # no such process
