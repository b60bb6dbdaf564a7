# SPDX-License-Identifier: GPL-3.0-or-later
"""backup_verify against a corpus of real pg_dump output (valid and damaged), run as Ansible runs it."""

from __future__ import annotations

import hashlib
import os
import shutil
import time

import pytest

VALID = [
    "plain.sql", "plain_restrict.sql", "plain_norestrict.sql.gz", "plain_restrict.sql.gz", "plain_multimember.sql.gz",
    "plain.sql.bz2", "plain.sql.xz", "no_suffix_at_all", "custom.dump", "custom_z0.dump", "custom_pipe.dump", "dir.d",
    "archive.tar",
]
INVALID = [
    "gz_truncated.sql.gz", "gz_bitflip.sql.gz", "cut_before_footer.sql.gz", "cut_before_footer.sql", "cut_in_copy.sql.gz",
    "copy_terminator_missing.sql", "sql_after_footer.sql", "empty.sql.gz", "empty_member.sql.gz", "random.bin",
    "error_page.sql.gz", "trailing_garbage.sql.gz", "stale.sql.gz", "custom_truncated.dump", "custom_bitflip.dump",
    "custom_pipe_bitflip.dump", "custom_trailing.dump", "custom_header_cut.dump", "checksum_mismatch.sql.gz",
    "wrong_format.sql", "missing_table.sql", "tar_truncated.tar", "dir_missing_file.d", "dir_cut_file.d", "missing_path",
    "empty_dir", "broken_link",
]
SOURCE_TABLES = {"public.customers", "shop.orders", "shop.Odd Name", "public.empty_table"}
SAME_KEYS = {"valid", "status", "findings", "path", "format", "compression", "size_bytes", "uncompressed_bytes", "mtime",
             "age_s", "sha256", "pg_dump_version", "database", "tables", "data_blocks", "checks", "trial_restore"}


RUN = {}


@pytest.fixture(autouse=True)
def _runner(module_runner):
    RUN["module"] = module_runner


def verify(args, check_mode=False):
    result = RUN["module"]("backup_verify", args, check_mode=check_mode)
    assert "Traceback" not in result["raw"], result["raw"]
    assert SAME_KEYS <= set(result), sorted(SAME_KEYS - set(result))
    return result


def test_corpus_is_complete(corpus):
    assert set(corpus) == set(VALID) | set(INVALID)


@pytest.mark.parametrize("name", VALID)
def test_valid_dump_passes(corpus, name):
    path, valid, code, extra = corpus[name]
    assert valid
    before = os.stat(path).st_mtime_ns
    res = verify(dict(path=path, **extra))
    assert res["valid"] is True and res["status"] == "ok", res["findings"]
    assert res["findings"] == []
    assert set(res["tables"]) == SOURCE_TABLES
    assert res["data_blocks"] == 4
    assert res["pg_dump_version"].startswith("15.")
    assert res["uncompressed_bytes"] > 100000
    assert all(c["ok"] for c in res["checks"]), res["checks"]
    if res["format"] != "directory":
        with open(path, "rb") as handle:
            assert res["sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert os.stat(path).st_mtime_ns == before  # never writes to the backup


@pytest.mark.parametrize("name", INVALID)
def test_invalid_dump_fails_with_its_reason(corpus, name):
    path, valid, code, extra = corpus[name]
    assert not valid
    res = verify(dict(path=path, **extra))
    codes = [f["code"] for f in res["findings"]]
    assert res["valid"] is False and res["status"] == "critical"
    assert code in codes, (code, res["findings"])
    assert res["rc"] == 0  # fail_on defaults to never
    failed = [c for c in res["checks"] if not c["ok"]]
    assert failed and all(c["detail"] for c in failed)


def test_formats_detected(corpus):
    expected = {"plain.sql": ("plain", "none"), "plain_multimember.sql.gz": ("plain", "gzip"), "plain.sql.xz": ("plain", "xz"),
                "custom.dump": ("custom", "none"), "dir.d": ("directory", "gzip"), "archive.tar": ("tar", "none")}
    for name, (fmt, comp) in expected.items():
        res = verify({"path": corpus[name][0]})
        assert (res["format"], res["compression"]) == (fmt, comp), name
        if fmt != "plain":
            assert res["database"] == "corpus_src"


def test_quick_depth_reads_header_and_toc_only(corpus):
    res = verify({"path": corpus["custom_truncated.dump"][0], "depth": "quick"})
    assert res["valid"] is True  # the TOC is intact: that is exactly why quick is not enough
    assert res["sha256"] is None and res["data_blocks"] == 0
    assert set(res["tables"]) == SOURCE_TABLES
    full = verify({"path": corpus["custom_truncated.dump"][0]})
    assert full["valid"] is False


def test_fail_on_critical_fails_with_the_reason(corpus):
    res = verify({"path": corpus["cut_in_copy.sql.gz"][0], "fail_on": "critical"})
    assert res["rc"] != 0 and res["failed"] is True
    assert "copy_unterminated" in res["msg"]
    ok = verify({"path": corpus["plain.sql"][0], "fail_on": "warning"})
    assert ok["rc"] == 0 and not ok.get("failed")


def test_directory_picks_newest_and_compares_history(corpus, tmp_path):
    now = time.time()
    for index in range(4):  # earlier backups, uncompressed: much bigger
        path = tmp_path / ("app-%d.sql.gz" % index)
        shutil.copy(corpus["plain.sql"][0], path)
        os.utime(path, (now - (5 - index) * 86400, now - (5 - index) * 86400))
    small = tmp_path / "app-9.sql.gz"
    shutil.copy(corpus["plain_restrict.sql.gz"][0], small)  # the same dump compressed: looks like a size drop
    (tmp_path / ".app-10.sql.gz.partial").write_bytes(b"partial")
    (tmp_path / "app-9.sql.gz.sha256").write_text("%s  app-9.sql.gz\n" % hashlib.sha256(small.read_bytes()).hexdigest())
    res = verify({"path": str(tmp_path), "pattern": "app-*", "max_size_drop_pct": 20, "max_age": "1h"})
    assert res["path"] == str(small)
    assert res["history"]["count"] == 4
    assert res["valid"] is True and res["status"] == "warning"
    assert [f["code"] for f in res["findings"]] == ["size_drop"]
    assert {c["name"]: c["ok"] for c in res["checks"]}["checksum"] is True  # the sibling .sha256 was used
    (tmp_path / "app-9.sql.gz.sha256").write_text("%s  app-9.sql.gz\n" % ("0" * 64))
    res = verify({"path": str(tmp_path), "pattern": "app-*"})
    assert "checksum_mismatch" in [f["code"] for f in res["findings"]]


def test_bad_options_give_one_clear_message(corpus):
    res = verify({"path": corpus["plain.sql"][0], "max_age": "soon"})
    assert res["failed"] and "max_age" not in res.get("exception", "") and "invalid duration" in res["msg"]


def test_trial_restore_counts_and_drops(pg_cluster, corpus):
    for name in ("custom.dump", "plain_multimember.sql.gz", "dir.d"):
        res = verify(dict(path=corpus[name][0], trial_restore=True, trial_restore_jobs=2, **pg_cluster.login_args()))
        trial = res["trial_restore"]
        assert trial["ok"] is True, (name, trial, res["findings"])
        assert trial["tables"] == 4 and trial["rows"] == 3000 + 5000 + 500
        assert trial["duration_s"] > 0
        assert pg_cluster.password not in res["raw"]
    leftovers = pg_cluster.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'sre_trial_restore_%'").strip()
    assert leftovers == "0"


def test_trial_restore_failure_is_a_finding(pg_cluster, corpus, tmp_path):
    plain = open(corpus["plain.sql"][0], "rb").read()
    footer = plain.rfind(b"--\n-- PostgreSQL database dump complete")
    broken = tmp_path / "broken_sql.sql"
    broken.write_bytes(plain[:footer] + b"SELECT no_such_function();\n\n" + plain[footer:])
    res = verify(dict(path=str(broken), trial_restore=True, **pg_cluster.login_args()))
    assert res["trial_restore"]["ok"] is False
    assert "no_such_function" in res["trial_restore"]["error"]
    assert "trial_restore_failed" in [f["code"] for f in res["findings"]] and res["valid"] is False
    leftovers = pg_cluster.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'sre_trial_restore_%'").strip()
    assert leftovers == "0"


def test_trial_restore_skipped_in_check_mode(pg_cluster, corpus):
    res = verify(dict(path=corpus["custom.dump"][0], trial_restore=True, **pg_cluster.login_args()), check_mode=True)
    assert res["trial_restore"]["skipped"] and res["trial_restore"]["ok"] is None
    assert res["valid"] is True


def test_verified_only_picks_the_newest_backup_with_a_checksum_file(corpus, tmp_path):
    now = time.time()
    older, newer = tmp_path / "a.dump", tmp_path / "b.dump"
    shutil.copy(corpus["custom.dump"][0], older)
    shutil.copy(corpus["custom_pipe.dump"][0], newer)
    os.utime(older, (now - 7200, now - 7200))
    (tmp_path / "a.dump.sha256").write_text("%s  a.dump\n" % hashlib.sha256(older.read_bytes()).hexdigest())
    assert verify({"path": str(tmp_path), "pattern": "*.dump"})["path"] == str(newer)
    res = verify({"path": str(tmp_path), "pattern": "*.dump", "verified_only": True})
    assert res["path"] == str(older) and res["valid"] and res["history"]["count"] == 0
    (tmp_path / "a.dump.sha256").unlink()
    res = verify({"path": str(tmp_path), "pattern": "*.dump", "verified_only": True})
    assert [f["code"] for f in res["findings"]] == ["no_backup"] and "verified" in res["findings"][0]["message"]
