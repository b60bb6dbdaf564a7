# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: PostgreSQL connection options, connecting, error categories.

Kept in lockstep with the doc fragment ``sre.runbooks.postgres`` (plugins/doc_fragments/postgres.py).
The modules' shared plumbing (argspec merge, exec_sql, exits) is in _pgmodule.py.
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


def secrets_of(params):
    """The passwords the params hold: login_password and the password of dsn."""
    found = [params.get("login_password")]
    if HAS_PSYCOPG2 and params.get("dsn"):
        try:
            found.append(connection_kwargs(dict(params, login_password=None)).get("password"))
        except PgConnectError:
            pass  # an invalid dsn: its password= / URL password is still caught by scrub's patterns
    return [secret for secret in found if secret]


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
