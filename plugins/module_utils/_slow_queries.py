# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the pure helpers of pg_slow_queries (no server needed).

The pure helpers (no server needed): literal redaction of SQL text, sequential scan hints, the choice of the
queries to cancel. ``SlowQueries`` is the PgJob that reads and acts.
Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.sre.runbooks.plugins.module_utils._pgmodule import PgJob, protected_reason

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:
    psycopg2 = None  # PgModule reports it with missing_required_lib
    sql = None

# One pass over SQL text, left to right. Comments, quoted identifiers, words (identifiers, keywords, so the digits
# of t1 stay) and $n parameters are kept; string literals (standard, E'', dollar quoted, cut off at the end of the
# text too) and numbers become "?"; runs of white space become one space.
_SQL_TOKEN_RE = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<ident>"(?:[^"]|"")*(?:"|\Z))
    | (?P<estring>[Ee]'(?:[^'\\]|''|\\.)*(?:'|\Z))
    | (?P<string>'(?:[^']|'')*(?:'|\Z))
    | (?P<dollar>\$(?P<tag>(?:[A-Za-z_][A-Za-z0-9_]*)?)\$.*?(?:\$(?P=tag)\$|\Z))
    | (?P<param>\$\d+)
    | (?P<word>[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*)
    | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<space>\s+)
    """,
    re.S | re.X,
)
_LITERALS = ("estring", "string", "dollar", "number")


def clean_query(text, length, redact=True):
    """SQL text for a report: literals replaced by ? (when redact), white space collapsed, cut to length."""
    if text is None:
        return None

    def repl(match):
        kind = match.lastgroup  # the outer group: "dollar" even when its tag matched
        if kind == "space":
            return " "
        if redact and kind in _LITERALS:
            return "?"
        return match.group(0)

    cleaned = _SQL_TOKEN_RE.sub(repl, str(text)).strip()
    if length is not None and len(cleaned) > length:
        cleaned = cleaned[:length]
    return cleaned


def seq_scan_hint(table, statements=()):
    """The index hint for a table read mostly by sequential scans (a dict of pg_stat_user_tables columns)."""
    scans = table["seq_scan"] or 0
    per_scan = int((table["seq_tup_read"] or 0) / scans) if scans else 0
    hint = ("%s.%s: %d sequential scans read %d rows (%d per scan, %d live rows) against %d index scans; "
            "an index on the columns its queries filter or join on would avoid reading the whole table"
            % (table["schema"], table["table"], scans, table["seq_tup_read"] or 0, per_scan, table["n_live_tup"] or 0,
               table["idx_scan"] or 0))
    reads = re.compile(r"\b(?:from|join|update)\s+(?:\"?%s\"?\.)?\"?%s\"?(?![\w\".])"
                       % (re.escape(table["schema"]), re.escape(table["table"])), re.IGNORECASE)
    for statement in statements:
        if statement.get("query") and reads.search(statement["query"]):
            hint += " (for example statement %s: %s)" % (statement.get("queryid"), statement["query"][:120])
            break
    return hint


def cancel_targets(rows, cancel_after, include_superusers=False, databases=(), users=(), applications=(),
                   protected_applications=(), protected_queries=(), spared=None):
    """Rows of the active client backends whose query runs for longer than cancel_after seconds.

    rows are the module's activity rows (dicts with pid, backend_type, state, duration_s, superuser, database,
    user, application, query); the module's own backend is never in them. Longest running first. Sessions whose
    application_name or query matches the protected patterns (backups, migrations, replication clients) are
    left out, and appended to spared as (row, reason) when it is a list. The query of a row is the text as the
    server has it, never the redacted one of the report (protected_reason).
    """
    out = []
    for row in rows:
        if row.get("backend_type") != "client backend" or row.get("state") != "active":
            continue
        if row.get("duration_s") is None or row["duration_s"] <= cancel_after:
            continue
        if row.get("superuser") and not include_superusers:
            continue
        if databases and row.get("database") not in databases:
            continue
        if users and row.get("user") not in users:
            continue
        if applications and row.get("application") not in applications:
            continue
        reason = protected_reason(row.get("application"), row.get("query"), protected_applications,
                                  protected_queries)
        if reason:
            if spared is not None:
                spared.append((row, reason))
            continue
        out.append(row)
    out.sort(key=lambda r: (-r["duration_s"], r["pid"]))
    return out


def version_tuple(text):
    """(1, 10) for "1.10"; () for anything else."""
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        return ()


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
       COALESCE(r.rolsuper, false),
       a.backend_start
FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE (a.backend_type = 'client backend' OR (a.backend_type IS NULL AND a.usesysid IS NOT NULL))
  AND a.pid <> pg_backend_pid()"""
# (other users' sessions show no backend_type nor state to a login without pg_read_all_stats: counted as hidden)
ACTIVITY_COLUMNS = ("pid", "user", "database", "application", "backend_type", "state", "duration_s", "query_start",
                    "wait_event_type", "wait_event", "query", "blocked_by", "superuser", "backend_start")
ACTIVE_KEYS = ("pid", "user", "database", "application", "superuser", "duration_s", "wait_event", "blocked_by",
               "query", "memory_bytes")

SEQ_SCAN_SQL = """SELECT schemaname AS """ + MARK + """, relname, seq_scan, seq_tup_read, idx_scan, n_live_tup
FROM pg_stat_user_tables
WHERE seq_scan >= %(scans)s AND n_live_tup >= %(rows)s AND seq_scan > COALESCE(idx_scan, 0)
  AND seq_tup_read / seq_scan >= %(rows)s
ORDER BY seq_tup_read DESC, schemaname, relname
LIMIT %(top)s"""
SEQ_SCAN_COLUMNS = ("schema", "table", "seq_scan", "seq_tup_read", "idx_scan", "n_live_tup")

# Signal only a backend that is still the session found (same pid, same backend_start: a pid reused by a new
# connection has another) running the very query that was found (same query_start).
SIGNAL_SQL = """SELECT a.pid AS """ + MARK + """, {function}(a.pid) FROM pg_stat_activity a
WHERE (a.pid, a.backend_start, a.query_start) IN (SELECT * FROM unnest(%s::int[], %s::timestamptz[], %s::timestamptz[]))
  AND a.state = 'active'"""
STILL_RUNNING_SQL = """SELECT a.pid AS """ + MARK + """ FROM pg_stat_activity a
WHERE (a.pid, a.backend_start, a.query_start) IN (SELECT * FROM unnest(%s::int[], %s::timestamptz[], %s::timestamptz[]))
  AND a.state = 'active'"""


def empty_result():
    return dict(
        status="ok", findings=[], server_version=None,
        pg_stat_statements=dict(loaded=False, installed=False, version=None, schema=None),
        statements=[], active=[], seq_scan_tables=[], settings={}, would_cancel=[], cancelled=[], terminated=[],
        settings_changed=[], queries=[], error_category=None, error=None,
        query_memory=dict(measured=False, reason=None, total_bytes=None), memory_heavy=[],
    )


def _round(value, digits=3):
    return None if value is None else round(float(value), digits)


def _pids(pids):
    pids = list(pids)
    return ", ".join(str(p) for p in pids[:10]) + (", ..." if len(pids) > 10 else "")


def _fmt(seconds):
    return "%g" % seconds


def _seen(rows):
    """The (pids, backend_starts, query_starts) arrays that identify the sessions and queries found."""
    return ([r["pid"] for r in rows], [r["backend_start"] for r in rows], [r["query_start"] for r in rows])


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _status_fields(raw):
    """{field: value} of a /proc/<pid>/status text (bytes)."""
    fields = {}
    for line in (raw or b"").decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def _kib(value):
    """Bytes of a "1234 kB" status value; None when it is not one."""
    parts = (value or "").split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1] == "kB":
        return int(parts[0]) * 1024
    return None


def backend_memory(own_pid, session_user, database, pids, proc="/proc"):
    """The private memory of the server's backends, when the server runs on this host: (measured, reason, {pid: bytes}).

    A backend's private memory is its RssAnon (sorts, hashes, work_mem and the per-backend caches; the shared buffers
    it touched are RssShmem and are not counted). The server is this host's when this module's own backend
    (own_pid, from pg_backend_pid()) is a postgres process here whose title names this session's user and database;
    every other pid is read only when it is a child of the same postmaster. Another pid namespace (a container, a
    managed database) shows no such process: nothing is measured, and the reason says so."""
    own = "%s/%d" % (proc, own_pid)
    title = (_read(own + "/cmdline") or b"").replace(b"\0", b" ").decode("utf-8", "replace")
    own_status = _status_fields(_read(own + "/status"))
    if not title.startswith("postgres") or " %s %s " % (session_user, database) not in title + " ":
        return False, ("the database server's processes are not visible from this host (it runs in another "
                       "container, host or pid namespace): memory per query is not measured"), {}
    postmaster = own_status.get("PPid")
    found = {}
    for pid in pids:
        status = _status_fields(_read("%s/%d/status" % (proc, pid)))
        if status.get("PPid") != postmaster:
            continue  # ended meanwhile, or not a backend of this server
        size = _kib(status.get("RssAnon"))
        if size is not None:
            found[pid] = size
    return True, None, found


def _mb(size):
    return "%.0f MB" % (size / 1048576.0)


class SlowQueries(PgJob):
    """Read the statements, the active queries and the scans; cancel runaway queries, set the slow query log."""

    application_name = APPLICATION_NAME
    what = "Looking for slow queries"

    def __init__(self, pg, limits):
        super(SlowQueries, self).__init__(pg, limits)
        self.rows = []
        self.lmds = None
        self.own_pid = None
        self._active_rows = []

    def steps(self):
        self.read_settings()
        self.statements()
        self.activity()
        self.query_memory()
        self.seq_scans()
        self.cancel()
        self.set_log_min_duration()

    def changed(self):
        res = self.result
        return bool(res["cancelled"] or res["terminated"] or res["settings_changed"]
                    or (self.check_mode and res["would_cancel"]))

    def _clean(self, text):
        return clean_query(text, self.params["query_length"], self.params["redact_literals"])

    # ------------------------------------------------------------------ reading

    def read_settings(self):
        res = self.result
        version, self.own_pid, settings, lmds, ext = self.sql(SETTINGS_SQL, (SHOWN_SETTINGS,))[0]
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
            rows = self.sql(query, ("%" + MARK + "%", self.params["top"]))
        except psycopg2.Error as exc:
            # (findings are scrubbed of the passwords when the module exits)
            add("info", "pg_stat_statements_unreadable", "cannot read pg_stat_statements: %s" % str(exc).strip())
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
        rows = [dict(zip(ACTIVITY_COLUMNS, row)) for row in self.sql(ACTIVITY_SQL)]
        self.rows = [r for r in rows if r["state"] == "active"]
        self.rows.sort(key=lambda r: (-(r["duration_s"] or 0), r["pid"]))
        for row in self.rows:
            row["duration_s"] = _round(row["duration_s"])
            row["wait_event"] = ("%s:%s" % (row["wait_event_type"], row["wait_event"])) if row["wait_event"] else None
            row["blocked_by"] = sorted(row["blocked_by"] or [])
        # the rows keep the query as read (protected_queries match it); the result has it cleaned (redacted)
        for row in self.rows:
            row["memory_bytes"] = None  # query_memory() reads it where the server's processes are visible
        self._active_rows = self.rows[:self.params["active_limit"]]
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

    def query_memory(self):
        """The private memory of each active query's backend (backend_memory), the heaviest first in memory_heavy."""
        p, res = self.params, self.result
        if p["query_memory"]:
            user, database = self.sql("SELECT session_user AS " + MARK + ", current_database()")[0]
            measured, reason, sizes = backend_memory(self.own_pid, user, database, [r["pid"] for r in self.rows])
            res["query_memory"].update(measured=measured, reason=reason,
                                       total_bytes=sum(sizes.values()) if measured else None)
            for row in self.rows:
                row["memory_bytes"] = sizes.get(row["pid"])
        else:
            res["query_memory"]["reason"] = "query_memory is false"
        res["active"] = [dict([(k, r[k]) for k in ACTIVE_KEYS], query=self._clean(r["query"])) for r in self._active_rows]
        weighed = sorted((r for r in self.rows if r["memory_bytes"] is not None),
                         key=lambda r: (-r["memory_bytes"], r["pid"]))
        res["memory_heavy"] = [dict([(k, r[k]) for k in ACTIVE_KEYS], query=self._clean(r["query"]))
                               for r in weighed[:p["memory_heavy_top"]]]
        heavy = [r for r in weighed if r["memory_bytes"] >= p["memory_heavy_mb"] * 1048576]
        if heavy:
            first = heavy[0]
            self.findings.add("warning", "memory_heavy_query", "%d active queries use %d MB or more of private memory "
                              "(work_mem sorts and hashes), the heaviest pid %d (%s, %s in %s, %ss): %s"
                              % (len(heavy), p["memory_heavy_mb"], first["pid"], _mb(first["memory_bytes"]),
                                 first["user"], first["database"], first["duration_s"],
                                 (self._clean(first["query"]) or "")[:100]),
                              pids=[r["pid"] for r in heavy])

    def seq_scans(self):
        p = self.params
        if p["top"] == 0:
            return
        rows = self.sql(SEQ_SCAN_SQL, dict(scans=p["seq_scan_min_scans"], rows=p["seq_scan_min_rows"], top=p["top"]))
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
        done = self.sql(query, _seen(rows))
        return sorted(pid for pid, ok in done if ok)

    def _still_running(self, rows, timeout):
        deadline = time.time() + timeout
        while True:
            left = self.sql(STILL_RUNNING_SQL, _seen(rows))
            pids = set(row[0] for row in left)
            if not pids or time.time() >= deadline:
                return [r for r in rows if r["pid"] in pids]
            time.sleep(0.1)

    def cancel(self):
        p, res = self.params, self.result
        after = self.limits.get("cancel_after")
        if after is None:
            return
        spared = []
        targets = cancel_targets(self.rows, after, p["include_superusers"], p["databases"], p["users"],
                                 p["applications"], p["protected_applications"], p["protected_queries"], spared)
        if spared:
            self.findings.add("info", "protected", "%d queries spared (backup, migration or replication client): %s"
                              % (len(spared), "; ".join("pid %d (%s, %s)" % (
                                  row["pid"], row["application"] or "no application_name", reason)
                                  for row, reason in spared[:10])),
                              sessions=[dict(pid=row["pid"], user=row["user"], database=row["database"],
                                             application=row["application"], duration_s=row["duration_s"],
                                             reason=reason) for row, reason in spared])
        limit = p["terminate_limit"]
        if len(targets) > limit:
            self.findings.add("warning", "terminate_limit", "%d queries to cancel, only %d signalled (terminate_limit)"
                              % (len(targets), limit))
            targets = targets[:limit]  # the longest running first
        res["would_cancel"] = sorted(r["pid"] for r in targets)
        if not targets or self.check_mode:
            return
        res["cancelled"] = self._signal("pg_cancel_backend", targets)
        signalled = [r for r in targets if r["pid"] in res["cancelled"]]
        stuck = self._still_running(signalled, 2.0) if signalled else []
        if stuck and p["terminate_if_cancel_fails"]:
            res["terminated"] = self._signal("pg_terminate_backend", stuck)
            gone_deadline = time.time() + 2.0
            while res["terminated"] and time.time() < gone_deadline:
                if not self.sql("SELECT count(*) AS " + MARK + " FROM pg_stat_activity WHERE pid = ANY(%s)",
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
        if self.check_mode:
            return
        self.sql("ALTER SYSTEM SET log_min_duration_statement = %s", (wanted,))
        self.sql("SELECT pg_reload_conf() AS " + MARK)
        deadline = time.time() + 3.0
        now = None
        while time.time() < deadline:
            # the reload reaches this backend between statements
            now = self.sql("SELECT setting::int AS " + MARK + " FROM pg_settings "
                           "WHERE name = 'log_min_duration_statement'")[0][0]
            if now == wanted:
                break
            time.sleep(0.1)
        shown = self.sql("SELECT current_setting('log_min_duration_statement') AS " + MARK)[0][0]
        res["settings"]["log_min_duration_statement"] = shown
        if now == wanted:
            self.findings.add("info", "setting_changed", "log_min_duration_statement set from %s to %s ms "
                              "(ALTER SYSTEM, configuration reloaded)" % (self.lmds, wanted))
        else:
            self.findings.add("warning", "setting_not_applied", "log_min_duration_statement was set to %s ms with "
                              "ALTER SYSTEM but this session still sees %s after the reload (is it set for the "
                              "database or the role?)" % (wanted, now))
