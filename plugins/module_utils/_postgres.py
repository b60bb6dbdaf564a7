# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: PostgreSQL connection options, connecting, error categories.

Kept in lockstep with the doc fragment ``sre.runbooks.postgres`` (plugins/doc_fragments/postgres.py).
Also holds the pure helpers of pg_triage (backend kinds, blocking chains), so they can be unit tested without a
server.
Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:
    import psycopg2
    from psycopg2.extensions import parse_dsn

    HAS_PSYCOPG2 = True
except ImportError:
    psycopg2 = None
    parse_dsn = None
    HAS_PSYCOPG2 = False

SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
DEFAULT_PORT = 5432
DEFAULT_USER = "postgres"
ERROR_CATEGORIES = ("dns", "refused", "timeout", "auth", "ssl", "too_many_connections", "other")


def postgres_argument_spec():
    """The connection options shared by the collection's PostgreSQL modules (a fresh dict each call)."""
    return dict(
        login_host=dict(type="str"),
        login_port=dict(type="int", default=DEFAULT_PORT),
        login_user=dict(type="str", default=DEFAULT_USER),
        login_password=dict(type="str", no_log=True),
        login_db=dict(type="str"),
        login_unix_socket=dict(type="str"),
        ssl_mode=dict(type="str", choices=list(SSL_MODES), default="prefer"),
        ca_cert=dict(type="path"),
        connect_timeout=dict(type="int", default=10),
        dsn=dict(type="str", no_log=True),
    )


class PgConnectError(Exception):
    """A connection failure with a category and a message that never holds the password."""

    def __init__(self, category, message):
        super(PgConnectError, self).__init__(message)
        self.category = category
        self.message = message

    def __str__(self):
        return self.message


_URL_PASSWORD_RE = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)([^@\s]*)(@)", re.IGNORECASE)
_KV_PASSWORD_RE = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def scrub(text, secrets=()):
    """Remove passwords from text: the given secrets, URL passwords and password=... pairs."""
    if text is None:
        return None
    text = str(text)
    for secret in secrets:
        if secret:
            text = text.replace(str(secret), "********")
    text = _URL_PASSWORD_RE.sub(r"\1********\3", text)
    text = _KV_PASSWORD_RE.sub(r"\1********", text)
    return text


_CATEGORY_PATTERNS = (
    ("too_many_connections", ("too many clients", "remaining connection slots are reserved",
                              "too many connections")),
    ("dns", ("could not translate host name", "name or service not known", "temporary failure in name resolution",
             "nodename nor servname", "no address associated")),
    ("refused", ("connection refused", "no such file or directory", "could not connect to server: no route")),
    ("timeout", ("timeout expired", "timed out", "connection timeout")),
    ("auth", ("password authentication failed", "authentication failed", "no pg_hba.conf entry",
              "no password supplied", "pg_hba.conf rejects", "role \"", "permission denied for database",
              "must be superuser")),
    ("ssl", ("ssl", "certificate", "tls")),
)


def categorize(message):
    """Map a libpq/psycopg2 connection error message to one of ERROR_CATEGORIES."""
    text = (message or "").lower()
    for category, needles in _CATEGORY_PATTERNS:
        if any(needle in text for needle in needles):
            return category
    return "other"


def connection_kwargs(params):
    """psycopg2.connect() keyword arguments from the module params.

    The DSN (URL or key=value) is the base; explicit login_* options override its parts. login_port and
    login_user only override a DSN when they differ from their defaults (5432, postgres).
    """
    kwargs = {}
    if params.get("dsn"):
        try:
            kwargs.update(parse_dsn(params["dsn"]))
        except psycopg2.Error as exc:
            raise PgConnectError("other", "invalid dsn: %s" % scrub(str(exc).strip(), [params.get("login_password")]))
    overrides = (("login_host", "host"), ("login_password", "password"),
                 ("login_db", "dbname"), ("db", "dbname"), ("ca_cert", "sslrootcert"))
    for option, key in overrides:
        if params.get(option) not in (None, ""):
            kwargs[key] = params[option]
    if params.get("login_unix_socket") and not params.get("login_host"):
        kwargs["host"] = params["login_unix_socket"]
    for option, key, default in (("login_port", "port", DEFAULT_PORT), ("login_user", "user", DEFAULT_USER)):
        value = params.get(option)
        if value in (None, ""):
            continue
        if key not in kwargs or value != default:
            kwargs[key] = value
    ssl_mode = params.get("ssl_mode")
    if ssl_mode and ("sslmode" not in kwargs or ssl_mode != "prefer"):
        kwargs["sslmode"] = ssl_mode
    timeout = params.get("connect_timeout")
    if timeout is not None and ("connect_timeout" not in kwargs or timeout != 10):
        kwargs["connect_timeout"] = timeout
    for key in ("port", "connect_timeout"):
        if key in kwargs:
            kwargs[key] = str(kwargs[key])
    return kwargs


def _secrets(params, kwargs=None):
    found = [params.get("login_password")]
    if kwargs:
        found.append(kwargs.get("password"))
    return [s for s in found if s]


def connect(params, application_name=None, autocommit=False):
    """Open a psycopg2 connection from the module params; raise PgConnectError (never with the password)."""
    if not HAS_PSYCOPG2:
        raise PgConnectError("other", "psycopg2 is not installed")
    kwargs = connection_kwargs(params)
    if application_name and "application_name" not in kwargs:
        kwargs["application_name"] = application_name
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        message = scrub(str(exc).strip(), _secrets(params, kwargs))
        raise PgConnectError(categorize(message), message)
    if autocommit:
        conn.autocommit = True
    return conn


# --------------------------------------------------------------------------- pg_triage helpers

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
