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
    workers), nor superusers' sessions unless O(include_superusers=true). A query is only signalled while the
    backend still runs the very query that was found (same C(query_start)).
  - With O(log_min_duration_statement) it sets that setting with C(ALTER SYSTEM) and C(pg_reload_conf()) when it
    differs from the current value.
  - An unreachable server is a result (RV(status=unreachable)), not a failed task, unless O(fail_on) says so.
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
      database, application, superuser, duration_s, wait_event, blocked_by, query}); C(blocked_by) lists the pids
      holding the lock the query waits for.
  returned: always
  type: list
  elements: dict
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
  description: Pids whose query is over O(cancel_after) and may be cancelled (in check mode nothing is touched).
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

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._common import (
    FAIL_ON_CHOICES,
    Findings,
    fail_message,
    parse_duration,
    should_fail,
)
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import (
    HAS_PSYCOPG2,
    PgConnectError,
    connect,
    postgres_argument_spec,
    scrub,
)
from ansible_collections.sre.runbooks.plugins.module_utils._slow_queries import (
    cancel_targets,
    clean_query,
    seq_scan_hint,
    version_tuple,
)

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:
    pass  # reported with missing_required_lib in main()

APPLICATION_NAME = "sre.runbooks pg_slow_queries"
# every query of the module carries this alias, so its own statements are left out of the top statements
MARK = "sre_runbooks_pg_slow_queries"
SHOWN_SETTINGS = ["log_min_duration_statement", "statement_timeout", "lock_timeout", "log_lock_waits",
                  "track_io_timing", "track_activity_query_size", "shared_preload_libraries",
                  "pg_stat_statements.track", "pg_stat_statements.max"]
ORDER_COLUMNS = {"total_time": "total", "mean_time": "mean", "calls": "calls"}

SETTINGS_SQL = """SELECT current_setting('server_version') AS """ + MARK + """,
       pg_backend_pid(),
       (SELECT json_object_agg(name, current_setting(name)) FROM pg_settings WHERE name = ANY(%s)),
       (SELECT setting::int FROM pg_settings WHERE name = 'log_min_duration_statement'),
       (SELECT json_build_object('version', e.extversion, 'schema', n.nspname)
          FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements')"""

ACTIVITY_SQL = """SELECT a.pid AS """ + MARK + """, a.usename, a.datname, a.application_name, a.backend_type, a.state,
       EXTRACT(EPOCH FROM clock_timestamp() - a.query_start)::float8, a.query_start,
       a.wait_event_type, a.wait_event,
       CASE WHEN a.state = 'active' THEN a.query END,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END,
       COALESCE(r.rolsuper, false)
FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE (a.backend_type = 'client backend' OR (a.backend_type IS NULL AND a.usesysid IS NOT NULL))
  AND a.pid <> pg_backend_pid()"""
# (other users' sessions show no backend_type nor state to a login without pg_read_all_stats: counted as hidden)
ACTIVITY_COLUMNS = ("pid", "user", "database", "application", "backend_type", "state", "duration_s", "query_start",
                    "wait_event_type", "wait_event", "query", "blocked_by", "superuser")
ACTIVE_KEYS = ("pid", "user", "database", "application", "superuser", "duration_s", "wait_event", "blocked_by",
               "query")

SEQ_SCAN_SQL = """SELECT schemaname AS """ + MARK + """, relname, seq_scan, seq_tup_read, idx_scan, n_live_tup
FROM pg_stat_user_tables
WHERE seq_scan >= %(scans)s AND n_live_tup >= %(rows)s AND seq_scan > COALESCE(idx_scan, 0)
  AND seq_tup_read / seq_scan >= %(rows)s
ORDER BY seq_tup_read DESC, schemaname, relname
LIMIT %(top)s"""
SEQ_SCAN_COLUMNS = ("schema", "table", "seq_scan", "seq_tup_read", "idx_scan", "n_live_tup")

# Signal only a backend still running the query that was found (same pid, same query_start).
SIGNAL_SQL = """SELECT a.pid AS """ + MARK + """, {function}(a.pid)
FROM pg_stat_activity a JOIN unnest(%s::int[], %s::timestamptz[]) AS t(pid, query_start)
  ON a.pid = t.pid AND a.query_start = t.query_start
WHERE a.state = 'active'"""
STILL_RUNNING_SQL = """SELECT a.pid AS """ + MARK + """
FROM pg_stat_activity a JOIN unnest(%s::int[], %s::timestamptz[]) AS t(pid, query_start)
  ON a.pid = t.pid AND a.query_start = t.query_start
WHERE a.state = 'active'"""


def empty_result():
    return dict(
        status="ok", findings=[], server_version=None,
        pg_stat_statements=dict(loaded=False, installed=False, version=None, schema=None),
        statements=[], active=[], seq_scan_tables=[], settings={}, would_cancel=[], cancelled=[], terminated=[],
        settings_changed=[], queries=[], error_category=None, error=None,
    )


def _round(value, digits=3):
    return None if value is None else round(float(value), digits)


def _pids(pids):
    pids = list(pids)
    return ", ".join(str(p) for p in pids[:10]) + (", ..." if len(pids) > 10 else "")


def _fmt(seconds):
    return "%g" % seconds


class SlowQueries:
    def __init__(self, module, limits):
        self.module = module
        self.params = module.params
        self.limits = limits
        self.result = empty_result()
        self.findings = Findings()
        self.conn = None
        self.rows = []
        self.lmds = None
        self.diff = None

    def _run(self, query, args=None):
        with self.conn.cursor() as cur:
            cur.execute(query, args)
            text = cur.query.decode("utf-8", "replace") if cur.query else str(query)
            self.result["queries"].append(text)
            return cur.fetchall() if cur.description else []

    def _clean(self, text):
        return clean_query(text, self.params["query_length"], self.params["redact_literals"])

    def run(self):
        try:
            self.conn = connect(self.params, application_name=APPLICATION_NAME, autocommit=True)
        except PgConnectError as exc:
            return self.unreachable(exc)
        try:
            self.read_settings()
            self.statements()
            self.activity()
            self.seq_scans()
            self.cancel()
            self.set_log_min_duration()
        finally:
            self.conn.close()
        self.result["findings"] = self.findings.as_list()
        self.result["status"] = self.findings.status()
        return self.result

    def unreachable(self, exc):
        res = self.result
        res.update(error_category=exc.category, error=exc.message)
        severity_base = "critical" if exc.category == "too_many_connections" else "unreachable"
        self.findings.add("critical", "unreachable", "cannot connect (%s): %s" % (exc.category, exc.message))
        res["findings"] = self.findings.as_list()
        res["status"] = self.findings.status(base=severity_base)
        return res

    # ------------------------------------------------------------------ reading

    def read_settings(self):
        res = self.result
        version, dummy, settings, lmds, ext = self._run(SETTINGS_SQL, (SHOWN_SETTINGS,))[0]
        res["server_version"] = version
        res["settings"] = dict(settings or {})
        self.lmds = lmds
        libraries = [lib.strip().strip('"') for lib in (res["settings"].get("shared_preload_libraries") or "").split(",")]
        pgss = res["pg_stat_statements"]
        # shared_preload_libraries is hidden from ordinary users; the extension's own settings are not
        pgss["loaded"] = "pg_stat_statements" in libraries or "pg_stat_statements.max" in res["settings"]
        if ext:
            pgss.update(installed=True, version=ext["version"], schema=ext["schema"])
        if lmds is not None and lmds < 0 and self.params["log_min_duration_statement"] is None:
            self.findings.add("info", "slow_query_log_off", "log_min_duration_statement is -1: slow statements are not "
                              "logged (set it, for example to 500 ms, to find them in the server log)")

    def statements(self):
        pgss = self.result["pg_stat_statements"]
        add = self.findings.add
        if not pgss["loaded"]:
            add("info", "pg_stat_statements_missing", "pg_stat_statements is not loaded: add it to "
                "shared_preload_libraries (needs a restart) and CREATE EXTENSION pg_stat_statements for statement "
                "statistics")
            return
        if not pgss["installed"]:
            add("info", "pg_stat_statements_missing", "pg_stat_statements is loaded but not installed in this "
                "database: CREATE EXTENSION pg_stat_statements for statement statistics")
            return
        if self.params["top"] == 0:
            return
        prefix = "" if version_tuple(pgss["version"]) < (1, 8) else "_exec"
        cols = dict(total=sql.Identifier("total%s_time" % prefix), mean=sql.Identifier("mean%s_time" % prefix),
                    max=sql.Identifier("max%s_time" % prefix))
        order = ORDER_COLUMNS[self.params["order_by"]]
        query = sql.SQL(
            "SELECT s.queryid AS {mark}, r.rolname, d.datname, s.calls, s.{total}, s.{mean}, s.{max}, s.rows, s.query,"
            " 100.0 * s.{total} / NULLIF(sum(s.{total}) OVER (), 0)"
            " FROM {schema}.pg_stat_statements s"
            " LEFT JOIN pg_roles r ON r.oid = s.userid LEFT JOIN pg_database d ON d.oid = s.dbid"
            " WHERE s.query NOT LIKE %s"
            " ORDER BY {order} DESC NULLS LAST, s.queryid LIMIT %s").format(
            mark=sql.Identifier(MARK), schema=sql.Identifier(pgss["schema"]),
            order=sql.Identifier("calls") if order == "calls" else cols[order], **cols)
        try:
            rows = self._run(query, ("%" + MARK + "%", self.params["top"]))
        except psycopg2.Error as exc:
            add("info", "pg_stat_statements_unreadable", "cannot read pg_stat_statements: %s"
                % scrub(str(exc).strip(), [self.params["login_password"]]))
            return
        out = []
        for queryid, user, database, calls, total, mean, top_ms, rows_, text, pct in rows:
            out.append(dict(queryid=queryid, user=user, database=database, calls=calls, total_ms=_round(total),
                            mean_ms=_round(mean), max_ms=_round(top_ms), rows=rows_, pct_total_time=_round(pct, 1),
                            query=self._clean(text)))
        self.result["statements"] = out
        if out:
            first = out[0]
            add("info", "top_statement", "top statement by %s: %s ms in %s calls (mean %s ms, %s%% of the time) in %s: %s"
                % (self.params["order_by"].replace("_", " "), first["total_ms"], first["calls"], first["mean_ms"],
                   first["pct_total_time"], first["database"], (first["query"] or "")[:100]))

    def activity(self):
        rows = [dict(zip(ACTIVITY_COLUMNS, row)) for row in self._run(ACTIVITY_SQL)]
        self.rows = [r for r in rows if r["state"] == "active"]
        self.rows.sort(key=lambda r: (-(r["duration_s"] or 0), r["pid"]))
        for row in self.rows:
            row["duration_s"] = _round(row["duration_s"])
            row["wait_event"] = ("%s:%s" % (row["wait_event_type"], row["wait_event"])) if row["wait_event"] else None
            row["blocked_by"] = sorted(row["blocked_by"] or [])
            row["query"] = self._clean(row["query"])
        self.result["active"] = [dict((k, r[k]) for k in ACTIVE_KEYS) for r in self.rows[:self.params["active_limit"]]]
        add, lim = self.findings.add, self.limits
        long_running = [r["pid"] for r in self.rows if (r["duration_s"] or 0) > lim["long_query_after"]]
        if long_running:
            add("warning", "long_running", "%d queries active for more than %ss (pids %s)"
                % (len(long_running), _fmt(lim["long_query_after"]), _pids(long_running)))
        waiting = [r for r in self.rows if r["blocked_by"]]
        if waiting:
            holders = sorted(set(p for r in waiting for p in r["blocked_by"]))
            add("warning", "lock_waits", "%d active queries wait for a lock (pids %s) held by pids %s"
                % (len(waiting), _pids(r["pid"] for r in waiting), _pids(holders)))
        if any(r["state"] is None for r in rows):
            add("info", "limited_visibility", "the login user cannot see the queries of every session "
                "(grant pg_read_all_stats)")

    def seq_scans(self):
        p = self.params
        if p["top"] == 0:
            return
        rows = self._run(SEQ_SCAN_SQL, dict(scans=p["seq_scan_min_scans"], rows=p["seq_scan_min_rows"], top=p["top"]))
        tables = []
        for row in rows:
            table = dict(zip(SEQ_SCAN_COLUMNS, row))
            table["hint"] = seq_scan_hint(table, self.result["statements"])
            tables.append(table)
        self.result["seq_scan_tables"] = tables
        if tables:
            self.findings.add("info", "seq_scans", "%d tables read mostly by sequential scans (%s): see the index hints"
                              % (len(tables), ", ".join("%s.%s" % (t["schema"], t["table"]) for t in tables[:5])))

    # ------------------------------------------------------------------ acting

    def _signal(self, function, rows):
        if not rows:
            return []
        query = sql.SQL(SIGNAL_SQL).format(function=sql.Identifier(function))
        done = self._run(query, ([r["pid"] for r in rows], [r["query_start"] for r in rows]))
        return sorted(pid for pid, ok in done if ok)

    def _still_running(self, rows, timeout):
        deadline = time.time() + timeout
        while True:
            left = self._run(STILL_RUNNING_SQL, ([r["pid"] for r in rows], [r["query_start"] for r in rows]))
            pids = set(row[0] for row in left)
            if not pids or time.time() >= deadline:
                return [r for r in rows if r["pid"] in pids]
            time.sleep(0.1)

    def cancel(self):
        p, res = self.params, self.result
        after = self.limits.get("cancel_after")
        if after is None:
            return
        targets = cancel_targets(self.rows, after, p["include_superusers"], p["databases"], p["users"],
                                 p["applications"])
        res["would_cancel"] = sorted(r["pid"] for r in targets)
        if not targets or self.module.check_mode:
            return
        res["cancelled"] = self._signal("pg_cancel_backend", targets)
        signalled = [r for r in targets if r["pid"] in res["cancelled"]]
        stuck = self._still_running(signalled, 2.0) if signalled else []
        if stuck and p["terminate_if_cancel_fails"]:
            res["terminated"] = self._signal("pg_terminate_backend", stuck)
            gone_deadline = time.time() + 2.0
            while res["terminated"] and time.time() < gone_deadline:
                if not self._run("SELECT count(*) AS " + MARK + " FROM pg_stat_activity WHERE pid = ANY(%s)",
                                 (res["terminated"],))[0][0]:
                    break
                time.sleep(0.1)
            stuck = [r for r in stuck if r["pid"] not in res["terminated"]]
        add = self.findings.add
        if res["cancelled"]:
            add("info", "cancelled", "cancelled the queries of %d sessions running for more than %ss (pids %s)"
                % (len(res["cancelled"]), _fmt(after), _pids(res["cancelled"])))
        if res["terminated"]:
            add("info", "terminated", "terminated %d sessions whose query survived the cancel (pids %s)"
                % (len(res["terminated"]), _pids(res["terminated"])))
        if stuck:
            add("warning", "cancel_failed", "%d queries still run after the cancel (pids %s)%s"
                % (len(stuck), _pids(r["pid"] for r in stuck),
                   "" if p["terminate_if_cancel_fails"] else ": terminate_if_cancel_fails ends their sessions"))

    def set_log_min_duration(self):
        wanted = self.params["log_min_duration_statement"]
        if wanted is None or wanted == self.lmds:
            return
        res = self.result
        change = dict(name="log_min_duration_statement", before=self.lmds, after=wanted)
        res["settings_changed"] = [change]
        self.diff = dict(before="log_min_duration_statement = %s\n" % self.lmds,
                         after="log_min_duration_statement = %s\n" % wanted)
        if self.module.check_mode:
            return
        self._run("ALTER SYSTEM SET log_min_duration_statement = %s", (wanted,))
        self._run("SELECT pg_reload_conf() AS " + MARK)
        deadline = time.time() + 3.0
        now = None
        while time.time() < deadline:
            # the reload reaches this backend between statements
            now = self._run("SELECT setting::int AS " + MARK + " FROM pg_settings "
                            "WHERE name = 'log_min_duration_statement'")[0][0]
            if now == wanted:
                break
            time.sleep(0.1)
        shown = self._run("SELECT current_setting('log_min_duration_statement') AS " + MARK)[0][0]
        res["settings"]["log_min_duration_statement"] = shown
        if now == wanted:
            self.findings.add("info", "setting_changed", "log_min_duration_statement set from %s to %s ms "
                              "(ALTER SYSTEM, configuration reloaded)" % (self.lmds, wanted))
        else:
            self.findings.add("warning", "setting_not_applied", "log_min_duration_statement was set to %s ms with "
                              "ALTER SYSTEM but this session still sees %s after the reload (is it set for the "
                              "database or the role?)" % (wanted, now))


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        top=dict(type="int", default=10),
        order_by=dict(type="str", choices=list(ORDER_COLUMNS), default="total_time"),
        query_length=dict(type="int", default=200),
        redact_literals=dict(type="bool", default=True),
        long_query_after=dict(type="str", default="5m"),
        active_limit=dict(type="int", default=50),
        seq_scan_min_rows=dict(type="int", default=10000),
        seq_scan_min_scans=dict(type="int", default=10),
        cancel_after=dict(type="str"),
        terminate_if_cancel_fails=dict(type="bool", default=False),
        include_superusers=dict(type="bool", default=False),
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
                      ("seq_scan_min_scans", 1)):
        if p[name] < low:
            raise ValueError("%s must be at least %d" % (name, low))
    if p["log_min_duration_statement"] is not None and p["log_min_duration_statement"] < -1:
        raise ValueError("log_min_duration_statement must be -1 (off), 0 (every statement) or milliseconds")
    return limits


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), changed=False, **empty_result())
    try:
        limits = check_options(p)
    except ValueError as exc:
        module.fail_json(msg="Checking the options: %s" % exc, changed=False, **empty_result())
    job = SlowQueries(module, limits)
    try:
        result = job.run()
    except psycopg2.Error as exc:
        module.fail_json(msg="Looking for slow queries: %s" % scrub(str(exc).strip(), [p["login_password"]]),
                         changed=False, **job.result)
    changed = bool(result["cancelled"] or result["terminated"] or result["settings_changed"]
                   or (module.check_mode and result["would_cancel"]))
    if module._diff and job.diff:
        result["diff"] = job.diff
    if should_fail(result["status"], p["fail_on"]):
        module.fail_json(msg=fail_message("Looking for slow PostgreSQL queries", result["status"], result["findings"]),
                         changed=changed, **result)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
