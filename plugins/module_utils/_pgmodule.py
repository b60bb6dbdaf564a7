# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the plumbing every PostgreSQL module shares.

``PgModule`` wraps AnsibleModule: it merges ``postgres_argument_spec()`` with the module's own options, checks
for psycopg2, connects, runs every statement through one ``exec_sql`` that records it in ``queries``, scrubs the
passwords (``login_password``, the one of ``dsn``) from every message once, applies ``fail_on`` and exits with
the same return keys on every path (success, failure, unreachable server, wrong option, missing library).

``PgJob`` is the skeleton of one run: connect, run the steps, close, derive the status from the findings; an
unreachable server is one path for every module (finding ``unreachable``, or ``saturated`` when the server
refuses new connections).

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._common import Findings, fail_message, should_fail
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import (
    HAS_PSYCOPG2,
    PgConnectError,
    connect,
    postgres_argument_spec,
    scrub,
    secrets_of,
)

try:
    import psycopg2
    from psycopg2 import sql as pgsql

    DATABASE_ERRORS = (psycopg2.Error,)
except ImportError:
    pgsql = None
    DATABASE_ERRORS = ()


class PgJobError(Exception):
    """A failure of a step, said in words: the module fails with it (``what`` replaces the job's own)."""

    def __init__(self, message, what=None):
        super(PgJobError, self).__init__(message)
        self.message = message
        self.what = what

    def __str__(self):
        return self.message


class PgModule(object):
    """An AnsibleModule for a PostgreSQL module (in the manner of amazon.aws' AnsibleAWSModule).

    ``empty_result`` returns the module's return keys with their values before anything is known; it must hold
    ``status``, ``findings``, ``queries``, ``error_category`` and ``error``. ``record_values`` records the
    statements with their parameters bound (``cursor.mogrify``); without, only the statement text (identifiers,
    no values). Other keyword arguments go to AnsibleModule.
    """

    def __init__(self, argument_spec, empty_result, record_values=True, **kwargs):
        spec = postgres_argument_spec()
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self.diff_mode = bool(getattr(self.module, "_diff", False))
        self.result = empty_result()
        self.record_values = record_values
        self.what = "Running the PostgreSQL module"  # the job's, once run() has it
        self.conn = None
        self._autocommit = False
        self._secrets = []
        if not HAS_PSYCOPG2:
            self.fail(missing_required_lib("psycopg2"))
        self._secrets = secrets_of(self.params)

    # ------------------------------------------------------------------ the database

    def connect(self, application_name, autocommit=False):
        """Open the connection (raises PgConnectError, whose message never holds a password)."""
        self.conn = connect(self.params, application_name=application_name, autocommit=autocommit)
        self._autocommit = autocommit
        return self.conn

    def close(self):
        """Roll back what was not committed (never hiding the error that got us here) and close."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            if not self._autocommit and not conn.closed:
                conn.rollback()
        except DATABASE_ERRORS:
            pass  # a dead connection: the server has rolled back already
        finally:
            conn.close()

    def exec_sql(self, query, args=None, cursor=None):
        """Run one statement, recorded in ``queries`` before it runs; return its rows ([] when it has none).

        On a cursor of the caller's (to read ``rowcount`` or stay in its transaction), or on a fresh one.
        """
        cur = cursor if cursor is not None else self.conn.cursor()
        try:
            self.result["queries"].append(self.statement_text(cur, query, args))
            cur.execute(query, args)
            return cur.fetchall() if cur.description else []
        finally:
            if cursor is None:
                cur.close()

    def statement_text(self, cur, query, args=None):
        if self.record_values:
            text = cur.mogrify(query, args)
            return text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        if pgsql is not None and isinstance(query, pgsql.Composable):
            return query.as_string(cur)
        return str(query)

    # ------------------------------------------------------------------ exits

    def scrub(self, text):
        return scrub(text, self._secrets)

    def _scrubbed(self, **extra):
        result = dict(self.result, **extra)
        for key in ("msg", "error"):
            if result.get(key):
                result[key] = self.scrub(result[key])
        result["findings"] = [dict(f, message=self.scrub(f.get("message"))) for f in result.get("findings") or []]
        return result

    def fail(self, msg, changed=False):
        """fail_json with every return key, the message scrubbed."""
        self.close()
        self.module.fail_json(**self._scrubbed(msg=msg, changed=changed))

    def exit(self, changed=False, diff=None):
        """exit_json, or fail_json when the status reaches O(fail_on); the same keys either way."""
        if diff is not None and self.diff_mode:
            self.result["diff"] = diff
        status = self.result.get("status")
        if should_fail(status, self.params.get("fail_on")):
            self.fail(fail_message(self.what, status, self.result.get("findings") or []), changed=changed)
        self.module.exit_json(**self._scrubbed(changed=changed))

    def run(self, job):
        """Run a PgJob and exit: a database error or a PgJobError fails the task as "<what>: <cause>"."""
        self.what = job.what
        try:
            job.run()
        except DATABASE_ERRORS + (PgJobError,) as exc:
            self.fail(job.failure_message(exc), changed=job.changed())
        if job.unreachable_fails and self.result.get("error_category"):
            self.fail("Connecting to PostgreSQL: %s" % self.result["error"])
        self.exit(changed=job.changed(), diff=job.diff)


class PgJob(object):
    """One run of a PostgreSQL module against one connection.

    Subclasses set ``application_name`` and ``what`` ("<what was attempted>", the start of every failure
    message), implement ``steps()`` (reading and acting, through ``self.sql``) and ``changed()``.
    ``unreachable_fails``: an unreachable server fails the task instead of being a result.
    """

    application_name = "sre.runbooks"
    what = "Running the PostgreSQL module"
    autocommit = True
    unreachable_fails = False

    def __init__(self, pg, limits=None):
        self.pg = pg
        self.params = pg.params
        self.check_mode = pg.check_mode
        self.limits = limits or {}
        self.result = pg.result
        self.findings = Findings()
        self.conn = None
        self.diff = None

    def sql(self, query, args=None, cursor=None):
        return self.pg.exec_sql(query, args, cursor=cursor)

    def run(self):
        try:
            self.conn = self.pg.connect(self.application_name, autocommit=self.autocommit)
        except PgConnectError as exc:
            return self.unreachable(exc)
        try:
            self.steps()
        finally:
            self.pg.close()
            self.conn = None
            self.result["findings"] = self.findings.as_list()
            self.result["status"] = self.findings.status()
        return self.result

    def unreachable(self, exc):
        """The result when the server cannot be reached; ``too_many_connections`` is a saturated server."""
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

    def steps(self):
        raise NotImplementedError

    def changed(self):
        return False

    def failure_message(self, exc):
        return "%s: %s" % (getattr(exc, "what", None) or self.what, str(exc).strip())


# ---------------------------------------------------------------------- protected sessions (pg_triage, pg_slow_queries)

# Sessions never ended nor cancelled: backups, migrations, replication clients, told by their application_name or
# by their query (fnmatch patterns, case-insensitive). The options protected_applications and protected_queries
# (plugins/doc_fragments/pg_protected.py) default to these.
PROTECTED_APPLICATIONS = [
    "pg_dump*", "pg_dumpall*", "pg_restore*", "pg_basebackup*", "pgbackrest*", "barman*", "wal-g*", "pg_probackup*",
    "*migrat*", "alembic*", "flyway*", "liquibase*", "sqitch*", "dbmate*", "goose*",
    "*walsender*", "walreceiver*", "pg_receivewal*", "pg_recvlogical*", "*replication*",
]
PROTECTED_QUERIES = [
    "*_prisma_migrations*", "*knex_migrations*", "*alembic_version*", "*flyway_schema_history*",
    "*schema_migrations*", "*databasechangelog*", "*django_migrations*", "*sequelizemeta*", "*goose_db_version*",
    "*pg_advisory_lock(72707369)*", "*pg_backup_start*", "*pg_start_backup*", "*base_backup*",
    "*start_replication*", "copy * to stdout*",
]


def protected_argument_spec():
    """The options protected_applications and protected_queries, as documented by the pg_protected fragment."""
    return dict(
        protected_applications=dict(type="list", elements="str", default=list(PROTECTED_APPLICATIONS)),
        protected_queries=dict(type="list", elements="str", default=list(PROTECTED_QUERIES)),
    )


def protected_reason(application, raw_query, application_patterns, query_patterns):
    """Why a session must never be ended nor cancelled ("application_name 'pg_dump' matches 'pg_dump*'"), None
    when it may be.

    ``raw_query`` is the query text as the server has it (pg_stat_activity.query), never the one redacted for the
    report: a pattern may name a literal (the advisory lock key of a migration tool, a backup's COPY target, a
    marker comment or string), which the redacted text has replaced by ?. White space is collapsed here; the
    reason names the pattern, never the text.
    """
    app = (application or "").lower()
    if app:
        for pattern in application_patterns or ():
            if fnmatch.fnmatchcase(app, str(pattern).lower()):
                return "application_name %r matches %r" % (application, pattern)
    text = " ".join((raw_query or "").lower().split())
    if text:
        for pattern in query_patterns or ():
            if fnmatch.fnmatchcase(text, str(pattern).lower()):
                return "query matches %r" % (pattern,)
    return None
