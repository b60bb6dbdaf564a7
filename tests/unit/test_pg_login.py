# SPDX-License-Identifier: GPL-3.0-or-later
"""sre.runbooks.pg_login: the one database login of the roles, over a table of inputs."""

from __future__ import annotations

import sys

import pytest
from ansible.errors import AnsibleFilterError

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.filter.pg_login import pg_login  # noqa: E402

SOCK = "/var/run/postgresql"

CASES = [
    # (id, input, expected subset of the result)
    ("nothing set: libpq defaults", {},
     {"host": "", "port": 5432, "user": "postgres", "password": "", "dbname": "postgres", "become": False,
      "modules": {"login_port": 5432, "login_user": "postgres", "login_db": "postgres"}}),
    ("host, port, user, password, name",
     {"host": "db.internal", "port": "6432", "user": "app", "password": "s3cret", "name": "shop"},
     {"host": "db.internal", "port": 6432, "user": "app", "password": "s3cret", "dbname": "shop",
      "argv": ["-h", "db.internal", "-p", "6432", "-U", "app"],
      "env": {"PGHOST": "db.internal", "PGPORT": "6432", "PGUSER": "app", "PGDATABASE": "shop"},
      "passfile": "*:*:*:*:s3cret\n"}),
    ("URL DSN with a percent-encoded password",
     {"dsn": "postgresql://app:p%40ss%3Aw%2Fx@db.example:6543/shop"},
     {"host": "db.example", "port": 6543, "user": "app", "password": "p@ss:w/x", "dbname": "shop",
      "passfile": "*:*:*:*:p@ss\\:w/x\n"}),
    ("URL DSN with sslmode",
     {"dsn": "postgres://app:pw@db.example/shop?sslmode=verify-full&sslrootcert=/etc/ca.pem"},
     {"sslmode": "verify-full", "port": 5432,
      "modules": {"login_host": "db.example", "login_port": 5432, "login_user": "app", "login_password": "pw",
                  "login_db": "shop", "ssl_mode": "verify-full", "ca_cert": "/etc/ca.pem"},
      "env": {"PGHOST": "db.example", "PGPORT": "5432", "PGUSER": "app", "PGDATABASE": "shop",
              "PGSSLMODE": "verify-full", "PGSSLROOTCERT": "/etc/ca.pem"}}),
    ("key=value DSN, quoted password, extra parameter",
     {"dsn": "host=db port=5433 user=u password='a b\\'c' dbname=x application_name=app1"},
     {"host": "db", "port": 5433, "user": "u", "password": "a b'c", "dbname": "x",
      "modules": {"login_host": "db", "login_port": 5433, "login_user": "u", "login_password": "a b'c",
                  "login_db": "x", "dsn": "application_name=app1"},
      "community": {"login_host": "db", "login_port": 5433, "login_user": "u", "login_password": "a b'c",
                    "login_db": "x", "connect_params": {"application_name": "app1"}},
      "env": {"PGHOST": "db", "PGPORT": "5433", "PGUSER": "u", "PGDATABASE": "x", "PGAPPNAME": "app1"}}),
    ("explicit parts override the DSN; port 5432 and user postgres count as unset",
     {"dsn": "postgresql://app:old@db:6000/shop", "port": 5432, "user": "postgres", "password": "new",
      "name": "other", "ssl_mode": "require"},
     {"host": "db", "port": 6000, "user": "app", "password": "new", "dbname": "other", "sslmode": "require"}),
    ("socket only, app login with its password",
     {"unix_socket": SOCK, "user": "app", "password": "pw"},
     {"host": SOCK, "user": "app", "password": "pw", "become": False, "over_socket": True}),
    ("socket and host without admin: the host",
     {"unix_socket": SOCK, "host": "127.0.0.1", "user": "app", "password": "pw"},
     {"host": "127.0.0.1", "user": "app", "password": "pw", "over_socket": False}),
    ("admin over the socket with become (peer authentication), never the app's password",
     {"host": "127.0.0.1", "unix_socket": SOCK, "user": "app", "password": "pw", "admin_user": "postgres",
      "name": "saasresto"},
     {"host": SOCK, "user": "postgres", "password": "", "dbname": "saasresto", "become": True,
      "become_user": "postgres", "admin": True, "passfile": "",
      "modules": {"login_host": SOCK, "login_port": 5432, "login_user": "postgres", "login_db": "saasresto"}}),
    ("admin over the socket, become turned off",
     {"unix_socket": SOCK, "admin_user": "postgres", "become": "false", "password": "pw"},
     {"host": SOCK, "user": "postgres", "password": "", "become": False, "become_user": None, "admin": True}),
    ("admin with a password over TCP",
     {"host": "db", "unix_socket": SOCK, "user": "app", "password": "pw", "admin_user": "root",
      "admin_password": "adm"},
     {"host": "db", "user": "root", "password": "adm", "become": False, "admin": True}),
    ("admin with a password and a DSN: the DSN's host and database, the admin's user",
     {"dsn": "postgresql://app:pw@db:5555/shop", "admin_user": "root", "admin_password": "adm"},
     {"host": "db", "port": 5555, "user": "root", "password": "adm", "dbname": "shop"}),
    ("admin without socket nor password: the app's login",
     {"host": "db", "user": "app", "password": "pw", "admin_user": "postgres"},
     {"host": "db", "user": "app", "password": "pw", "admin": False, "become": False}),
    ("DSN and admin over the socket: socket, admin, the DSN's database",
     {"dsn": "postgresql://app:pw@db/appdb", "unix_socket": SOCK, "admin_user": "postgres"},
     {"host": SOCK, "user": "postgres", "password": "", "dbname": "appdb", "become": True}),
    ("passfile escapes backslash and colon",
     {"host": "h", "password": "a:b\\c"},
     {"passfile": "*:*:*:*:a\\:b\\\\c\n"}),
]


def _subset(expected, actual, path="result"):
    for key, value in expected.items():
        assert key in actual, "%s: missing %s" % (path, key)
        if isinstance(value, dict) and key not in ("modules", "community", "env"):
            _subset(value, actual[key], path + "." + key)
        else:
            assert actual[key] == value, "%s.%s: %r != %r" % (path, key, actual[key], value)


@pytest.mark.parametrize("spec, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pg_login(spec, expected):
    _subset(expected, pg_login(spec))


@pytest.mark.parametrize("spec", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_no_password_in_env_or_argv(spec):
    out = pg_login(spec)
    if out["password"]:
        assert out["password"] not in " ".join(out["argv"])
        assert out["password"] not in " ".join(out["env"].values())
        assert "PGPASSWORD" not in out["env"]


@pytest.mark.parametrize("spec, message", [
    ({"dsn": "postgresql://app:hunter2@db/x?bogus=1"}, "pg_login: invalid dsn"),
    ({"dsn": "host=db password=hunter2 nonsense"}, "pg_login: invalid dsn"),
    ({"port": "fivefourthreetwo"}, "port must be a number"),
    ({"port": 70000}, "port must be between"),
    ({"ssl_mode": "maybe"}, "ssl_mode must be one of"),
    ({"unix_socket": "run/postgresql"}, "unix_socket must be a directory"),
    ({"become": True}, "become needs admin_user"),
    ({"become": "perhaps", "admin_user": "postgres"}, "become must be true or false"),
    ({"hots": "db"}, "unknown key(s) hots"),
    ("postgresql://x", "the input must be a dict"),
])
def test_bad_input_is_one_clear_error(spec, message):
    with pytest.raises(AnsibleFilterError) as err:
        pg_login(spec)
    assert message in str(err.value)
    assert "hunter2" not in str(err.value)


ROLES = ("slow_queries", "db_connections", "login", "data_integrity", "backup", "db_restore")


@pytest.mark.parametrize("role", ROLES)
def test_roles_log_in_and_confirm_one_way(role):
    """No role parses a DSN or a confirmation itself: the login comes from pg_login, the answer from the guard."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[2] / "roles" / role
    texts = {p: p.read_text() for p in root.rglob("*.yml")}
    for path, text in texts.items():
        assert "urlsplit" not in text, path
        assert "in ['yes', 'true'" not in text and "_confirm | bool" not in text, path
    assert any("sre.runbooks.pg_login" in t for t in texts.values())
    assert any("name: sre.runbooks.confirm" in t for t in texts.values())
