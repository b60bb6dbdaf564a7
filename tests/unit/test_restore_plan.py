# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for plugins/module_utils/_restore.py: which command line restores which format x compression,
-j only where pg_restore can run in parallel, how the tools log in (conninfo without the password, a 0600
pgpass file)."""

from __future__ import annotations

import os
import stat
import tempfile
import sys

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _restore  # noqa: E402

TOOLS = {"psql": "/pg/psql", "pg_restore": "/pg/pg_restore", "gzip": "/bin/gzip", "bzip2": "/bin/bzip2", "xz": "/bin/xz"}
CONN = "dbname='x' host='h'"
PSQL = ["/pg/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--no-password", "-o", os.devnull, "-d", CONN]
PGR = ["/pg/pg_restore", "--exit-on-error", "--no-password", "-d", CONN]

# (format, compression, jobs) -> (argv, decompress_argv, jobs used)
TABLE = [
    ("plain", "none", 4, PSQL + ["-f", "D"], None, 1),
    ("plain", None, 1, PSQL + ["-f", "D"], None, 1),
    ("plain", "gzip", 4, PSQL, ["/bin/gzip", "-dc", "--", "D"], 1),
    ("plain", "bzip2", 1, PSQL, ["/bin/bzip2", "-dc", "--", "D"], 1),
    ("plain", "xz", 1, PSQL, ["/bin/xz", "-dc", "--", "D"], 1),
    ("custom", "none", 4, PGR + ["-j", "4", "D"], None, 4),
    ("custom", "none", 1, PGR + ["D"], None, 1),
    ("custom", "gzip", 4, PGR + ["--format", "custom", "--"], ["/bin/gzip", "-dc", "--", "D"], 1),
    ("custom", "xz", 4, PGR + ["--format", "custom", "--"], ["/bin/xz", "-dc", "--", "D"], 1),
    ("directory", "none", 3, PGR + ["-j", "3", "D"], None, 3),
    ("directory", "gzip", 3, PGR + ["-j", "3", "D"], None, 3),  # gzip data files: pg_restore reads them itself
    ("tar", "none", 4, PGR + ["D"], None, 1),
    ("tar", "gzip", 4, PGR + ["--format", "tar", "--"], ["/bin/gzip", "-dc", "--", "D"], 1),
    ("tar", "bzip2", 2, PGR + ["--format", "tar", "--"], ["/bin/bzip2", "-dc", "--", "D"], 1),
]


@pytest.mark.parametrize("fmt,compression,jobs,argv,decompress_argv,used", TABLE)
def test_the_command_for_each_format_and_compression(fmt, compression, jobs, argv, decompress_argv, used):
    plan = _restore.restore_plan("D", fmt, compression, CONN, jobs=jobs, tools=TOOLS)
    assert plan["tool"] == ("psql" if fmt == "plain" else "pg_restore")
    assert plan["argv"] == argv
    assert plan["decompress_argv"] == decompress_argv
    assert plan["stdin"] is (decompress_argv is not None)
    assert plan["jobs"] == used
    assert ("-j" in plan["argv"]) is (used > 1)


@pytest.mark.parametrize("fmt,compression,jobs,argv,decompress_argv,used", TABLE)
def test_own_inflate_when_the_program_is_missing(fmt, compression, jobs, argv, decompress_argv, used):
    plan = _restore.restore_plan("D", fmt, compression, CONN, jobs=jobs, tools=TOOLS, inflate=True)
    assert plan["argv"] == argv and plan["decompress_argv"] is None
    assert plan["stdin"] is (decompress_argv is not None)
    if plan["stdin"]:
        assert plan["decompress"] == compression and "own %s inflate" % compression in _restore.plan_summary(plan)


def test_no_owner_only_for_pg_restore():
    assert "--no-owner" in _restore.restore_plan("D", "custom", "none", CONN, no_owner=True, tools=TOOLS)["argv"]
    assert "--no-privileges" in _restore.restore_plan("D", "tar", "none", CONN, no_owner=True, tools=TOOLS)["argv"]
    assert "--no-owner" not in _restore.restore_plan("D", "plain", "none", CONN, no_owner=True, tools=TOOLS)["argv"]
    assert "--no-owner" not in _restore.restore_plan("D", "custom", "none", CONN, tools=TOOLS)["argv"]


@pytest.mark.parametrize("fmt,compression,needle", [
    ("plain", "zstd", "zstd-compressed"), ("custom", "lz4", "lz4-compressed"), ("tar", "zstd", "zstd-compressed"),
    ("files", "none", "format 'files'"), (None, "none", "format None"),
])
def test_what_cannot_be_restored_says_why(fmt, compression, needle):
    with pytest.raises(_restore.RestoreError) as err:
        _restore.restore_plan("D", fmt, compression, CONN, tools=TOOLS)
    assert needle in str(err.value)


@pytest.mark.parametrize("plan,summary", [
    (dict(tool="psql", jobs=1, stdin=False, decompress=None, decompress_argv=None), "psql"),
    (dict(tool="pg_restore", jobs=4, stdin=False, decompress=None, decompress_argv=None), "pg_restore -j 4"),
    (dict(tool="psql", jobs=1, stdin=True, decompress="gzip", decompress_argv=["gzip"]), "gzip -dc | psql"),
])
def test_plan_summary(plan, summary):
    assert _restore.plan_summary(plan) == summary


@pytest.mark.parametrize("params,expected", [
    ({"login_host": "127.0.0.1", "login_port": 5433, "login_user": "admin", "login_password": "s3cr:t"},
     {"host": "127.0.0.1", "port": "5433", "user": "admin"}),
    ({"dsn": "postgresql://app:p%40ss@db.test:6543/app?sslmode=require", "login_port": 5432, "login_user": "postgres"},
     {"host": "db.test", "port": "6543", "user": "app", "sslmode": "require"}),
    ({"login_unix_socket": "/run/postgresql", "login_user": "postgres", "login_db": "postgres"}, {"host": "/run/postgresql"}),
])
def test_conninfo_has_every_option_but_the_password(params, expected):
    pytest.importorskip("psycopg2")
    from psycopg2.extensions import parse_dsn

    info, password = _restore.conninfo(params, "it's \\ odd")
    parsed = parse_dsn(info)
    assert parsed["dbname"] == "it's \\ odd"
    for key, value in expected.items():
        assert parsed[key] == value
    assert "password" not in parsed
    secret = params.get("login_password") or ("p@ss" if "dsn" in params else None)
    assert password == secret
    if secret:
        assert secret not in info


@pytest.mark.parametrize("password,line", [
    ("plain", "*:*:*:*:plain\n"), ("co:lon", "*:*:*:*:co\\:lon\n"), ("back\\slash", "*:*:*:*:back\\\\slash\n"),
])
def test_pgpass_file_is_private_and_removed(password, line, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with _restore.PgPassFile(password) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path) as handle:
            assert handle.read() == line
        # unlinked as soon as written: a killed module leaves no password on disk
        assert list(tmp_path.iterdir()) == [] and _restore.passfile_fds(path) == (int(path.rsplit("/", 1)[1]),)
    assert not os.path.exists(path) and list(tmp_path.iterdir()) == []


def test_no_password_no_pgpass_file_and_line_breaks_refused():
    with _restore.PgPassFile(None) as path:
        assert path is None
    with pytest.raises(_restore.RestoreError):
        with _restore.PgPassFile("two\nlines"):
            pass


def test_tool_env_drops_an_inherited_pgpassword(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "inherited")
    env = _restore.tool_env("/tmp/pass")
    assert env["PGPASSFILE"] == "/tmp/pass" and "PGPASSWORD" not in env
    assert _restore.tool_env(None)["PGPASSWORD"] == "inherited"  # peer/own .pgpass: the environment as it is


TOC = """;
; Archive created at 2026-01-02 02:00:00 UTC
;
215; 1262 16384 DATABASE - cookcam cookcam
2; 3079 16385 EXTENSION - pg_stat_statements
3356; 0 0 COMMENT - EXTENSION pg_stat_statements
3; 3079 16420 EXTENSION - citext
3357; 0 0 COMMENT - EXTENSION citext
216; 1259 16430 TABLE public stripe_webhook_events cookcam
3350; 0 16430 TABLE DATA public stripe_webhook_events cookcam
""".splitlines()


def test_extensions_a_login_may_not_create_are_left_out():
    # a superuser restores everything; another login leaves out the untrusted ones only, each named once
    assert _restore.extensions_to_leave_out(TOC, True, set()) == []
    assert _restore.extensions_to_leave_out(TOC, False, {"citext"}) == ["pg_stat_statements"]
    assert _restore.extensions_to_leave_out(TOC, False, set()) == ["pg_stat_statements", "citext"]
    assert _restore.extensions_to_leave_out(TOC[:4] + TOC[-2:], False, set()) == []
