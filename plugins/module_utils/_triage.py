# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the backend of pg_triage.

The pure helpers (backend kinds, blocking chains, classification) are unit tested without a server; ``Triage``
is the PgJob that reads pg_stat_activity and ends the chosen sessions.
Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.sre.runbooks.plugins.module_utils._pgmodule import PgJob, protected_reason
from ansible_collections.sre.runbooks.plugins.module_utils._slow_queries import clean_query

CLIENT = "client"
HIDDEN = "hidden"


def backend_kind(backend_type, datid, usesysid):
    """CLIENT for a client backend, HIDDEN for a session the login may not inspect, None for the rest.

    A login without pg_read_all_stats (pg_monitor) nor superuser sees of other roles' backends only pid, datid,
    usesysid, application_name and the xids: backend_type, state, query, client_addr... are NULL. A row with a
    database and a role is then another role's session (a client backend, or, which cannot be told apart, a
    parallel worker, a logical walsender or a background worker connected to a database). The server's own
    processes have no database (the logical replication launcher has a role, not a database).
    """
    if backend_type == "client backend":
        return CLIENT
    if backend_type is None and datid is not None and usesysid is not None:
        return HIDDEN
    return None


def _components(blockers):
    """Strongly connected components of the "blocked by" graph (iterative Tarjan, no recursion limit).

    Returns them in reverse topological order: every component comes after the components its pids wait for.
    """
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for start in sorted(blockers):
        if start in index:
            continue
        work = [(start, iter(blockers.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, ups = work[-1]
            advanced = False
            for up in ups:
                if up not in index:
                    index[up] = low[up] = counter
                    counter += 1
                    stack.append(up)
                    on_stack.add(up)
                    work.append((up, iter(blockers.get(up, ()))))
                    advanced = True
                    break
                if up in on_stack:
                    low[node] = min(low[node], index[up])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                out.append(component)
    return out


def _merge(into, roots, shift):
    for root, depth in roots.items():
        if depth + shift > into.get(root, -1):
            into[root] = depth + shift


def build_chains(rows, lock_modes=None):
    """Blocking chains from (pid, blocking_pids) rows.

    Returns [{root_pid, blocked_pids, depth, lock_modes}] sorted by root_pid: every pid blocked directly or
    through others by the root, and depth = the longest wait path from the root (A <- B <- C is 2).
    lock_modes maps a blocked pid to the lock modes it waits for.

    Linear in the wait edges times the roots: a lock queue of hundreds of sessions, each also queued behind
    all those ahead of it (pg_blocking_pids' soft blocks), is one pass. A deadlock not yet broken (a cycle)
    has no root: inside it each pid's direct blockers in the cycle stand for its roots, and for the pids
    waiting on it every member of the cycle is a root.
    """
    lock_modes = lock_modes or {}
    blockers = {}
    for pid, blocking in rows:
        if blocking:
            blockers[pid] = sorted(set(blocking) - set([pid]))
    roots_of = {}  # pid -> {root: depth} as seen by the pids waiting on it
    chains = {}
    for component in _components(blockers):
        cyclic = len(component) > 1
        for pid in sorted(component):
            ups = blockers.get(pid)
            if not ups:
                roots_of[pid] = {pid: 0}
                continue
            roots = {}
            for up in ups:
                if up in component:
                    _merge(roots, {up: 0}, 1)
                else:
                    _merge(roots, roots_of.get(up, {up: 0}), 1)
            for root, depth in roots.items():
                chain = chains.setdefault(root, {"root_pid": root, "blocked_pids": set(), "depth": 0,
                                                 "lock_modes": set()})
                chain["blocked_pids"].add(pid)
                chain["depth"] = max(chain["depth"], depth)
                chain["lock_modes"].update(lock_modes.get(pid) or [])
            roots_of[pid] = roots
        if cyclic:
            shared = dict((member, 0) for member in component)
            for member in component:
                _merge(shared, roots_of[member], 0)
            for member in component:
                roots_of[member] = shared
    return [dict(c, blocked_pids=sorted(c["blocked_pids"]), lock_modes=sorted(c["lock_modes"]))
            for dummy, c in sorted(chains.items())]


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
# 16 ms instead of 4 ms with 500 backends). {waitstart}: when the pid began to wait for its lock (PostgreSQL 14+
# has pg_locks.waitstart; before, the wait is taken as the time since its query began). The query text is read
# whole, as the server has it: protected_queries match it; only the redacted, cut text is returned.
ACTIVITY_SQL = """WITH w AS (SELECT pid, array_agg(DISTINCT mode::text) AS modes, {waitstart} AS waitstart
           FROM pg_locks WHERE NOT granted GROUP BY pid)
SELECT a.pid, a.usename, a.datname, a.application_name,
       CASE WHEN a.client_addr IS NOT NULL THEN host(a.client_addr)
            WHEN a.client_port = -1 THEN 'local' END,
       a.state, a.backend_type,
       EXTRACT(EPOCH FROM clock_timestamp() - a.state_change)::float8,
       EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::float8,
       EXTRACT(EPOCH FROM clock_timestamp() - a.query_start)::float8,
       a.wait_event_type, a.wait_event, a.query,
       pg_blocking_pids(a.pid),
       COALESCE(r.rolsuper, false),
       w.modes,
       a.datid, a.usesysid,
       a.backend_start, a.query_start,
       EXTRACT(EPOCH FROM clock_timestamp() - w.waitstart)::float8
FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid LEFT JOIN w ON w.pid = a.pid
ORDER BY a.pid"""
WAITSTART = "min(waitstart)"  # PostgreSQL 14+
NO_WAITSTART = "NULL::timestamptz"

ACTIVITY_COLUMNS = ("pid", "user", "database", "application", "client", "state", "backend_type", "state_s", "xact_s",
                    "query_s", "wait_event_type", "wait_event", "query", "blocking_pids", "superuser", "waiting_modes",
                    "datid", "usesysid", "backend_start", "query_start", "lock_wait_s")
SESSION_KEYS = ("pid", "user", "database", "application", "client", "state", "duration_s", "xact_duration_s",
                "wait_event", "query")
PLAN_KEYS = ("pid", "kind", "user", "database", "application", "state", "duration_s")

# A session is signalled only while it is still the one that was seen: same pid AND same backend_start (a pid
# reused by a new connection has another), and for a cancel the same query_start too (the same query).
TERMINATE_SQL = """SELECT a.pid, pg_terminate_backend(a.pid) FROM pg_stat_activity a
WHERE (a.pid, a.backend_start) IN (SELECT * FROM unnest(%s::int[], %s::timestamptz[]))
ORDER BY a.pid"""
CANCEL_SQL = """SELECT a.pid, pg_cancel_backend(a.pid) FROM pg_stat_activity a
WHERE (a.pid, a.backend_start, a.query_start) IN (SELECT * FROM unnest(%s::int[], %s::timestamptz[], %s::timestamptz[]))
  AND a.state = 'active'
ORDER BY a.pid"""


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


QUERY_LENGTH = 200  # returned query texts are cut to this


def redact_query(text):
    """A query text as the module returns it: literals replaced by ? and white space collapsed, by the one
    redaction of pg_slow_queries, then cut to QUERY_LENGTH (a string cut off by the cut is redacted all the same).
    The sessions' own rows keep the text as read: protected_queries patterns match it (protected_reason)."""
    return clean_query(text, QUERY_LENGTH, redact=True)


def _session(row):
    """A session as returned (sessions, terminate plans): SESSION_KEYS, the query text redacted."""
    duration = row["query_s"] if row["state"] == "active" else row["state_s"]
    wait = "%s:%s" % (row["wait_event_type"], row["wait_event"]) if row["wait_event"] else None
    out = dict(row, duration_s=_round(duration), xact_duration_s=_round(row["xact_s"]), wait_event=wait,
               query=redact_query(row["query"]))
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
    # every chain is listed, however short the wait: blocked_after decides the severity of its finding (and
    # which roots terminate=blockers may end). wait_s is the longest lock wait of its blocked sessions,
    # blocking_s how long its root has blocked: the longest wait of the sessions waiting on the root itself
    for chain in chains:
        root = chain["root_pid"]
        waits = [lock_wait(by_pid.get(p, {})) for p in chain["blocked_pids"]]
        direct = [lock_wait(by_pid[p]) for p in chain["blocked_pids"]
                  if p in by_pid and root in (by_pid[p]["blocking_pids"] or ())]
        chain["wait_s"] = _round(max(waits or [0]))
        chain["blocking_s"] = _round(max(direct or [0]))
    return sessions, chains


def lock_wait(row):
    """Seconds the session of an activity row has waited for its lock, 0 when it waits for no one.

    pg_locks.waitstart (PostgreSQL 14+; a wait of a moment may not have it yet: 0) or, on older servers, the time
    since its query began (row["lock_wait_s"] is then None and row["waitstart_known"] False).
    """
    if not row.get("blocking_pids"):
        return 0.0
    if row.get("lock_wait_s") is not None:
        return float(row["lock_wait_s"])
    if row.get("waitstart_known", True):
        return 0.0
    return float(row.get("query_s") or 0)


def root_blockers(chains, by_pid, blocked_after):
    """The root pids terminate=blockers may end: a root that blocks others while it waits for no one (never a
    session queued behind another, nor one of a deadlock cycle) and has blocked for longer than blocked_after
    seconds (the chain's blocking_s). A root missing from by_pid (a prepared transaction's pid 0) is never one."""
    out = []
    for chain in chains:
        root = by_pid.get(chain["root_pid"])
        if root is None or root.get("blocking_pids"):
            continue
        if (chain.get("blocking_s") or 0) <= blocked_after:
            continue
        out.append(chain["root_pid"])
    return out


class Triage(PgJob):
    """Read the connections (gather) and end the sessions of the kinds asked for (act)."""

    application_name = APPLICATION_NAME
    what = "Triaging the PostgreSQL connections"

    def __init__(self, pg, limits):
        super(Triage, self).__init__(pg, limits)
        self.own_pid = None
        self.version_num = None
        self.rows = {}
        self.targets_rows = dict(idle=[], idle_in_transaction=[], long_running=[])
        self.protected = {}  # pid -> (row, reason): sessions chosen but never ended (backups, migrations...)

    def activity(self):
        waitstart = (self.version_num or 0) >= 140000
        query = ACTIVITY_SQL.format(waitstart=WAITSTART if waitstart else NO_WAITSTART)
        rows = [dict(zip(ACTIVITY_COLUMNS, row)) for row in self.sql(query)]
        for row in rows:
            row["kind"] = backend_kind(row["backend_type"], row["datid"], row["usesysid"])
            row["waitstart_known"] = waitstart
        return rows

    def steps(self):
        self.gather()
        self.act()

    def changed(self):
        res = self.result
        return bool(res["cancelled"] or res["terminated"] or (self.check_mode and res["would_terminate"]))

    def gather(self):
        res, lim, add = self.result, self.limits, self.findings.add
        version, self.version_num, max_conn, reserved, self.own_pid, prepared = self.sql(SETTINGS_SQL)[0]
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
            add("warning" if chain["wait_s"] > lim["blocked_after"] else "info", "blocking",
                "pid %d%s blocks %d sessions (%s), %d deep, waiting up to %ss"
                % (chain["root_pid"], " (a session the login may not inspect nor end)"
                   if kinds.get(chain["root_pid"]) == HIDDEN else "",
                   len(chain["blocked_pids"]), ", ".join(str(p) for p in chain["blocked_pids"]), chain["depth"],
                   _fmt(chain["wait_s"])))
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
        """{pid: row} of the sessions to end, in the targeted kinds, after the filters (row["plan_kind"] says why)."""
        kinds = self.params["terminate"]
        picked = {}
        for kind in ("idle", "idle_in_transaction", "long_running"):
            if kind in kinds:
                for row in sessions[kind]:
                    picked[row["pid"]] = dict(row, plan_kind=kind)
        if "blockers" in kinds:
            # only a root that waits for no one, blocking for longer than blocked_after: never a victim queued
            # behind it, never a root that only just began to block (its chain is listed all the same)
            for pid in root_blockers(blocking, self.rows, self.limits["blocked_after"]):
                if pid not in picked:
                    picked[pid] = dict(self.rows[pid], plan_kind="blocker")
        p = self.params
        out = {}
        self.protected = {}
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
            reason = protected_reason(row["application"], row["query"], p["protected_applications"],
                                      p["protected_queries"])
            if reason:
                self.protected[pid] = (row, reason)
                continue
            out[pid] = row
        return out

    def _signal(self, rows, cancel=False):
        """Cancel or terminate the sessions of rows that are still the ones seen; returns the pids signalled."""
        if not rows:
            return []
        if cancel:
            args = ([r["pid"] for r in rows], [r["backend_start"] for r in rows], [r["query_start"] for r in rows])
            done = self.sql(CANCEL_SQL, args)
        else:
            done = self.sql(TERMINATE_SQL, ([r["pid"] for r in rows], [r["backend_start"] for r in rows]))
        return sorted(pid for pid, ok in done if ok)

    def _report_plan(self, order):
        add = self.findings.add
        if self.protected:
            spared = [dict(_plan_entry(row), reason=reason) for row, reason in
                      (self.protected[pid] for pid in sorted(self.protected))]
            listed = "; ".join("pid %d (%s, %s)" % (s["pid"], s["application"] or "no application_name", s["reason"])
                               for s in spared[:10])
            add("info", "protected", "%d sessions spared (backup, migration or replication client): %s%s"
                % (len(spared), listed, "; ..." if len(spared) > 10 else ""), sessions=spared)
        if order:
            plan = [_plan_entry(row) for row in order]
            add("info", "terminate_plan", "%d sessions to end: %s%s"
                % (len(plan), "; ".join("pid %d (%s, %s@%s, %s %ss)" % (
                    e["pid"], e["application"] or "no application_name", e["user"], e["database"], e["kind"],
                    _fmt(e["duration_s"] or 0)) for e in plan[:20]), "; ..." if len(plan) > 20 else ""),
                sessions=plan)

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
        self._report_plan(order)
        if not pids or self.check_mode:
            return
        seen = dict((r["pid"], r) for r in order)
        if self.params["cancel_first"]:
            res["cancelled"] = self._signal([r for r in order if r["state"] == "active"], cancel=True)
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
                pids = [pid for pid in pids
                        if pid in still and still[pid]["backend_start"] == seen[pid]["backend_start"]]
        res["terminated"] = self._signal([seen[pid] for pid in pids])
        self._wait_gone(res["terminated"])
        if res["terminated"]:
            self.findings.add("info", "terminated", "terminated %d sessions (pids %s)"
                              % (len(res["terminated"]), ", ".join(str(p) for p in res["terminated"])))

    def _wait_gone(self, pids):
        deadline = time.time() + 2.0
        while pids and time.time() < deadline:
            rows = self.sql("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),))
            if rows[0][0] == 0:
                return
            time.sleep(0.1)


def _fmt(seconds):
    return ("%g" % seconds)


def _plan_entry(row):
    entry = dict(_session(row), kind=row.get("plan_kind"))
    return dict((k, entry[k]) for k in PLAN_KEYS)


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
