#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_triage
short_description: Triage PostgreSQL connections (saturation, idle, stuck, blocking) and optionally end sessions
version_added: 0.1.0
description:
  - Reads C(pg_stat_activity) in one query (plus one for the settings and prepared transactions) and reports the
    connection saturation, idle and idle-in-transaction sessions, long running queries, blocking chains up to
    their root blocker, and prepared transactions.
  - With O(terminate) it ends the sessions of the chosen kinds, cancelling their query first when
    O(cancel_first=true). It never touches its own session, any backend that is not a C(client backend)
    (walsenders, autovacuum, background workers), nor superusers' sessions unless O(include_superusers=true).
  - A login that may not inspect other roles' sessions (no superuser, no C(pg_read_all_stats) nor C(pg_monitor),
    typically the app's own C(DATABASE_URL) login) sees of them only their database, role and application.
    They still take connection slots, so they are counted in RV(connections) (state
    C(unknown (insufficient privilege))) and RV(saturation_pct); the finding C(limited_visibility) says how many
    there are. They are never listed in RV(sessions) nor ended.
  - An unreachable server is a result (RV(status=unreachable)), not a failed task, unless O(fail_on) says so.
    A C(too many clients) error is RV(status=critical) with the finding C(saturated).
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description:
      - In check mode nothing is cancelled nor terminated; RV(would_terminate) lists the sessions that would be.
  diff_mode:
    support: none
    description: There is no diff; RV(terminated) and RV(cancelled) say what changed.
options:
  idle_after:
    description:
      - A session idle for longer than this is listed in RV(sessions.idle). Seconds or V(90s), V(5m), V(2h), V(1d).
    type: str
    default: 30m
  idle_in_transaction_after:
    description:
      - A session idle in a transaction (aborted ones included) for longer than this is listed in
        RV(sessions.idle_in_transaction); a prepared transaction older than this is a finding.
    type: str
    default: 5m
  long_query_after:
    description: An active query running for longer than this is listed in RV(sessions.long_running).
    type: str
    default: 5m
  blocked_after:
    description: A blocking chain is reported when one of its sessions has waited for a lock for longer than this.
    type: str
    default: 1m
  saturation_warning:
    description: Saturation, in percent of the non-reserved connection slots, that is a warning.
    type: float
    default: 80
  saturation_critical:
    description: Saturation, in percent of the non-reserved connection slots, that is critical.
    type: float
    default: 95
  terminate:
    description:
      - Kinds of sessions to end. The default (none) only reads.
      - V(idle), V(idle_in_transaction) and V(long_running) are the sessions of RV(sessions); V(blockers) are the
        root pids of RV(blocking).
    type: list
    elements: str
    choices: [idle, idle_in_transaction, long_running, blockers]
    default: []
  cancel_first:
    description:
      - Cancel the running query of the targeted sessions first (C(pg_cancel_backend)), wait up to about 2 seconds,
        then terminate only those still in a targeted state.
    type: bool
    default: true
  terminate_limit:
    description: At most this many sessions are ended in one run (the longest first); more is a warning.
    type: int
    default: 50
  databases:
    description: Only end sessions of these databases (all by default).
    type: list
    elements: str
    default: []
  users:
    description: Only end sessions of these users (all by default).
    type: list
    elements: str
    default: []
  applications:
    description: Only end sessions with these C(application_name) values (all by default).
    type: list
    elements: str
    default: []
  include_superusers:
    description: Also end superusers' sessions.
    type: bool
    default: false
  fail_on:
    description: Fail the task when the status reaches this level (V(unreachable) counts as critical).
    type: str
    choices: [never, warning, critical]
    default: never
extends_documentation_fragment:
  - sre.runbooks.postgres
notes:
  - Ending other users' sessions needs a superuser or a member of C(pg_signal_backend); seeing their state and
    queries needs C(pg_read_all_stats) or C(pg_monitor) (or a superuser).
seealso:
  - name: pg_stat_activity
    description: The PostgreSQL documentation of the view the module reads.
    link: https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ACTIVITY-VIEW
"""

EXAMPLES = r"""
- name: Triage the connections of the app database
  sre.runbooks.pg_triage:
    login_unix_socket: /var/run/postgresql
    login_user: postgres
    login_db: saasresto
  register: triage

- name: Triage through the app's DATABASE_URL and fail on a critical status
  sre.runbooks.pg_triage:
    dsn: "{{ vault_database_url }}"
    fail_on: critical

- name: End the sessions of the app idle for more than 10 minutes or stuck in a transaction
  sre.runbooks.pg_triage:
    login_unix_socket: /var/run/postgresql
    login_user: postgres
    idle_after: 10m
    idle_in_transaction_after: 5m
    terminate: [idle, idle_in_transaction]
    databases: [saasresto]
"""

RETURN = r"""
status:
  description: V(ok), V(warning), V(critical) or V(unreachable).
  returned: always
  type: str
findings:
  description: What is wrong, as C({severity, code, message}).
  returned: always
  type: list
  elements: dict
  sample:
    - severity: critical
      code: saturation
      message: "117 of 117 usable connection slots in use (100%)"
server_version:
  description: The server version (C(server_version)); null when unreachable.
  returned: always
  type: str
max_connections:
  description: The server's C(max_connections); null when unreachable.
  returned: always
  type: int
reserved_connections:
  description: C(superuser_reserved_connections) plus C(reserved_connections) (PostgreSQL 16+); null when unreachable.
  returned: always
  type: int
saturation_pct:
  description:
    - Client backends (other roles' sessions the login may not inspect included) in percent of C(max_connections)
      minus the reserved slots; null when unknown.
  returned: always
  type: float
connections:
  description:
    - Client backends counted C(total), C(by_state), C(by_database), C(by_user), C(by_application), C(by_client).
    - Other roles' sessions the login may not inspect are counted too, under C(unknown (insufficient privilege)) in
      C(by_state) and C(by_client).
  returned: always
  type: dict
sessions:
  description:
    - Sessions over the thresholds, in C(idle), C(idle_in_transaction) (aborted ones included) and C(long_running),
      each a list of C({pid, user, database, application, client, state, duration_s, xact_duration_s, wait_event,
      query}) (query cut to 200 characters, C(duration_s) the time in the state or, when active, of the query).
  returned: always
  type: dict
  contains:
    idle:
      description: Sessions idle for longer than O(idle_after).
      type: list
      elements: dict
    idle_in_transaction:
      description: Sessions idle in a transaction for longer than O(idle_in_transaction_after).
      type: list
      elements: dict
    long_running:
      description: Queries active for longer than O(long_query_after).
      type: list
      elements: dict
blocking:
  description:
    - Blocking chains as C({root_pid, blocked_pids, depth, lock_modes}); C(depth) is the longest wait path from the
      root (A blocks B blocks C is 2), C(lock_modes) the modes the blocked sessions wait for.
  returned: always
  type: list
  elements: dict
prepared_transactions:
  description: Prepared transactions as C({gid, owner, database, age_s}).
  returned: always
  type: list
  elements: dict
oldest_xact_s:
  description: Age in seconds of the oldest open transaction (client backends and prepared transactions); null if none.
  returned: always
  type: float
terminated:
  description: Pids terminated.
  returned: always
  type: list
  elements: int
cancelled:
  description: Pids whose query was cancelled.
  returned: always
  type: list
  elements: int
would_terminate:
  description: Pids chosen to be ended (in check mode nothing is touched).
  returned: always
  type: list
  elements: int
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
    CLIENT,
    HAS_PSYCOPG2,
    HIDDEN,
    PgConnectError,
    backend_kind,
    build_chains,
    connect,
    postgres_argument_spec,
    scrub,
)

try:
    import psycopg2
except ImportError:
    pass  # reported with missing_required_lib in main()

TERMINATE_KINDS = ["idle", "idle_in_transaction", "long_running", "blockers"]
APPLICATION_NAME = "sre.runbooks pg_triage"
HIDDEN_KEY = "unknown (insufficient privilege)"

SETTINGS_SQL = """SELECT current_setting('server_version'),
       current_setting('server_version_num')::int,
       current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int
         + COALESCE((SELECT setting::int FROM pg_settings WHERE name = 'reserved_connections'), 0),
       pg_backend_pid(),
       COALESCE((SELECT json_agg(json_build_object(
                   'gid', gid, 'owner', owner, 'database', database,
                   'age_s', round(EXTRACT(EPOCH FROM clock_timestamp() - prepared)::numeric, 3)) ORDER BY prepared)
                 FROM pg_prepared_xacts), '[]'::json)"""

# pg_locks is read once for all waiting pids (a per-row subquery would read the whole lock table per backend:
# 16 ms instead of 4 ms with 500 backends)
ACTIVITY_SQL = """WITH w AS (SELECT pid, array_agg(DISTINCT mode::text) AS modes FROM pg_locks WHERE NOT granted GROUP BY pid)
SELECT a.pid, a.usename, a.datname, a.application_name,
       CASE WHEN a.client_addr IS NOT NULL THEN host(a.client_addr)
            WHEN a.client_port = -1 THEN 'local' END,
       a.state, a.backend_type,
       EXTRACT(EPOCH FROM clock_timestamp() - a.state_change)::float8,
       EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::float8,
       EXTRACT(EPOCH FROM clock_timestamp() - a.query_start)::float8,
       a.wait_event_type, a.wait_event, left(a.query, 200),
       pg_blocking_pids(a.pid),
       COALESCE(r.rolsuper, false),
       w.modes,
       a.datid, a.usesysid
FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid LEFT JOIN w ON w.pid = a.pid
ORDER BY a.pid"""

ACTIVITY_COLUMNS = ("pid", "user", "database", "application", "client", "state", "backend_type", "state_s", "xact_s",
                    "query_s", "wait_event_type", "wait_event", "query", "blocking_pids", "superuser", "waiting_modes",
                    "datid", "usesysid")
SESSION_KEYS = ("pid", "user", "database", "application", "client", "state", "duration_s", "xact_duration_s",
                "wait_event", "query")


def empty_result():
    return dict(
        status="ok", findings=[], server_version=None, max_connections=None, reserved_connections=None,
        saturation_pct=None,
        connections=dict(total=0, by_state={}, by_database={}, by_user={}, by_application={}, by_client={}),
        sessions=dict(idle=[], idle_in_transaction=[], long_running=[]), blocking=[], prepared_transactions=[],
        oldest_xact_s=None, terminated=[], cancelled=[], would_terminate=[], queries=[], error_category=None,
        error=None,
    )


def _round(value):
    return None if value is None else round(float(value), 3)


def _count(counter, key):
    key = key if key not in (None, "") else "(none)"
    counter[key] = counter.get(key, 0) + 1


def _session(row):
    duration = row["query_s"] if row["state"] == "active" else row["state_s"]
    wait = "%s:%s" % (row["wait_event_type"], row["wait_event"]) if row["wait_event"] else None
    out = dict(row, duration_s=_round(duration), xact_duration_s=_round(row["xact_s"]), wait_event=wait)
    return dict((k, out[k]) for k in SESSION_KEYS)


def classify(rows, own_pid, limits):
    """Sessions over the thresholds (inspectable client backends only) and the blocking chains from activity rows."""
    sessions = dict(idle=[], idle_in_transaction=[], long_running=[])
    for row in rows:
        if row["kind"] != CLIENT or row["pid"] == own_pid:
            continue
        state = row["state"] or ""
        if state == "idle" and (row["state_s"] or 0) > limits["idle_after"]:
            sessions["idle"].append(row)
        elif state.startswith("idle in transaction") and (row["state_s"] or 0) > limits["idle_in_transaction_after"]:
            sessions["idle_in_transaction"].append(row)
        elif state == "active" and (row["query_s"] or 0) > limits["long_query_after"]:
            sessions["long_running"].append(row)
    by_pid = dict((row["pid"], row) for row in rows)
    chains = build_chains([(r["pid"], r["blocking_pids"]) for r in rows if r["pid"] != own_pid],
                          dict((r["pid"], r["waiting_modes"]) for r in rows))
    blocking = [c for c in chains
                if any((by_pid.get(p, {}).get("query_s") or 0) > limits["blocked_after"] for p in c["blocked_pids"])]
    return sessions, blocking


class Triage:
    def __init__(self, module, limits):
        self.module = module
        self.params = module.params
        self.limits = limits
        self.result = empty_result()
        self.findings = Findings()
        self.conn = None
        self.own_pid = None
        self.rows = {}
        self.targets_rows = dict(idle=[], idle_in_transaction=[], long_running=[])

    def _run(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            self.result["queries"].append(cur.query.decode("utf-8", "replace") if cur.query else sql)
            return cur.fetchall() if cur.description else []

    def activity(self):
        rows = [dict(zip(ACTIVITY_COLUMNS, row)) for row in self._run(ACTIVITY_SQL)]
        for row in rows:
            row["kind"] = backend_kind(row["backend_type"], row["datid"], row["usesysid"])
        return rows

    def run(self):
        try:
            self.conn = connect(self.params, application_name=APPLICATION_NAME, autocommit=True)
        except PgConnectError as exc:
            return self.unreachable(exc)
        try:
            self.gather()
            self.act()
        finally:
            self.conn.close()
        self.result["findings"] = self.findings.as_list()
        self.result["status"] = self.findings.status()
        return self.result

    def unreachable(self, exc):
        res = self.result
        res.update(error_category=exc.category, error=exc.message)
        if exc.category == "too_many_connections":
            self.findings.add("critical", "saturated", "the server refuses new connections: %s" % exc.message)
            res["status"] = self.findings.status()
        else:
            self.findings.add("critical", "unreachable", "cannot connect (%s): %s" % (exc.category, exc.message))
            res["status"] = self.findings.status(base="unreachable")
        res["findings"] = self.findings.as_list()
        return res

    def gather(self):
        res, lim, add = self.result, self.limits, self.findings.add
        version, dummy, max_conn, reserved, self.own_pid, prepared = self._run(SETTINGS_SQL)[0]
        rows = self.activity()
        res.update(server_version=version, max_connections=max_conn, reserved_connections=reserved)
        # other roles' sessions the login may not inspect (HIDDEN) take connection slots all the same
        clients = [r for r in rows if r["kind"]]
        hidden = [r for r in clients if r["kind"] == HIDDEN]
        conns = res["connections"]
        conns["total"] = len(clients)
        for row in clients:
            _count(conns["by_state"], HIDDEN_KEY if row["kind"] == HIDDEN else row["state"] or "unknown")
            _count(conns["by_database"], row["database"])
            _count(conns["by_user"], row["user"])
            _count(conns["by_application"], row["application"])
            _count(conns["by_client"], HIDDEN_KEY if row["kind"] == HIDDEN else row["client"])
        usable = max(max_conn - reserved, 1)
        saturation = round(100.0 * len(clients) / usable, 1)
        res["saturation_pct"] = saturation
        detail = "%d of %d usable connection slots in use (%.0f%%)" % (len(clients), usable, saturation)
        if saturation >= self.params["saturation_critical"]:
            add("critical", "saturation", detail)
        elif saturation >= self.params["saturation_warning"]:
            add("warning", "saturation", detail)
        sessions, blocking = classify(rows, self.own_pid, lim)
        self.targets_rows = sessions
        res["sessions"] = dict((k, [_session(r) for r in v]) for k, v in sessions.items())
        res["blocking"] = blocking
        if sessions["idle"]:
            add("info", "idle_sessions", "%d sessions idle for more than %ss" % (len(sessions["idle"]), _fmt(lim["idle_after"])))
        if sessions["idle_in_transaction"]:
            add("warning", "idle_in_transaction", "%d sessions idle in a transaction for more than %ss (pids %s)"
                % (len(sessions["idle_in_transaction"]), _fmt(lim["idle_in_transaction_after"]),
                   _pids(sessions["idle_in_transaction"])))
        if sessions["long_running"]:
            add("warning", "long_running", "%d queries running for more than %ss (pids %s)"
                % (len(sessions["long_running"]), _fmt(lim["long_query_after"]), _pids(sessions["long_running"])))
        kinds = dict((r["pid"], r["kind"]) for r in rows)
        for chain in blocking:
            add("warning", "blocking", "pid %d%s blocks %d sessions (%s), %d deep"
                % (chain["root_pid"], " (a session the login may not inspect nor end)"
                   if kinds.get(chain["root_pid"]) == HIDDEN else "",
                   len(chain["blocked_pids"]), ", ".join(str(p) for p in chain["blocked_pids"]), chain["depth"]))
        res["prepared_transactions"] = prepared or []
        old = [p for p in res["prepared_transactions"] if float(p["age_s"]) > lim["idle_in_transaction_after"]]
        for item in res["prepared_transactions"]:
            item["age_s"] = _round(item["age_s"])
        if old:
            add("warning", "prepared_transactions", "%d prepared transactions older than %ss (%s)"
                % (len(old), _fmt(lim["idle_in_transaction_after"]), ", ".join(p["gid"] for p in old)))
        ages = [r["xact_s"] for r in clients if r["xact_s"] is not None and r["pid"] != self.own_pid]
        ages += [p["age_s"] for p in res["prepared_transactions"]]
        res["oldest_xact_s"] = _round(max(ages)) if ages else None
        self.rows = dict((r["pid"], r) for r in rows)
        if hidden:
            login = (self.rows.get(self.own_pid) or {}).get("user") or "<login>"
            add("warning", "limited_visibility", _hidden_message(hidden, login))

    def _wanted(self, sessions, blocking):
        """{pid: row} of the sessions to end, in the targeted kinds, after the filters."""
        kinds = self.params["terminate"]
        picked = {}
        for kind in ("idle", "idle_in_transaction", "long_running"):
            if kind in kinds:
                for row in sessions[kind]:
                    picked[row["pid"]] = row
        if "blockers" in kinds:
            for chain in blocking:
                row = self.rows.get(chain["root_pid"])
                if row:
                    picked[row["pid"]] = row
        p = self.params
        out = {}
        for pid, row in picked.items():
            if pid == self.own_pid or row["kind"] != CLIENT:
                continue
            if row["superuser"] and not p["include_superusers"]:
                continue
            if p["databases"] and row["database"] not in p["databases"]:
                continue
            if p["users"] and row["user"] not in p["users"]:
                continue
            if p["applications"] and row["application"] not in p["applications"]:
                continue
            out[pid] = row
        return out

    def act(self):
        if not self.params["terminate"]:
            return
        res = self.result
        wanted = self._wanted(self.targets_rows, res["blocking"])
        order = sorted(wanted.values(), key=lambda r: -(_session(r)["duration_s"] or 0))
        limit = self.params["terminate_limit"]
        if len(order) > limit:
            self.findings.add("warning", "terminate_limit", "%d sessions to end, only %d ended (terminate_limit)"
                              % (len(order), limit))
            order = order[:limit]
        pids = sorted(r["pid"] for r in order)
        res["would_terminate"] = pids
        if not pids or self.module.check_mode:
            return
        if self.params["cancel_first"]:
            active = [r["pid"] for r in order if r["state"] == "active"]
            for pid in active:
                if self._run("SELECT pg_cancel_backend(%s)", (pid,))[0][0]:
                    res["cancelled"].append(pid)
            if res["cancelled"]:
                deadline = time.time() + 2.0
                while time.time() < deadline:
                    time.sleep(0.2)
                    now = dict((r["pid"], r) for r in self.activity())
                    if not any(now.get(pid, {}).get("state") == "active" for pid in res["cancelled"]):
                        break
                rows = self.activity()
                self.rows = dict((r["pid"], r) for r in rows)
                sessions, blocking = classify(rows, self.own_pid, self.limits)
                still = self._wanted(sessions, blocking)
                pids = [pid for pid in pids if pid in still]
        for pid in pids:
            if self._run("SELECT pg_terminate_backend(%s)", (pid,))[0][0]:
                res["terminated"].append(pid)
        self._wait_gone(res["terminated"])
        if res["terminated"]:
            self.findings.add("info", "terminated", "terminated %d sessions (pids %s)"
                              % (len(res["terminated"]), ", ".join(str(p) for p in res["terminated"])))

    def _wait_gone(self, pids):
        deadline = time.time() + 2.0
        while pids and time.time() < deadline:
            rows = self._run("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),))
            if rows[0][0] == 0:
                return
            time.sleep(0.1)


def _fmt(seconds):
    return ("%g" % seconds)


def _hidden_message(hidden, login):
    users = {}
    for row in hidden:
        _count(users, row["user"])
    return ("%d sessions of other roles (%s) cannot be inspected by %s: counted in the saturation, but their state, "
            "queries and age are unknown and they are never ended; GRANT pg_monitor TO %s (or pg_read_all_stats) "
            "to see them, and pg_signal_backend to end them"
            % (len(hidden), ", ".join("%s: %d" % item for item in sorted(users.items())), login, login))


def _pids(rows):
    return ", ".join(str(r["pid"]) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        idle_after=dict(type="str", default="30m"),
        idle_in_transaction_after=dict(type="str", default="5m"),
        long_query_after=dict(type="str", default="5m"),
        blocked_after=dict(type="str", default="1m"),
        saturation_warning=dict(type="float", default=80),
        saturation_critical=dict(type="float", default=95),
        terminate=dict(type="list", elements="str", choices=TERMINATE_KINDS, default=[]),
        cancel_first=dict(type="bool", default=True),
        terminate_limit=dict(type="int", default=50),
        databases=dict(type="list", elements="str", default=[]),
        users=dict(type="list", elements="str", default=[]),
        applications=dict(type="list", elements="str", default=[]),
        include_superusers=dict(type="bool", default=False),
        fail_on=dict(type="str", choices=FAIL_ON_CHOICES, default="never"),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), changed=False, **empty_result())
    limits = {}
    try:
        for name in ("idle_after", "idle_in_transaction_after", "long_query_after", "blocked_after"):
            limits[name] = parse_duration(p[name])
    except ValueError as exc:
        module.fail_json(msg="Checking the options: %s" % exc, changed=False, **empty_result())
    if p["terminate_limit"] < 0:
        module.fail_json(msg="Checking the options: terminate_limit must not be negative", changed=False, **empty_result())
    triage = Triage(module, limits)
    try:
        result = triage.run()
    except psycopg2.Error as exc:
        module.fail_json(msg="Triaging the connections: %s" % scrub(str(exc).strip(), [p["login_password"]]),
                         changed=False, **triage.result)
    changed = bool(result["cancelled"] or result["terminated"] or (module.check_mode and result["would_terminate"]))
    if should_fail(result["status"], p["fail_on"]):
        module.fail_json(msg=fail_message("Triaging the PostgreSQL connections", result["status"], result["findings"]),
                         changed=changed, **result)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
