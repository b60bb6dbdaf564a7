# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for backup_verify and db_restore: a small real database and a corpus of real dumps.

The corpus is built from real ``pg_dump`` output of the session's throwaway cluster: valid dumps of
every format, then damaged copies (truncated, bit-flipped, cut before the footer or inside COPY, ...).
"""

from __future__ import annotations

import gzip
import bz2
import lzma
import os
import random
import shutil
import subprocess
import time
import types
from pathlib import Path

import importlib.util

import pytest

# Test modules elsewhere do `from conftest import ...` meaning tests/conftest.py; with pytest's default
# (prepend) import mode this file is also imported as `conftest` and may shadow it. Re-export the shared
# helpers (plain functions and classes, not fixtures) so those imports work whichever module wins.
_ROOT_SPEC = importlib.util.spec_from_file_location("_sre_root_conftest", Path(__file__).resolve().parents[2] / "conftest.py")
_ROOT = importlib.util.module_from_spec(_ROOT_SPEC)
_ROOT_SPEC.loader.exec_module(_ROOT)
REPO = _ROOT.REPO
COLLECTIONS = _ROOT.COLLECTIONS
PgCluster = _ROOT.PgCluster
ensure_collection_link = _ROOT.ensure_collection_link
free_port = _ROOT.free_port
run_module = _ROOT.run_module

SOURCE_DB = "corpus_src"

SCHEMA_SQL = """
CREATE SCHEMA shop;
CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL, email text, created timestamptz DEFAULT now());
INSERT INTO public.customers SELECT g, 'customer ' || g, 'c' || g || '@example.test', '2024-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 3000) g;
CREATE TABLE shop.orders (id bigint PRIMARY KEY, customer_id int REFERENCES public.customers(id), total numeric(12,2), note text);
INSERT INTO shop.orders SELECT g, 1 + g % 3000, (g * 7 % 1000) / 3.0, CASE WHEN g % 10 = 0 THEN E'tab\\there and \\\\ backslash' END
  FROM generate_series(1, 5000) g;
CREATE TABLE shop."Odd Name" (k text, v bytea);
INSERT INTO shop."Odd Name" SELECT 'k' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 500) g;
CREATE TABLE public.empty_table (x int);
CREATE VIEW public.order_totals AS SELECT customer_id, sum(total) AS total FROM shop.orders GROUP BY customer_id;
"""
TABLES = ["public.customers", "shop.orders", "shop.Odd Name", "public.empty_table"]


def pg_tool(cluster, name):
    return str(cluster.bindir / name)


def dump(cluster, dbname, out, *args):
    cmd = [pg_tool(cluster, "pg_dump"), "-h", str(cluster.sockdir), "-p", str(cluster.port), "-U", "postgres"]
    cmd += list(args) + [dbname]
    if out is None:
        return subprocess.run(cmd, check=True, capture_output=True).stdout
    subprocess.run(cmd + ["-f", str(out)], check=True, capture_output=True)
    return None


def table_fingerprints(cluster, dbname):
    """{table: (rows, md5 of every row in order)} for every user table: equality means same data."""
    conn = cluster.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
                           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                           ORDER BY 1""")
            names = [r[0] for r in cur.fetchall()]
            out = {}
            for name in names:
                cur.execute("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM %s t" % name)
                out[name] = tuple(cur.fetchone())
            return out
    finally:
        conn.close()


@pytest.fixture(scope="session")
def backup_helpers():
    """Helpers for the test modules (importing from a conftest is ambiguous with several of them)."""
    return types.SimpleNamespace(dump=dump, fingerprints=table_fingerprints, repo=Path(__file__).resolve().parents[3])


@pytest.fixture(scope="session")
def source_db(pg_cluster):
    """A small database with several tables (two schemas, an odd name, an empty table, a view)."""
    exists = pg_cluster.psql("SELECT 1 FROM pg_database WHERE datname = '%s'" % SOURCE_DB).strip()
    if not exists:
        pg_cluster.psql("CREATE DATABASE %s" % SOURCE_DB)
        pg_cluster.psql(SCHEMA_SQL, dbname=SOURCE_DB)
    return SOURCE_DB


def _gzip(data, members=1):
    if members == 1:
        return gzip.compress(data, 6)
    step = len(data) // members + 1
    return b"".join(gzip.compress(data[i:i + step], 6) for i in range(0, len(data), step))


def _toggle_restrict(sql):
    """Remove the \\restrict/\\unrestrict lines when present, add them when absent."""
    lines = sql.split(b"\n")
    if any(line.startswith(b"\\restrict ") for line in lines):
        return b"\n".join(line for line in lines if not line.startswith((b"\\restrict ", b"\\unrestrict ")))
    key = b"Zq8ExampleRestrictKey0000000000000000000000000000000000000000000"
    out = []
    for index, line in enumerate(lines):
        out.append(line)
        if index == 3:  # after the '-- PostgreSQL database dump' header block
            out.extend([b"\\restrict " + key, b""])
    text = b"\n".join(out)
    return text.rstrip(b"\n") + b"\n\n\\unrestrict " + key + b"\n\n"


def _flip(data, where):
    buf = bytearray(data)
    buf[where] ^= 0x10
    return bytes(buf)


@pytest.fixture(scope="session")
def corpus(pg_cluster, source_db, tmp_path_factory):
    """{name: (path, expect_valid, expected_code, extra module args)}."""
    base = tmp_path_factory.mktemp("corpus")
    c = {}

    def put(name, data, valid=True, code=None, **extra):
        path = base / name
        path.write_bytes(data)
        c[name] = (str(path), valid, code, extra)
        return path

    plain = dump(pg_cluster, source_db, None)
    assert plain.rstrip().endswith(b"complete\n--") or b"\\unrestrict" in plain[-200:]
    has_restrict = b"\n\\restrict " in plain[:1000]
    other = _toggle_restrict(plain)
    with_restrict, without_restrict = (plain, other) if has_restrict else (other, plain)
    assert b"\\restrict" not in without_restrict and b"\\unrestrict" in with_restrict

    # valid ones
    put("plain.sql", plain)
    put("plain_restrict.sql", with_restrict)
    put("plain_norestrict.sql.gz", _gzip(without_restrict))
    put("plain_restrict.sql.gz", _gzip(with_restrict))
    put("plain_multimember.sql.gz", _gzip(plain, members=4))
    put("plain.sql.bz2", bz2.compress(plain))
    put("plain.sql.xz", lzma.compress(plain))
    put("no_suffix_at_all", _gzip(plain))  # detection by content, not by name
    for name, args in (("custom.dump", ["-Fc"]), ("custom_z0.dump", ["-Fc", "-Z0"])):
        dump(pg_cluster, source_db, base / name, *args)
        c[name] = (str(base / name), True, None, {})
    put("custom_pipe.dump", dump(pg_cluster, source_db, None, "-Fc"))
    dump(pg_cluster, source_db, base / "dir.d", "-Fd")
    c["dir.d"] = (str(base / "dir.d"), True, None, {})
    dump(pg_cluster, source_db, base / "archive.tar", "-Ft")
    c["archive.tar"] = (str(base / "archive.tar"), True, None, {})
    custom = (base / "custom.dump").read_bytes()
    pipe = (base / "custom_pipe.dump").read_bytes()

    # invalid ones
    gz = _gzip(plain)
    put("gz_truncated.sql.gz", gz[: len(gz) * 6 // 10], False, "truncated")
    put("gz_bitflip.sql.gz", _flip(gz, len(gz) // 2), False, "compression_error")
    footer = plain.rfind(b"-- PostgreSQL database dump complete")
    before_footer = plain.rfind(b"\n--\n", 0, footer)
    put("cut_before_footer.sql.gz", _gzip(plain[:before_footer + 1]), False, "footer_missing")
    put("cut_before_footer.sql", plain[:before_footer + 1], False, "footer_missing")
    copy_at = plain.find(b"COPY shop.orders")
    put("cut_in_copy.sql.gz", _gzip(plain[: copy_at + 40000]), False, "copy_unterminated")
    term = plain.find(b"\n\\.\n", copy_at)
    put("copy_terminator_missing.sql", plain[:term + 1] + plain[term + 4:], False, "copy_unterminated")
    put("sql_after_footer.sql", plain + b"DROP TABLE public.customers;\n", False, "footer_missing")
    put("empty.sql.gz", b"", False, "empty")
    put("empty_member.sql.gz", gzip.compress(b""), False, "empty")
    put("random.bin", random.Random(5).randbytes(50000), False, "unknown_format")
    put("error_page.sql.gz", gzip.compress(b"<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n"),
        False, "unknown_format")
    put("trailing_garbage.sql.gz", gz + b"this is not gzip", False, "trailing_garbage")
    stale = put("stale.sql.gz", gz, False, "stale", max_age="1d")
    old = time.time() - 3 * 86400
    os.utime(stale, (old, old))
    put("custom_truncated.dump", custom[: len(custom) // 2], False, "truncated")
    put("custom_bitflip.dump", _flip(custom, len(custom) * 3 // 4), False, "data_block_corrupt")
    put("custom_pipe_bitflip.dump", _flip(pipe, len(pipe) - 3000), False, "data_block_corrupt")
    put("custom_trailing.dump", custom + b"\x07garbage", False, "data_block_corrupt")
    put("custom_header_cut.dump", custom[:40], False, "truncated")
    put("checksum_mismatch.sql.gz", gz, False, "checksum_mismatch", checksum="0" * 64)
    put("wrong_format.sql", plain, False, "format_mismatch", format="custom")
    put("missing_table.sql", plain, False, "missing_tables", expected_tables=["customers", "shop.invoices"])
    tar = (base / "archive.tar").read_bytes()
    put("tar_truncated.tar", tar[: len(tar) // 2], False, "truncated")
    broken_dir = base / "dir_missing_file.d"
    shutil.copytree(base / "dir.d", broken_dir)
    biggest = max(broken_dir.glob("*.dat*"), key=lambda p: p.stat().st_size)
    biggest.unlink()
    c["dir_missing_file.d"] = (str(broken_dir), False, "data_block_missing", {})
    cut_dir = base / "dir_cut_file.d"
    shutil.copytree(base / "dir.d", cut_dir)
    biggest = max(cut_dir.glob("*.dat*"), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[:-30])
    c["dir_cut_file.d"] = (str(cut_dir), False, "data_block_corrupt", {})
    c["missing_path"] = (str(base / "does-not-exist.sql.gz"), False, "not_found", {})
    (base / "empty_dir").mkdir()
    c["empty_dir"] = (str(base / "empty_dir"), False, "no_backup", {})
    (base / "broken_link.sql.gz").symlink_to(base / "nowhere")
    c["broken_link"] = (str(base / "broken_link.sql.gz"), False, "unreadable", {})
    return c
