#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_slow_queries
short_description: Find slow PostgreSQL queries, optionally cancel runaway ones and set the slow query log
version_added: 0.1.0
description:
  - Reports the top statements of C(pg_stat_statements) when the extension is installed in the database it
    connects to (and loaded), the active queries by duration with the locks they wait for, and the tables of that
    database read mostly by sequential scans, each with an index hint.
  - Query texts are cut to O(query_length) and, with O(redact_literals=true), their literals are replaced by C(?)
    (C(pg_stat_statements) already normalises most statements, but not utility statements such as
    C(ALTER ROLE ... PASSWORD), and C(pg_stat_activity) shows queries as sent).
  - With O(cancel_after) it cancels (C(pg_cancel_backend)) the queries of client backends active for longer than
    that, optionally terminating those whose query is still running after about 2 seconds. It never touches its
    own session, any backend that is not a C(client backend) (walsenders, autovacuum, background and parallel
    workers), nor superusers' sessions unless O(include_superusers=true), nor a session whose C(application_name)
    matches O(protected_applications) or whose query matches O(protected_queries) (backups, migrations,
    replication clients; listed in the finding C(protected)). At most O(terminate_limit) sessions are signalled in
    one run.
  - A query is only signalled while the backend is still the session that was found and still runs the very
    query that was found; the C(pg_cancel_backend) and C(pg_terminate_backend) statements match the pid together
    with its C(backend_start) and the C(query_start), so a pid reused by a new connection is never hit.
  - With O(log_min_duration_statement) it sets that setting with C(ALTER SYSTEM) and C(pg_reload_conf()) when it
    differs from the current value.
  - An unreachable server is a result (RV(status=unreachable)), not a failed task, unless O(fail_on) says so.
    A C(too many clients) error is RV(status=critical) with the finding C(saturated).
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description:
      - In check mode nothing is cancelled, terminated or set; RV(would_cancel) lists the queries that would be
        cancelled and RV(settings_changed) the settings that would change.
  diff_mode:
    support: full
    description: Returns the settings before and after when O(log_min_duration_statement) changes one.
options:
  top:
    description: How many statements of C(pg_stat_statements) and how many sequentially scanned tables to list.
    type: int
    default: 10
  order_by:
    description: Which statements are the top ones.
    type: str
    choices: [total_time, mean_time, calls]
    default: total_time
  query_length:
    description: Query texts are cut to this many characters.
    type: int
    default: 200
  redact_literals:
    description: Replace the literals (strings, numbers) of the returned query texts by C(?).
    type: bool
    default: true
  long_query_after:
    description:
      - An active query running for longer than this is a C(long_running) finding. Seconds or V(90s), V(5m), V(2h).
    type: str
    default: 5m
  active_limit:
    description: At most this many active queries are listed in RV(active), the longest running first.
    type: int
    default: 50
  query_memory:
    description:
      - Read the private memory of each active query's backend (its C(RssAnon) in C(/proc/<pid>/status), that is sorts,
        hashes, C(work_mem); not the shared buffers) when the database server runs on the host the module runs on.
      - The server is taken for this host's only when the module's own backend is a C(postgres) process here whose
        title names the session's user and database, and a pid is read only when it is a child of the same
        postmaster. A server in another container, host or pid namespace is not measured
        (C(measured=false) in RV(query_memory), with the reason).
    type: bool
    default: true
  memory_heavy_mb:
    description:
      - An active query whose backend holds at least this many MB of private memory is a C(memory_heavy_query)
        finding (warning).
    type: int
    default: 256
  memory_heavy_top:
    description: How many active queries RV(memory_heavy) lists, the heaviest first.
    type: int
    default: 5
  seq_scan_min_rows:
    description:
      - A table is listed in RV(seq_scan_tables) when it has at least this many live rows, its sequential scans read
        at least this many rows on average, and it was scanned sequentially more often than through an index.
    type: int
    default: 10000
  seq_scan_min_scans:
    description: And when it was scanned sequentially at least this many times.
    type: int
    default: 10
  cancel_after:
    description:
      - Cancel the queries of client backends active for longer than this (seconds or V(90s), V(5m), V(2h)).
        Not set (the default), nothing is cancelled.
    type: str
  terminate_if_cancel_fails:
    description:
      - Terminate (C(pg_terminate_backend)) the sessions whose query still runs about 2 seconds after the cancel.
    type: bool
    default: false
  include_superusers:
    description: Also cancel superusers' queries.
    type: bool
    default: false
  terminate_limit:
    description:
      - At most this many sessions are cancelled (and terminated) in one run, the longest running first; more is a
        warning C(terminate_limit) finding. The same cap as M(sre.runbooks.pg_triage)'s.
    type: int
    default: 50
  databases:
    description: Only cancel queries in these databases (all by default).
    type: list
    elements: str
    default: []
  users:
    description: Only cancel queries of these users (all by default).
    type: list
    elements: str
    default: []
  applications:
    description: Only cancel queries of sessions with these C(application_name) values (all by default).
    type: list
    elements: str
    default: []
  log_min_duration_statement:
    description:
      - Set C(log_min_duration_statement) to this many milliseconds with C(ALTER SYSTEM) and reload the
        configuration, when it differs (V(-1) turns the slow query log off, V(0) logs every statement).
        Not set (the default), the setting is left as it is.
      - Needs a superuser, or C(ALTER SYSTEM) granted on the parameter.
    type: int
  fail_on:
    description: Fail the task when the status reaches this level (V(unreachable) counts as critical).
    type: str
    choices: [never, warning, critical]
    default: never
extends_documentation_fragment:
  - sre.runbooks.postgres
  - sre.runbooks.pg_protected
notes:
  - C(pg_stat_statements) needs C(shared_preload_libraries = 'pg_stat_statements') and
    C(CREATE EXTENSION pg_stat_statements) in the database the module connects to; it covers every database.
    Sequential scan statistics are those of the connected database only.
  - Seeing other users' queries needs C(pg_read_all_stats) (or a superuser); cancelling them needs
    C(pg_signal_backend) (or a superuser).
seealso:
  - name: pg_stat_statements
    description: The PostgreSQL documentation of the extension the module reads.
    link: https://www.postgresql.org/docs/current/pgstatstatements.html
  - module: sre.runbooks.pg_triage
"""

EXAMPLES = r"""
- name: Find the slow queries of the app database
  sre.runbooks.pg_slow_queries:
    login_unix_socket: /var/run/postgresql
    login_user: postgres
    login_db: saasresto
    top: 10
  register: slow

- name: Cancel queries running for more than 5 minutes and log statements slower than 500 ms
  sre.runbooks.pg_slow_queries:
    login_unix_socket: /var/run/postgresql
    login_user: postgres
    login_db: saasresto
    cancel_after: 5m
    terminate_if_cancel_fails: true
    log_min_duration_statement: 500

- name: Through the app's DATABASE_URL, failing on a warning
  sre.runbooks.pg_slow_queries:
    dsn: "{{ vault_database_url }}"
    fail_on: warning
"""

RETURN = r"""
status:
  description: V(ok), V(warning), V(critical) or V(unreachable).
  returned: always
  type: str
findings:
  description: What is wrong or worth knowing, as C({severity, code, message}).
  returned: always
  type: list
  elements: dict
  sample:
    - severity: warning
      code: long_running
      message: "1 queries active for more than 300s (pids 4242)"
server_version:
  description: The server version (C(server_version)); null when unreachable.
  returned: always
  type: str
pg_stat_statements:
  description:
    - C(loaded) (in C(shared_preload_libraries)), C(installed) (the extension exists in the connected database),
      C(version) and C(schema) of the extension (null when not installed).
  returned: always
  type: dict
  sample: {loaded: true, installed: true, version: "1.10", schema: public}
statements:
  description:
    - The top O(top) statements of C(pg_stat_statements) by O(order_by), as C({queryid, user, database, calls,
      total_ms, mean_ms, max_ms, rows, pct_total_time, query}); empty when the extension is not usable.
  returned: always
  type: list
  elements: dict
active:
  description:
    - Active queries of client backends, the longest running first (at most O(active_limit)), as C({pid, user,
      database, application, superuser, duration_s, wait_event, blocked_by, query, memory_bytes}); C(blocked_by) lists
      the pids holding the lock the query waits for; C(memory_bytes) is the backend's private memory (null when not
      measured, see O(query_memory)).
  returned: always
  type: list
  elements: dict
memory_heavy:
  description:
    - The active queries whose backends hold the most private memory, the heaviest first (at most
      O(memory_heavy_top)), with the keys of RV(active); empty when nothing was measured.
  returned: always
  type: list
  elements: dict
query_memory:
  description: Whether and how much of the active queries' backend memory was read on this host.
  returned: always
  type: dict
  sample: {measured: true, reason: null, total_bytes: 734003200}
  contains:
    measured:
      description: The memory of the active queries' backends was read on this host.
      returned: always
      type: bool
    reason:
      description: Why it was not (null when it was).
      returned: always
      type: str
    total_bytes:
      description: The sum of their private memory (null when not measured).
      returned: always
      type: int
seq_scan_tables:
  description:
    - Tables of the connected database read mostly by sequential scans, the most rows read first, as
      C({schema, table, seq_scan, seq_tup_read, idx_scan, n_live_tup, hint}).
  returned: always
  type: list
  elements: dict
settings:
  description:
    - Settings that matter for slow queries as C(SHOW) prints them (C(log_min_duration_statement),
      C(statement_timeout), C(lock_timeout), C(log_lock_waits), C(track_io_timing), C(track_activity_query_size),
      C(shared_preload_libraries), C(pg_stat_statements.track), C(pg_stat_statements.max)).
  returned: always
  type: dict
  sample: {log_min_duration_statement: "500ms", statement_timeout: "0"}
would_cancel:
  description:
    - Pids whose query is over O(cancel_after) and may be cancelled, at most O(terminate_limit) (in check mode
      nothing is touched).
  returned: always
  type: list
  elements: int
cancelled:
  description: Pids whose query was cancelled.
  returned: always
  type: list
  elements: int
terminated:
  description: Pids terminated because their query still ran after the cancel.
  returned: always
  type: list
  elements: int
settings_changed:
  description:
    - Settings set (in check mode, that would be set) as C({name, before, after}), values in the setting's unit
      (milliseconds).
  returned: always
  type: list
  elements: dict
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
error_category:
  description:
    - Why the server was unreachable, V(dns), V(refused), V(timeout), V(auth), V(ssl), V(too_many_connections) or
      V(other); null when reachable.
  returned: always
  type: str
error:
  description: The connection error (never with the password); null when reachable.
  returned: always
  type: str
"""

from ansible_collections.sre.runbooks.plugins.module_utils._common import FAIL_ON_CHOICES, parse_duration
from ansible_collections.sre.runbooks.plugins.module_utils._pgmodule import PgModule, protected_argument_spec
from ansible_collections.sre.runbooks.plugins.module_utils._slow_queries import ORDER_COLUMNS, SlowQueries, empty_result


def argument_spec():
    """The options of the module; PgModule merges them with postgres_argument_spec() (the connection)."""
    spec = protected_argument_spec()  # protected_applications, protected_queries (doc fragment pg_protected)
    spec.update(
        top=dict(type="int", default=10),
        order_by=dict(type="str", choices=list(ORDER_COLUMNS), default="total_time"),
        query_length=dict(type="int", default=200),
        redact_literals=dict(type="bool", default=True),
        long_query_after=dict(type="str", default="5m"),
        active_limit=dict(type="int", default=50),
        query_memory=dict(type="bool", default=True),
        memory_heavy_mb=dict(type="int", default=256),
        memory_heavy_top=dict(type="int", default=5),
        seq_scan_min_rows=dict(type="int", default=10000),
        seq_scan_min_scans=dict(type="int", default=10),
        cancel_after=dict(type="str"),
        terminate_if_cancel_fails=dict(type="bool", default=False),
        include_superusers=dict(type="bool", default=False),
        terminate_limit=dict(type="int", default=50),
        databases=dict(type="list", elements="str", default=[]),
        users=dict(type="list", elements="str", default=[]),
        applications=dict(type="list", elements="str", default=[]),
        log_min_duration_statement=dict(type="int"),
        fail_on=dict(type="str", choices=FAIL_ON_CHOICES, default="never"),
    )
    return spec


def check_options(p):
    """Seconds of the duration options; raises ValueError with the option named."""
    limits = {}
    for name in ("long_query_after", "cancel_after"):
        try:
            limits[name] = parse_duration(p[name])
        except ValueError as exc:
            raise ValueError("%s: %s" % (name, exc))
    for name, low in (("top", 0), ("query_length", 1), ("active_limit", 0), ("seq_scan_min_rows", 0),
                      ("seq_scan_min_scans", 1), ("terminate_limit", 0), ("memory_heavy_mb", 1),
                      ("memory_heavy_top", 0)):
        if p[name] < low:
            raise ValueError("%s must be at least %d" % (name, low))
    if p["log_min_duration_statement"] is not None and p["log_min_duration_statement"] < -1:
        raise ValueError("log_min_duration_statement must be -1 (off), 0 (every statement) or milliseconds")
    return limits


def main():
    pg = PgModule(argument_spec(), empty_result, supports_check_mode=True)
    try:
        limits = check_options(pg.params)
    except ValueError as exc:
        pg.fail("Checking the options: %s" % exc)
    pg.run(SlowQueries(pg, limits))


if __name__ == "__main__":
    main()
