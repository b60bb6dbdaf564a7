# SPDX-License-Identifier: GPL-3.0-or-later
"""One restore, two callers: backup_verify's trial restore and pg_restore_into (db_restore's restore) over the
same format x compression table against a real throwaway cluster, and they must agree on tables, rows and
missing tables. Then pg_restore_into on its own: check mode, bad input, the password path."""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import shutil
import tempfile

import pytest

SOURCE_TABLES = {"public.customers", "shop.orders", "shop.Odd Name", "public.empty_table"}
ROWS = 3000 + 5000 + 500

# name in the corpus (or derived below) -> (format, compression as backup_verify reports it)
TABLE = {
    "plain.sql": ("plain", "none"),
    "plain_multimember.sql.gz": ("plain", "gzip"),
    "plain.sql.bz2": ("plain", "bzip2"),
    "plain.sql.xz": ("plain", "xz"),
    "custom.dump": ("custom", "none"),
    "custom_z0.dump": ("custom", "none"),
    "custom_pipe.dump": ("custom", "none"),
    "custom.dump.gz": ("custom", "gzip"),
    "custom.dump.xz": ("custom", "xz"),
    "dir.d": ("directory", "gzip"),
    "archive.tar": ("tar", "none"),
    "archive.tar.bz2": ("tar", "bzip2"),
}
RUN = {}


@pytest.fixture(autouse=True)
def _runner(module_runner):
    RUN["module"] = module_runner


def run(name, args, check_mode=False, env=None):
    result = RUN["module"](name, args, check_mode=check_mode, env=env)
    assert "Traceback" not in result["raw"], result["raw"]
    return result


@pytest.fixture(scope="module")
def dumps(corpus, tmp_path_factory):
    """The corpus' valid dumps of every format plus compressed archives ('pg_dump -Fc | gzip')."""
    base = tmp_path_factory.mktemp("restore_table")
    out = {name: corpus[name][0] for name in TABLE if name in corpus}
    custom = open(corpus["custom_pipe.dump"][0], "rb").read()
    tar = open(corpus["archive.tar"][0], "rb").read()
    for name, data in (("custom.dump.gz", gzip.compress(custom)), ("custom.dump.xz", lzma.compress(custom)),
                       ("archive.tar.bz2", bz2.compress(tar))):
        (base / name).write_bytes(data)
        out[name] = str(base / name)
    assert set(out) == set(TABLE)
    return out


def databases(cluster, like):
    return cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE '%s' ORDER BY 1" % like).split()


def drop(cluster, name):
    cluster.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_trial_restore_and_pg_restore_into_agree(pg_cluster, dumps, name):
    fmt, compression = TABLE[name]
    trial = run("backup_verify", dict(path=dumps[name], trial_restore=True, trial_restore_jobs=2, **pg_cluster.login_args()))
    assert trial["valid"] is True, trial["findings"]
    assert (trial["format"], trial["compression"]) == (fmt, compression)
    tr = trial["trial_restore"]
    assert tr["ok"] is True, tr
    target = "restore_into_%s" % name.replace(".", "_")
    drop(pg_cluster, target)
    res = run("pg_restore_into", dict(path=dumps[name], db=target, jobs=2, **pg_cluster.login_args()))
    try:
        assert res.get("failed") is not True, res["msg"]
        assert res["changed"] is True and res["created"] is True
        assert (res["format"], res["compression"]) == (fmt, compression)
        assert (res["tables"], res["rows"], res["missing"]) == (tr["tables"], tr["rows"], tr["missing"])
        assert (res["tables"], res["rows"], res["missing"]) == (4, ROWS, [])
        assert {t["name"] for t in res["table_rows"]} == SOURCE_TABLES
        assert res["seconds"] > 0 and res["queries"]
        assert ("-j 2" in res["command"]) is (fmt == "directory" or (fmt == "custom" and compression == "none"))
        assert ("-dc | " in res["command"]) is (fmt != "directory" and compression != "none")
        assert pg_cluster.password not in res["raw"] and pg_cluster.password not in trial["raw"]
        rows = pg_cluster.psql('SELECT count(*) FROM shop."Odd Name"', dbname=target).strip()
        assert rows == "500"
    finally:
        drop(pg_cluster, target)
    assert databases(pg_cluster, "sre_trial_restore_%") == []


@pytest.mark.parametrize("name", ["plain_multimember.sql.gz", "custom.dump.xz", "archive.tar.bz2"])
def test_own_inflate_when_no_decompressor_is_installed(pg_cluster, dumps, name, tmp_path):
    target = "restore_inflate"
    drop(pg_cluster, target)
    res = run("pg_restore_into", dict(path=dumps[name], db=target, pg_bindir=str(pg_cluster.bindir), **pg_cluster.login_args()),
              env={"PATH": str(tmp_path)})
    try:
        assert res.get("failed") is not True, res["msg"]
        assert res["command"].startswith("own ") and (res["tables"], res["rows"]) == (4, ROWS)
    finally:
        drop(pg_cluster, target)


def test_check_mode_restores_nothing(pg_cluster, dumps):
    res = run("pg_restore_into", dict(path=dumps["custom.dump"], db="restore_check", jobs=3, **pg_cluster.login_args()),
              check_mode=True)
    assert res.get("failed") is not True, res["msg"]
    assert res["changed"] is True and res["created"] is True and res["tables"] is None
    assert "would create the database and restore" in res["msg"] and "pg_restore -j 3" in res["msg"]
    assert databases(pg_cluster, "restore_check") == []


def test_into_an_empty_existing_database_and_never_a_full_one(pg_cluster, dumps):
    drop(pg_cluster, "restore_existing")
    pg_cluster.psql("CREATE DATABASE restore_existing")
    try:
        res = run("pg_restore_into", dict(path=dumps["archive.tar"], db="restore_existing", create=False,
                                          tables=sorted(SOURCE_TABLES) + ["public.not_there"], fail_on_missing=False,
                                          **pg_cluster.login_args()))
        assert res.get("failed") is not True, res["msg"]
        assert res["created"] is False and res["missing"] == ["public.not_there"] and "missing table" in res["msg"]
        again = run("pg_restore_into", dict(path=dumps["archive.tar"], db="restore_existing", **pg_cluster.login_args()))
        assert again["failed"] and "is not empty" in again["msg"] and again["changed"] is False
    finally:
        drop(pg_cluster, "restore_existing")


@pytest.mark.parametrize("case,needle", [
    ("missing_file", "the dump does not exist"),
    ("corrupt", "custom_bitflip"),
    ("not_a_dump", "unknown_format"),
    ("truncated_gz", "truncated"),
    ("truncated_gz_tables_given", "exited with"),
    ("wrong_password", "password authentication failed"),
    ("unreachable", "cannot connect to the server"),
    ("no_create", "does not exist (create is false)"),
    ("missing_tables", "tables of the dump missing after the restore: shop.invoices"),
])
def test_bad_input_gives_one_clear_message(pg_cluster, corpus, dumps, case, needle, tmp_path):
    from conftest import free_port

    args = dict(path=dumps["custom.dump"], db="restore_bad", **pg_cluster.login_args())
    if case == "missing_file":
        args["path"] = str(tmp_path / "nothing.dump")
    elif case == "corrupt":
        args["path"] = corpus["custom_bitflip.dump"][0]
        needle = "pg_restore"
    elif case == "not_a_dump":
        args["path"] = corpus["random.bin"][0]
    elif case.startswith("truncated_gz"):
        args["path"] = corpus["gz_truncated.sql.gz"][0]
        if case.endswith("tables_given"):  # no full read first: psql or gzip -dc fails, both are checked
            args["tables"] = sorted(SOURCE_TABLES)
    elif case == "wrong_password":
        args["login_password"] = "not-the-password"
    elif case == "unreachable":
        args["login_port"] = free_port()
    elif case == "no_create":
        args["create"] = False
    elif case == "missing_tables":
        args["tables"] = sorted(SOURCE_TABLES) + ["shop.invoices"]
    res = run("pg_restore_into", args)
    assert res["failed"] is True and needle in res["msg"], res["msg"]
    assert res["msg"].startswith("Restoring ") and pg_cluster.password not in res["raw"]
    assert "not-the-password" not in res["raw"]
    if case != "missing_tables":
        assert databases(pg_cluster, "restore_bad") == []  # a database it created is dropped again
    drop(pg_cluster, "restore_bad")


def test_password_only_in_a_private_pgpass_file(pg_cluster, dumps, tmp_path):
    """A pg_restore wrapper records its argv, environment and the pgpass file's mode, then runs pg_restore."""
    spy = tmp_path / "spy"
    spy.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(spy, 0o777)
    wrapper = tmp_path / "pg_restore"
    wrapper.write_text('#!/bin/bash\nprintf "%%s\\n" "$@" > %(d)s/argv\nenv > %(d)s/env\nstat -L -c %%a "$PGPASSFILE" > %(d)s/mode\n'
                       'cat "$PGPASSFILE" > %(d)s/pgpass\nexec %(real)s "$@"\n' % {"d": spy, "real": pg_cluster.bindir / "pg_restore"})
    wrapper.chmod(0o755)
    target = "restore_spy"
    drop(pg_cluster, target)
    try:
        res = run("pg_restore_into", dict(path=dumps["custom.dump"], db=target, pg_restore_bin=str(wrapper),
                                          **pg_cluster.login_args()), env={"PGPASSWORD": "inherited-one"})
        assert res.get("failed") is not True, res["msg"]
        assert pg_cluster.password not in (spy / "argv").read_text()
        env = (spy / "env").read_text()
        assert pg_cluster.password not in env and "PGPASSWORD=" not in env and "PGPASSFILE=" in env
        assert (spy / "mode").read_text().strip() == "600"
        assert pg_cluster.password in (spy / "pgpass").read_text()
        passfile = [line.split("=", 1)[1] for line in env.splitlines() if line.startswith("PGPASSFILE=")][0]
        # an inherited descriptor of a file unlinked as soon as written: no path with the password ever exists
        assert passfile.startswith("/dev/fd/"), passfile
        assert not glob.glob(os.path.join(tempfile.gettempdir(), "sre-pgpass-*"))
    finally:
        drop(pg_cluster, target)
        shutil.rmtree(spy, ignore_errors=True)


def test_login_by_dsn_only(pg_cluster, dumps):
    """The password of a DSN goes the same way as login_password (pgpass file), the DSN's other parts to -d."""
    target = "restore_dsn"
    drop(pg_cluster, target)
    try:
        res = run("pg_restore_into", dict(path=dumps["plain_multimember.sql.gz"], db=target, dsn=pg_cluster.dsn()))
        assert res.get("failed") is not True, res["msg"]
        assert (res["tables"], res["rows"]) == (4, ROWS) and pg_cluster.password not in res["raw"]
    finally:
        drop(pg_cluster, target)
