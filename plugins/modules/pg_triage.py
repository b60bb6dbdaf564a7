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
    (walsenders, autovacuum, background workers), nor superusers' sessions unless O(include_superusers=true),
    nor a session whose C(application_name) matches O(protected_applications) or whose query matches
    O(protected_queries) (backups, migrations, replication clients); those are listed in the finding
    C(protected).
  - A session is ended only while it is still the one that was seen; the C(pg_terminate_backend) statement matches
    the pid together with its C(backend_start), and the C(pg_cancel_backend) one also the C(query_start), so a pid
    reused by a new connection in the meantime is never hit. The finding C(terminate_plan) lists each session to
    end with its application, user, database, kind and duration (in its C(sessions) key too).
  - Every blocking chain is listed in RV(blocking), however short the wait; O(blocked_after) decides whether its
    C(blocking) finding is a V(warning) (a session waited longer) or V(info).
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
    description:
      - A blocking chain is a V(warning) finding when one of its sessions has waited for a lock for longer than
        this, otherwise an V(info) one; every chain is listed in RV(blocking) either way.
      - O(terminate=blockers) ends only root blockers (a session that blocks others and waits for no lock itself)
        that have blocked for longer than this (C(blocking_s) of RV(blocking), the longest wait of the sessions
        waiting on the root itself); never a session queued behind another, nor one of a deadlock cycle.
      - A wait is measured from C(pg_locks.waitstart) (PostgreSQL 14+), on older servers from the waiting query's
        start.
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
        root pids of RV(blocking) that wait for no lock themselves and have blocked for longer than O(blocked_after).
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
  - sre.runbooks.pg_protected
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
  description:
    - What is wrong, as C({severity, code, message}).
    - With O(terminate), the V(info) finding C(terminate_plan) lists the sessions to end and C(protected) the ones
      spared by O(protected_applications) and O(protected_queries), each also as a C(sessions) list of
      C({pid, kind, user, database, application, state, duration_s}) (plus C(reason) for the protected ones).
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
    - Every blocking chain, however short the wait, as C({root_pid, blocked_pids, depth, lock_modes, wait_s,
      blocking_s}); C(depth) is the longest wait path from the root (A blocks B blocks C is 2), C(lock_modes) the
      modes the blocked sessions wait for, C(wait_s) the longest lock wait of its blocked sessions in seconds,
      C(blocking_s) how long the root has blocked (the longest wait of the sessions waiting on the root itself).
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

from ansible_collections.sre.runbooks.plugins.module_utils._common import FAIL_ON_CHOICES, parse_duration
from ansible_collections.sre.runbooks.plugins.module_utils._pgmodule import PgModule, protected_argument_spec
from ansible_collections.sre.runbooks.plugins.module_utils._triage import TERMINATE_KINDS, Triage, empty_result


def argument_spec():
    """The options of the module; PgModule merges them with postgres_argument_spec() (the connection)."""
    spec = protected_argument_spec()  # protected_applications, protected_queries (doc fragment pg_protected)
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
    pg = PgModule(argument_spec(), empty_result, supports_check_mode=True)
    p = pg.params
    limits = {}
    try:
        for name in ("idle_after", "idle_in_transaction_after", "long_query_after", "blocked_after"):
            limits[name] = parse_duration(p[name])
    except ValueError as exc:
        pg.fail("Checking the options: %s" % exc)
    if p["terminate_limit"] < 0:
        pg.fail("Checking the options: terminate_limit must not be negative")
    pg.run(Triage(pg, limits))


if __name__ == "__main__":
    main()
