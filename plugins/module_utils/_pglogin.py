# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the one database login of the roles (filter sre.runbooks.pg_login).

Turns the shared inventory contract (sre_db_host, sre_db_port, sre_db_user, sre_db_password, sre_db_name,
sre_db_unix_socket, sre_db_dsn, sre_db_admin_user; or a role's own copies of them) into one resolved login and
the shapes the roles need: options of the collection's PostgreSQL modules (group/sre.runbooks.postgres), options
of community.postgresql modules (group/community.postgresql.all), and, for psql/pg_dump/pg_restore, libpq
environment variables and argv without any secret plus a passfile line for PGPASSFILE.

The DSN is parsed by _postgres.connection_kwargs (URL or key=value, percent-encoded parts, sslmode). Not a public
API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.sre.runbooks.plugins.module_utils._postgres import (
    DEFAULT_PORT, DEFAULT_USER, HAS_PSYCOPG2, SSL_MODES, PgConnectError, connection_kwargs,
)

DEFAULT_DB = "postgres"

# Input keys (a role passes its own variables under these names).
INPUT_KEYS = ("host", "port", "user", "password", "name", "unix_socket", "dsn", "admin_user", "admin_password",
              "become", "ssl_mode", "ca_cert", "connect_timeout")

# libpq keyword -> environment variable (https://www.postgresql.org/docs/current/libpq-envars.html).
# password is never turned into PGPASSWORD: it goes through a passfile.
LIBPQ_ENV = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER",
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL", "sslcompression": "PGSSLCOMPRESSION", "requiressl": "PGREQUIRESSL",
    "connect_timeout": "PGCONNECT_TIMEOUT", "options": "PGOPTIONS", "application_name": "PGAPPNAME",
    "target_session_attrs": "PGTARGETSESSIONATTRS", "gssencmode": "PGGSSENCMODE", "krbsrvname": "PGKRBSRVNAME",
    "service": "PGSERVICE", "channel_binding": "PGCHANNELBINDING", "sslsni": "PGSSLSNI",
    "client_encoding": "PGCLIENTENCODING", "passfile": "PGPASSFILE", "load_balance_hosts": "PGLOADBALANCEHOSTS",
}
# libpq keywords that have a login_* option of their own in either module family.
_OWN_OPTIONS = ("host", "port", "user", "password", "dbname", "sslmode", "sslrootcert")


class PgLoginError(ValueError):
    """Input that is not a login (message never holds the password)."""


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        raise PgLoginError("expected a text, got a boolean")
    return str(value).strip()


def _bool(value, name):
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("yes", "y", "true", "on", "1"):
        return True
    if word in ("no", "n", "false", "off", "0"):
        return False
    raise PgLoginError("%s must be true or false, got %r" % (name, value))


def _port(value):
    text = _text(value)
    if not text:
        return None
    try:
        port = int(text)
    except ValueError:
        raise PgLoginError("port must be a number, got %r" % (text,))
    if not 0 < port < 65536:
        raise PgLoginError("port must be between 1 and 65535, got %d" % port)
    return port


def resolve(spec):
    """The one login from a dict of INPUT_KEYS (missing or empty values are unset).

    Rules (the same for every role):
      - the DSN (URL or key=value) is the base; host, port, user, password, name, ssl_mode set explicitly
        override its parts; port 5432 and user postgres count as unset (they are the roles' defaults);
      - with admin_user set and either a unix socket (peer authentication) or admin_password, the login is the
        admin's: user admin_user, password admin_password (never the app's), no password over the socket;
      - become (peer authentication: run the database tasks as the admin OS user) defaults to admin login over
        the socket without an admin password; an explicit become wins;
      - over the socket (become, or no host anywhere) the host is the socket directory;
      - nothing set: libpq's defaults for host, database postgres, user postgres.
    """
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise PgLoginError("the input must be a dict of %s, got %s" % (", ".join(INPUT_KEYS), type(spec).__name__))
    unknown = sorted(set(spec) - set(INPUT_KEYS))
    if unknown:
        raise PgLoginError("unknown key(s) %s (known: %s)" % (", ".join(map(str, unknown)), ", ".join(INPUT_KEYS)))
    host = _text(spec.get("host"))
    socket = _text(spec.get("unix_socket"))
    dsn = _text(spec.get("dsn"))
    admin = _text(spec.get("admin_user"))
    admin_password = _text(spec.get("admin_password"))
    password = "" if spec.get("password") is None else str(spec.get("password"))
    ssl_mode = _text(spec.get("ssl_mode"))
    if ssl_mode and ssl_mode not in SSL_MODES:
        raise PgLoginError("ssl_mode must be one of %s, got %r" % (", ".join(SSL_MODES), ssl_mode))
    port = _port(spec.get("port"))
    timeout = _text(spec.get("connect_timeout"))
    if socket and not socket.startswith("/"):
        raise PgLoginError("unix_socket must be a directory path (starting with /), got %r" % (socket,))

    use_admin = bool(admin) and bool(socket or admin_password)
    become = _bool(spec.get("become"), "become")
    if become is None:
        become = use_admin and bool(socket) and not admin_password
    if become and not admin:
        raise PgLoginError("become needs admin_user (the OS user to become for peer authentication)")

    params = {"dsn": dsn, "login_port": port, "ssl_mode": ssl_mode or None,
              "ca_cert": _text(spec.get("ca_cert")) or None}
    if timeout:
        params["connect_timeout"] = timeout
    if dsn and not HAS_PSYCOPG2:
        raise PgLoginError("parsing the DSN needs the psycopg2 Python library on the controller")
    try:
        base = connection_kwargs({"dsn": dsn}) if dsn else {}
        kwargs = connection_kwargs(params)
    except PgConnectError as exc:
        raise PgLoginError(exc.message)

    if use_admin:
        kwargs["user"] = admin
        kwargs.pop("password", None)
        if admin_password:
            kwargs["password"] = admin_password
    else:
        user = _text(spec.get("user"))
        if user and (user != DEFAULT_USER or "user" not in base):
            kwargs["user"] = user
        if password:
            kwargs["password"] = password
    over_socket = bool(socket) and (become or (use_admin and not admin_password) or not (host or base.get("host")))
    if over_socket:
        kwargs["host"] = socket
        kwargs.pop("hostaddr", None)
        if become or (use_admin and not admin_password):
            kwargs.pop("password", None)
    elif host:
        kwargs["host"] = host
        kwargs.pop("hostaddr", None)
    name = _text(spec.get("name"))
    if name:
        kwargs["dbname"] = name
    kwargs.setdefault("dbname", DEFAULT_DB)
    kwargs.setdefault("user", DEFAULT_USER)
    kwargs.setdefault("port", str(DEFAULT_PORT))
    if kwargs.get("sslmode") == "prefer" and "sslmode" not in base and not ssl_mode:
        kwargs.pop("sslmode")
    return {
        "kwargs": kwargs,
        "become": bool(become),
        "become_user": admin if become else None,
        "admin": use_admin,
        "over_socket": over_socket,
    }


def _clean(options):
    return dict((k, v) for k, v in options.items() if v not in (None, "", {}))


def views(resolved):
    """The shapes the roles use, from resolve()'s result."""
    kw = resolved["kwargs"]
    extras = dict((k, v) for k, v in kw.items() if k not in _OWN_OPTIONS)
    host = kw.get("host", "")
    port = int(kw["port"]) if str(kw.get("port", "")).isdigit() else DEFAULT_PORT
    common = {
        "login_host": host,
        "login_port": port,
        "login_user": kw.get("user"),
        "login_password": kw.get("password"),
        "login_db": kw.get("dbname"),
        "ssl_mode": kw.get("sslmode"),
        "ca_cert": kw.get("sslrootcert"),
    }
    modules = dict(common)
    if "connect_timeout" in extras:
        modules["connect_timeout"] = int(extras.pop("connect_timeout")) if str(extras["connect_timeout"]).isdigit() \
            else extras.pop("connect_timeout")
    leftover = dict((k, v) for k, v in extras.items() if k != "connect_timeout")
    if leftover:  # libpq parameters without an option of their own travel as a key=value DSN
        modules["dsn"] = " ".join("%s=%s" % (k, _kv_quote(v)) for k, v in sorted(leftover.items()))
    community = dict(common)
    if extras:
        community["connect_params"] = dict(extras)
    env = dict((LIBPQ_ENV[k], str(v)) for k, v in kw.items() if k in LIBPQ_ENV and k != "password")
    argv = []
    for flag, key in (("-h", "host"), ("-p", "port"), ("-U", "user")):
        if kw.get(key):
            argv += [flag, str(kw[key])]
    password = kw.get("password") or ""
    return {
        "host": host,
        "port": port,
        "user": kw.get("user"),
        "password": password,
        "dbname": kw.get("dbname"),
        "sslmode": kw.get("sslmode", ""),
        "become": resolved["become"],
        "become_user": resolved["become_user"],
        "admin": resolved["admin"],
        "over_socket": resolved["over_socket"],
        "modules": _clean(modules),
        "community": _clean(community),
        "env": env,
        "argv": argv,
        "passfile": ("*:*:*:*:%s\n" % passfile_escape(password)) if password else "",
    }


def _kv_quote(value):
    text = str(value)
    if text and not any(c in text for c in " '\\"):
        return text
    return "'%s'" % text.replace("\\", "\\\\").replace("'", "\\'")


def passfile_escape(text):
    """A field of a .pgpass line: backslash and colon escaped."""
    return str(text).replace("\\", "\\\\").replace(":", "\\:")


def pg_login(spec):
    """resolve() then views(): the one login, in every shape."""
    return views(resolve(spec))
