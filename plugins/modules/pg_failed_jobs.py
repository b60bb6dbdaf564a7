#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_failed_jobs
short_description: Count the rows of a jobs or events table by status in a window, and requeue the failed ones
version_added: 0.1.0
description:
  - Reads a configured jobs or events table (for example C(stripe_webhook_events)) and returns the rows newer than
    O(window) counted by status, the failed rows of that window counted by type, and the latest O(errors) failed rows with
    their error messages (cut to O(error_length) characters, passwords, API keys, tokens and other secrets by
    their shape masked).
  - With O(mode=requeue), sets the status of the failed rows newer than O(window) to O(requeue_status), at most
    O(limit) rows (the oldest first), in one transaction. The rows are locked (C(SELECT ... FOR UPDATE)),
    written to a file in O(save_dir) (JSON or CSV, fsynced, atomically renamed, mode C(0600)) and only then
    updated by their physical row id while they still have O(failed_status); the updated count must equal the
    saved count or everything is rolled back.
  - Table and column names follow the collection's one identifier rule (plain names, double-quoted names such as
    C("WebhookEvent") or C("createdAt"), the table optionally C(schema.table)); they are checked against the
    catalog and quoted with C(psycopg2.sql), never formatted into SQL. Values are bound parameters.
  - In O(mode=diagnose) an unreachable server is a result (RV(status=unreachable)), not a failed task, unless
    O(fail_on) says so; in O(mode=requeue) it fails the task.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description:
      - In check mode nothing is locked, written or updated; with O(mode=requeue), RV(to_requeue) and
        RV(planned_ids) say what would be requeued and RV(requeued) is 0.
  diff_mode:
    support: none
    description:
      - No diff is returned; RV(requeued), RV(requeued_ids) and RV(saved_to) say what changed.
options:
  table:
    description:
      - The jobs or events table, C(table) or C(schema.table); double-quote mixed-case names (C("WebhookEvent")).
    type: str
    required: true
  id_column:
    description: The table's key column, returned in RV(requeued_ids) and RV(latest_errors).
    type: str
    default: id
  status_column:
    description: The column holding the row's status.
    type: str
    default: status
  time_column:
    description:
      - The row's creation time (a C(timestamp), C(timestamptz) or C(date) column); the window is counted on it.
    type: str
    default: created_at
  error_column:
    description: The column holding the error message of a failed row; empty for none.
    type: str
    default: error_message
  type_column:
    description: The column holding the row's kind (an event type, a job name); empty for none.
    type: str
    default: event_type
  failed_status:
    description: The status value of a failed row.
    type: str
    default: failed
  requeue_status:
    description: The status value a requeued row gets (one the app's worker picks up again).
    type: str
    default: pending
  window:
    description:
      - Only rows newer than this are counted by status and requeued (seconds, or V(30m), V(24h), V(1d), V(1h30m)).
    type: str
    default: 1h
  limit:
    description: At most this many rows are requeued in one run (the oldest of the window first).
    type: int
    default: 100
  threshold:
    description:
      - The finding C(failed_jobs_over_threshold) (a warning) is raised when the failed rows of the window reach
        this many; 0 never raises it.
    type: int
    default: 1
  errors:
    description: How many of the latest failed rows to return in RV(latest_errors).
    type: int
    default: 10
  error_length:
    description: Error messages are cut to this many characters.
    type: int
    default: 200
  mode:
    description:
      - V(diagnose) only reads; V(requeue) saves the failed rows of the window to O(save_dir) and requeues them.
    type: str
    choices: [diagnose, requeue]
    default: diagnose
  save_dir:
    description:
      - Directory the rows are saved to before they are requeued (created with mode C(0700) when missing).
        Required with O(mode=requeue).
    type: path
  save_format:
    description: How the rows are saved; V(json) keeps the column types, V(csv) is one line per row.
    type: str
    choices: [json, csv]
    default: json
  timezone:
    description:
      - Session C(TimeZone) for the window when O(time_column) is a C(timestamp) without time zone (V(UTC) for
        Prisma's C(timestamp(3)) columns); empty keeps the server's setting.
    type: str
    default: ""
  lock_timeout:
    description: Seconds to wait for row locks before giving up (C(lock_timeout)); 0 waits forever.
    type: int
    default: 10
  fail_on:
    description: Fail the task when the status reaches this level (V(unreachable) counts as critical).
    type: str
    choices: [never, warning, critical]
    default: never
extends_documentation_fragment:
  - sre.runbooks.postgres
notes:
  - A database whose writes were stopped (C(default_transaction_read_only)) stays so; the requeue then fails
    with nothing changed.
  - The saved file holds the rows as they were before the requeue; setting their status back to O(failed_status)
    by RV(requeued_ids) undoes it.
"""

EXAMPLES = r"""
- name: Count the Stripe webhook events of the last hour by status, with the latest errors
  sre.runbooks.pg_failed_jobs:
    dsn: "{{ vault_database_url }}"
    table: stripe_webhook_events
    window: 1h
  register: webhooks

- name: Requeue the failed webhook events of the last 24 hours, at most 500, saving them first
  sre.runbooks.pg_failed_jobs:
    dsn: "{{ vault_database_url }}"
    table: stripe_webhook_events
    mode: requeue
    window: 24h
    limit: 500
    save_dir: /var/lib/sre-runbooks/failed_jobs

- name: The same on a Prisma schema (mixed-case names, timestamp(3) in UTC)
  sre.runbooks.pg_failed_jobs:
    dsn: "{{ vault_database_url }}"
    table: '"WebhookEvent"'
    time_column: '"createdAt"'
    error_column: '"errorMessage"'
    type_column: '"eventType"'
    failed_status: FAILED
    requeue_status: PENDING
    timezone: UTC
"""

RETURN = r"""
by_status:
  description: Rows newer than O(window) by status (a null status counts as V(null)).
  returned: always
  type: dict
  sample: {processed: 120, failed: 4, pending: 2}
failed_by_type:
  description: Failed rows newer than O(window) by O(type_column) (empty without one).
  returned: always
  type: dict
  sample: {invoice.payment_failed: 3, customer.subscription.updated: 1}
failed_in_window:
  description: Failed rows newer than O(window).
  returned: always
  type: int
latest_errors:
  description: The latest O(errors) failed rows (newest first, whatever their age), error messages cut and scrubbed.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The row's O(id_column).
      type: raw
    type:
      description: Its O(type_column) (null without one).
      type: str
    at:
      description: Its O(time_column), as text.
      type: str
    error:
      description: Its error message, cut to O(error_length) with secrets masked (null without O(error_column)).
      type: str
window_seconds:
  description: O(window) in seconds.
  returned: always
  type: float
since:
  description: The start of the window on the server's clock (ISO 8601), null when the server was not reached.
  returned: always
  type: str
to_requeue:
  description: Failed rows of the window a requeue changes (or would change) in this run, at most O(limit).
  returned: always
  type: int
planned_ids:
  description: The O(id_column) of those rows (with O(mode=requeue); the ones requeued, or in check mode the ones that would be).
  returned: always
  type: list
  elements: raw
requeued:
  description: Rows requeued (0 in check mode or with O(mode=diagnose)).
  returned: always
  type: int
requeued_ids:
  description: The O(id_column) of the rows requeued.
  returned: always
  type: list
  elements: raw
saved_to:
  description: The file the requeued rows were saved to before the change, null when nothing was saved.
  returned: always
  type: str
findings:
  description:
    - C(failed_jobs_over_threshold) (warning) when the failed rows of the window reach O(threshold);
      C(failed_jobs_over_limit) (warning) when a requeue leaves failed rows beyond O(limit); C(failed_jobs_requeued)
      (info) after a requeue; C(unreachable) (or C(saturated)) when the server cannot be reached.
  returned: always
  type: list
  elements: dict
  sample: [{severity: warning, code: failed_jobs_over_threshold, message: "stripe_webhook_events: 4 failed rows in the last 1h"}]
queries:
  description: The SQL statements run (identifiers only, no values).
  returned: always
  type: list
  elements: str
status:
  description: V(ok), V(warning), V(critical) (the server refuses new connections) or V(unreachable).
  returned: always
  type: str
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

import csv
import datetime
import io
import json
import os
import re
import tempfile

from ansible_collections.sre.runbooks.plugins.module_utils._common import parse_duration
from ansible_collections.sre.runbooks.plugins.module_utils._identifiers import IdentifierError, split_identifier
from ansible_collections.sre.runbooks.plugins.module_utils._pgmodule import PgJob, PgJobError, PgModule, pgsql

# Secrets by their shape in free text (error messages a job wrote): what the passwords scrub of PgModule (the
# login's passwords, URL passwords, password=...) does not know. Each keeps what says what it was.
_TEXT_SECRETS = (
    (re.compile(r"\b((?:sk|rk|pk)_(?:live|test)_)[A-Za-z0-9]{6,}"), r"\1***"),  # Stripe API keys
    (re.compile(r"\b(whsec_)[A-Za-z0-9+/=]{6,}"), r"\1***"),  # Stripe webhook signing secrets
    (re.compile(r"\b(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*", re.IGNORECASE), r"\1***"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"), "***"),  # JWTs
    (re.compile(r"\b((?:[\w.-]*(?:secret|token|api[_-]?key|passw(?:or)?d|pwd|signature|authorization))"
                r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+", re.IGNORECASE), r"\1***"),
    (re.compile(r"\b(t=\d+,v1=)[0-9a-f]{16,}"), r"\1***"),  # a Stripe-Signature header's signature
)


def argument_spec():
    """The options of the module; PgModule merges them with postgres_argument_spec() (the connection)."""
    return dict(
        table=dict(type="str", required=True),
        id_column=dict(type="str", default="id"),
        status_column=dict(type="str", default="status"),
        time_column=dict(type="str", default="created_at"),
        error_column=dict(type="str", default="error_message"),
        type_column=dict(type="str", default="event_type"),
        failed_status=dict(type="str", default="failed"),
        requeue_status=dict(type="str", default="pending"),
        window=dict(type="str", default="1h"),
        limit=dict(type="int", default=100),
        threshold=dict(type="int", default=1),
        errors=dict(type="int", default=10),
        error_length=dict(type="int", default=200),
        mode=dict(type="str", choices=["diagnose", "requeue"], default="diagnose"),
        save_dir=dict(type="path"),
        save_format=dict(type="str", choices=["json", "csv"], default="json"),
        timezone=dict(type="str", default=""),
        lock_timeout=dict(type="int", default=10),
        fail_on=dict(type="str", choices=["never", "warning", "critical"], default="never"),
    )


def empty_result():
    return dict(by_status={}, failed_by_type={}, failed_in_window=0, latest_errors=[], window_seconds=0.0,
                since=None, to_requeue=0, planned_ids=[], requeued=0, requeued_ids=[], saved_to=None, status="ok",
                findings=[], queries=[], error_category=None, error=None)


def scrub_text(text, scrub, length):
    """An error message for a report: secrets masked (scrub: the login's passwords, then the shapes above),
    white space collapsed, then cut to length (masking first, so no secret is half shown)."""
    if text is None:
        return None
    text = scrub(str(text))
    for regex, replacement in _TEXT_SECRETS:
        text = regex.sub(replacement, text)
    text = " ".join(text.split())
    return text if len(text) <= length else text[:max(length - 3, 0)] + "..."


def _plain(value):
    """A value as JSON can carry it (ids and times of any column type)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)


class Names(object):
    """The validated identifiers of the options, unquoted (for pgsql.Identifier and the catalog check)."""

    COLUMNS = ("id_column", "status_column", "time_column", "error_column", "type_column")

    def __init__(self, params):
        self.table = self._split(params, "table", 2)
        self.columns = {}
        for option in self.COLUMNS:
            if option in ("error_column", "type_column") and not params[option]:
                self.columns[option] = None
                continue
            self.columns[option] = self._split(params, option, 1)[0]
        self.table_text = params["table"]

    @staticmethod
    def _split(params, option, parts):
        try:
            return split_identifier(params[option] if isinstance(params[option], str) else str(params[option]), parts)
        except IdentifierError as exc:
            raise ValueError("%s: %s" % (option, exc))

    def ident(self, option):
        return pgsql.Identifier(self.columns[option])

    @property
    def relation(self):
        return pgsql.Identifier(*self.table)

    @property
    def regclass(self):
        return ".".join('"%s"' % part for part in self.table)


class FailedJobs(PgJob):
    """Count the rows of the window by status, the failed ones by type, the latest errors; with mode=requeue
    lock, save and requeue the failed rows of the window in one transaction."""

    application_name = "sre.runbooks.pg_failed_jobs"
    autocommit = False

    def __init__(self, pg, names, window_seconds):
        super(FailedJobs, self).__init__(pg)
        self.names = names
        self.window_seconds = window_seconds
        self.requeueing = self.params["mode"] == "requeue"
        self.unreachable_fails = self.requeueing  # nothing to requeue without the database: a failed task
        self.what = "Requeueing failed rows of %s" % names.table_text if self.requeueing \
            else "Counting the rows of %s" % names.table_text
        self.saved_path = None

    # ------------------------------------------------------------------ SQL

    def _where_window(self):
        return pgsql.SQL("{time} > now() - make_interval(secs => %s)").format(time=self.names.ident("time_column"))

    def _where_failed(self):
        return pgsql.SQL("{status} = %s AND {window}").format(
            status=self.names.ident("status_column"), window=self._where_window())

    def _args_failed(self):
        return (self.params["failed_status"], self.window_seconds)

    # ------------------------------------------------------------------ the run

    def steps(self):
        p, res, names = self.params, self.result, self.names
        self.check_catalog()
        if p["timezone"]:
            # for the session: committed at once, so the requeue transaction counts the window the same way
            self.sql("SELECT set_config('TimeZone', %s, false)", (p["timezone"],))
            self.conn.commit()
        since = self.sql("SELECT (now() - make_interval(secs => %s))::timestamptz", (self.window_seconds,))[0][0]
        res["since"] = _plain(since)
        rows = self.sql(pgsql.SQL("SELECT {status}::text, count(*) FROM {table} WHERE {window} GROUP BY 1 "
                                  "ORDER BY 2 DESC, 1").format(status=names.ident("status_column"),
                                                               table=names.relation, window=self._where_window()),
                        (self.window_seconds,))
        res["by_status"] = dict(("null" if status is None else status, int(count)) for status, count in rows)
        res["failed_in_window"] = int(self.sql(pgsql.SQL("SELECT count(*) FROM {table} WHERE {where}").format(
            table=names.relation, where=self._where_failed()), self._args_failed())[0][0])
        if names.columns["type_column"]:
            rows = self.sql(pgsql.SQL("SELECT {type}::text, count(*) FROM {table} WHERE {where} GROUP BY 1 "
                                      "ORDER BY 2 DESC, 1").format(type=names.ident("type_column"),
                                                                   table=names.relation, where=self._where_failed()),
                            self._args_failed())
            res["failed_by_type"] = dict(("null" if kind is None else kind, int(count)) for kind, count in rows)
        res["latest_errors"] = self.latest_errors()
        self.conn.rollback()
        self.add_findings()
        if self.requeueing:
            if self.check_mode:
                rows = self.sql(self.select_sql(lock=False), self._args_failed() + (p["limit"],))
                res["planned_ids"] = [_plain(row[0]) for row in rows]
                res["to_requeue"] = len(res["planned_ids"])
                self.conn.rollback()
            elif res["failed_in_window"]:
                self.requeue()
            self.add_requeue_findings()

    def changed(self):
        if not self.requeueing:
            return False
        if self.check_mode:
            return self.result["to_requeue"] > 0
        return self.result["requeued"] > 0

    def failure_message(self, exc):
        saved = (" (the rows saved to %s were NOT requeued: rolled back)" % self.saved_path
                 if self.saved_path and os.path.exists(self.saved_path) else "")
        return super(FailedJobs, self).failure_message(exc) + saved

    def check_catalog(self):
        names = self.names
        found = self.sql("SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                         "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                         (names.regclass,))
        if not found:
            raise PgJobError("table %s does not exist (or is not visible to this user)" % names.table_text,
                             what="Checking the table option")
        types = dict(found)
        for option in Names.COLUMNS:
            column = names.columns[option]
            if column is not None and column not in types:
                raise PgJobError("table %s has no column %s (%s; its columns: %s)" % (
                    names.table_text, column, option, ", ".join(types)), what="Checking the %s option" % option)
        kind = types[names.columns["time_column"]]
        if not (kind.startswith("timestamp") or kind == "date"):
            raise PgJobError("column %s of %s is %s, not a timestamp or date" % (
                names.columns["time_column"], names.table_text, kind), what="Checking the time_column option")

    def latest_errors(self):
        p, names = self.params, self.names
        null = pgsql.SQL("NULL::text")
        query = pgsql.SQL("SELECT {id}, {type}, {time}::text, {error} FROM {table} WHERE {status} = %s "
                          "ORDER BY {time} DESC, {id} DESC LIMIT %s").format(
            id=names.ident("id_column"), time=names.ident("time_column"), table=names.relation,
            status=names.ident("status_column"),
            type=pgsql.SQL("{}::text").format(names.ident("type_column")) if names.columns["type_column"] else null,
            error=pgsql.SQL("left({}::text, %s)").format(names.ident("error_column")) if names.columns["error_column"]
            else null)
        # read a little more than is shown: a secret across the cut is still masked whole, and a long text
        # costs the server and the scrub nothing
        head = (p["error_length"] + 200,) if names.columns["error_column"] else ()
        out = []
        for row_id, kind, at, error in self.sql(query, head + (p["failed_status"], p["errors"])):
            out.append({"id": _plain(row_id), "type": kind, "at": at,
                        "error": scrub_text(error, self.pg.scrub, p["error_length"])})
        return out

    def add_findings(self):
        p, res = self.params, self.result
        failed = res["failed_in_window"]
        if p["threshold"] and failed >= p["threshold"]:
            kinds = ", ".join("%s: %d" % item for item in list(res["failed_by_type"].items())[:5])
            self.findings.add("warning", "failed_jobs_over_threshold", "%s: %d failed rows in the last %s (threshold %d)%s" % (
                self.names.table_text, failed, p["window"], p["threshold"], (" by type " + kinds) if kinds else ""))

    def add_requeue_findings(self):
        p, res = self.params, self.result
        done = res["to_requeue"]
        left = res["failed_in_window"] - done
        if left > 0:
            self.findings.add("warning", "failed_jobs_over_limit", "%s: %d failed rows in the last %s, %d %s (limit %d): "
                              "run again for the rest" % (self.names.table_text, res["failed_in_window"], p["window"],
                                                          done, "would be requeued" if self.check_mode else "requeued",
                                                          p["limit"]))
        if res["requeued"]:
            self.findings.add("info", "failed_jobs_requeued", "%s: %d failed rows set to %s (saved first to %s)" % (
                self.names.table_text, res["requeued"], p["requeue_status"], res["saved_to"]))

    def select_sql(self, lock):
        names = self.names
        return pgsql.SQL("SELECT {id}, t.ctid::text, row_to_json(t)::text FROM {table} t WHERE {where} "
                         "ORDER BY {time}, {id} LIMIT %s{lock}").format(
            id=names.ident("id_column"), table=names.relation, where=self._where_failed(),
            time=names.ident("time_column"), lock=pgsql.SQL(" FOR UPDATE OF t") if lock else pgsql.SQL(""))

    def requeue(self):
        p, res, names = self.params, self.result, self.names
        with self.conn.cursor() as cur:
            # no SET TRANSACTION READ WRITE: a database whose writes were stopped on purpose stays so
            self.sql("SELECT set_config('lock_timeout', %s, true)", ("%ds" % p["lock_timeout"],), cursor=cur)
            rows = self.sql(self.select_sql(lock=True), self._args_failed() + (p["limit"],), cursor=cur)
            res["planned_ids"] = [_plain(row[0]) for row in rows]
            res["to_requeue"] = len(rows)
            if not rows:
                return
            database = self.conn.get_dsn_parameters().get("dbname")
            self.save(database, [json.loads(row[2]) for row in rows])
            updated = self.sql(pgsql.SQL("UPDATE {table} t SET {status} = %s WHERE t.ctid = ANY(%s::tid[]) "
                                         "AND {status} = %s RETURNING {id}").format(
                table=names.relation, status=names.ident("status_column"), id=names.ident("id_column")),
                (p["requeue_status"], [row[1] for row in rows], p["failed_status"]), cursor=cur)
            if len(updated) != len(rows):
                raise PgJobError("%d failed rows were saved and locked but %d were requeued" % (len(rows), len(updated)))
        self.conn.commit()
        res["requeued"] = len(updated)
        done = set(_plain(row[0]) for row in updated)
        res["requeued_ids"] = [row_id for row_id in res["planned_ids"] if row_id in done]  # the oldest first
        res["saved_to"] = self.saved_path

    # ------------------------------------------------------------------ the saved rows

    def save(self, database, rows):
        """Write the rows to a new file in save_dir: fsynced temporary file, atomically renamed, mode 0600."""
        p = self.params
        stamp = datetime.datetime.now(datetime.timezone.utc)
        name = "failed-jobs-%s-%s-%s.%s" % (
            re.sub(r"[^A-Za-z0-9._-]", "_", database or "db"),
            re.sub(r"[^A-Za-z0-9._-]", "_", ".".join(self.names.table)),
            stamp.strftime("%Y%m%dT%H%M%S%fZ"), p["save_format"])
        path = os.path.join(p["save_dir"], name)
        if p["save_format"] == "csv":
            text = self.csv_text(rows)
        else:
            text = json.dumps({"kind": "sre.runbooks.pg_failed_jobs", "database": database,
                               "table": self.names.table_text, "saved_at": stamp.isoformat(),
                               "status_column": self.names.columns["status_column"], "from_status": p["failed_status"],
                               "to_status": p["requeue_status"], "row_count": len(rows), "rows": rows},
                              indent=1, sort_keys=False) + "\n"
        try:
            if not os.path.isdir(p["save_dir"]):
                os.makedirs(p["save_dir"], 0o700)
            fd, tmp = tempfile.mkstemp(prefix=".%s." % name, suffix=".partial", dir=p["save_dir"])
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(tmp, 0o600)
            except BaseException:
                os.unlink(tmp)
                raise
            self.pg.module.atomic_move(tmp, path)
            os.chmod(path, 0o600)
            dir_fd = os.open(p["save_dir"], os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise PgJobError("saving the failed rows to %s: %s (nothing was requeued)" % (path, exc.strerror or exc))
        self.saved_path = path

    @staticmethod
    def csv_text(rows):
        columns = list(rows[0])
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else json.dumps(row[c]) if isinstance(row.get(c), (dict, list))
                             else row[c] for c in columns])
        return out.getvalue()


def main():
    pg = PgModule(argument_spec(), empty_result, record_values=False, supports_check_mode=True,
                  required_if=[("mode", "requeue", ("save_dir",))])
    p = pg.params
    try:
        names = Names(p)
        window_seconds = parse_duration(p["window"])
    except ValueError as exc:
        pg.fail("Checking the options: %s" % exc)
    if not window_seconds or window_seconds <= 0:
        pg.fail("Checking the options: window must be longer than 0 (got %r)" % p["window"])
    for option, low in (("limit", 1), ("threshold", 0), ("errors", 0), ("error_length", 10), ("lock_timeout", 0)):
        if p[option] < low:
            pg.fail("Checking the options: %s must be at least %d (got %d)" % (option, low, p[option]))
    if p["failed_status"] == p["requeue_status"]:
        pg.fail("Checking the options: failed_status and requeue_status are both %r" % p["failed_status"])
    if p["save_dir"] and os.path.lexists(p["save_dir"]) and not os.path.isdir(p["save_dir"]):
        pg.fail("Checking the options: save_dir %s is not a directory" % p["save_dir"])
    pg.result["window_seconds"] = window_seconds
    pg.run(FailedJobs(pg, names, window_seconds))


if __name__ == "__main__":
    main()
