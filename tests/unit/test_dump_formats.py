# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for the dump verifier (plugins/module_utils/_dump*.py, through the _dump.py facade): pure parsing
helpers, chunk boundaries everywhere; the trial outcome recorded once; file sizes."""

from __future__ import annotations

import gzip
import hashlib
import random
import sys
from pathlib import Path

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _dump  # noqa: E402

PLAIN = (
    b"--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\n"
    b"-- Dumped from database version 15.18\n-- Dumped by pg_dump version 15.18\n\n"
    b"SET statement_timeout = 0;\n\n"
    b'CREATE TABLE public.t (a integer, b text);\n\nCREATE TABLE "My Schema"."Odd ""q"" name" (x int);\n\n'
    b"COPY public.t (a, b) FROM stdin;\n1\tone\n2\t\\\\.\n3\tCOPY x FROM stdin;\n\\.\n\n\n"
    b'COPY "My Schema"."Odd ""q"" name" (x) FROM stdin;\n\\.\n\n\n'
    b"--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc123\n\n"
)


def scan(data, size):
    scanner = _dump.PlainScanner()
    for i in range(0, len(data), size):
        scanner.feed(data[i:i + size])
    scanner.finish()
    return scanner


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 1 << 20])
def test_plain_scanner_any_chunking(size):
    scanner = scan(PLAIN, size)
    assert scanner.copy_blocks == 2
    assert scanner.tables == ["public.t", 'My Schema.Odd "q" name']
    assert scanner.header_info()["pg_dump_version"] == "15.18"


@pytest.mark.parametrize("mutate,code", [
    (lambda d: d[: d.index(b"1\tone")], "copy_unterminated"),
    (lambda d: d.replace(b"3\tCOPY x FROM stdin;\n\\.\n", b"3\tx\n", 1), "copy_unterminated"),
    (lambda d: d[: d.index(b"--\n-- PostgreSQL database dump complete")], "footer_missing"),
    (lambda d: d + b"SELECT 1;\n", "footer_missing"),
    (lambda d: b"hello world\n" * 300, "header_missing"),
    (lambda d: b"   \n\n", "empty"),
])
@pytest.mark.parametrize("size", [3, 1 << 20])
def test_plain_scanner_damage(mutate, code, size):
    with pytest.raises(_dump.DumpError) as err:
        scan(mutate(PLAIN), size)
    assert err.value.code == code


def test_plain_without_restrict_lines_is_fine():
    data = b"\n".join(l for l in PLAIN.split(b"\n") if not l.startswith((b"\\restrict", b"\\unrestrict")))
    assert scan(data, 4).copy_blocks == 2


@pytest.mark.parametrize("size", [1, 3, 100, 1 << 20])
def test_gzip_members_and_trailers(size):
    data = PLAIN * 50
    members = b"".join(gzip.compress(data[i:i + 1000]) for i in range(0, len(data), 1000))
    chunks = [members[i:i + size] for i in range(0, len(members), size)]
    out = _dump.Decompressed(iter(chunks), "gzip")
    assert b"".join(out) == data
    assert out.members == (len(data) + 999) // 1000
    zeros = _dump.Decompressed(iter([members, b"\0" * 10]), "gzip")
    assert b"".join(zeros) == data and zeros.trailing_zeros == 10


@pytest.mark.parametrize("tail,code", [(b"junk", "trailing_garbage"), (b"\0\0x", "trailing_garbage")])
def test_gzip_trailing_garbage(tail, code):
    with pytest.raises(_dump.DumpError) as err:
        b"".join(_dump.Decompressed(iter([gzip.compress(PLAIN) + tail]), "gzip"))
    assert err.value.code == code


def test_gzip_truncated_and_corrupt():
    blob = gzip.compress(PLAIN * 100)
    with pytest.raises(_dump.DumpError) as err:
        b"".join(_dump.Decompressed(iter([blob[:-5]]), "gzip"))
    assert err.value.code == "truncated"
    bad = bytearray(blob)
    bad[-6] ^= 1  # CRC
    with pytest.raises(_dump.DumpError) as err:
        b"".join(_dump.Decompressed(iter([bytes(bad)]), "gzip"))
    assert err.value.code == "compression_error"


@pytest.mark.parametrize("head,expected", [
    (b"\x1f\x8b\x08\x00", "gzip"), (b"BZh91AY", "bzip2"), (b"\xfd7zXZ\x00\x00", "xz"),
    (b"\x28\xb5\x2f\xfd\x00", "zstd"), (b"\x04\x22\x4d\x18", "lz4"), (b"PGDMP\x01", "none"), (b"--\n", "none"),
])
def test_detect_compression(head, expected):
    assert _dump.detect_compression(head) == expected


def _int(value, size=4):
    return bytes([1 if value < 0 else 0]) + abs(value).to_bytes(size, "little")


def _str(text):
    if text is None:
        return _int(-1)
    raw = text.encode()
    return _int(len(raw)) + raw


@pytest.mark.parametrize("size", [1, 7, 1 << 20])
def test_bytestream_ints_and_strings(size):
    blob = _int(5) + _int(-1) + _str("hello") + _str(None) + _str("") + b"\x02" + (1234).to_bytes(8, "little")
    stream = _dump.ByteStream(iter([blob[i:i + size] for i in range(0, len(blob), size)]))
    assert stream.int_("x") == 5 and stream.int_("x") == -1
    assert stream.str_("x") == "hello" and stream.str_("x") is None and stream.str_("x") == ""
    assert stream.offset("x") == (2, 1234)
    assert stream.at_eof()
    with pytest.raises(_dump.DumpError) as err:
        stream.exact(1, "the end")
    assert err.value.code == "truncated"


def test_archive_header_rejects_garbage():
    with pytest.raises(_dump.DumpError) as err:
        _dump.parse_archive_header(_dump.ByteStream(iter([b"PGDMP\x01\x0e\x00\x04\x08\x09"])))
    assert err.value.code == "header_invalid"
    with pytest.raises(_dump.DumpError) as err:
        _dump.parse_archive_header(_dump.ByteStream(iter([b"PGDMP\x02\x00\x00"])))
    assert err.value.code == "unsupported_version"


@pytest.mark.parametrize("values,expected", [([], None), ([3], 3.0), ([1, 9, 5], 5.0), ([1, 2, 3, 10], 2.5)])
def test_median(values, expected):
    assert _dump.median(values) == expected


def test_read_checksum_formats(tmp_path):
    digest = hashlib.sha256(b"x").hexdigest()
    backup = tmp_path / "b.sql.gz"
    assert _dump.read_checksum(digest.upper(), str(backup)) == (digest, "given value")
    (tmp_path / "gnu.sha256").write_text("%s  other\n%s  b.sql.gz\n" % ("1" * 64, digest))
    assert _dump.read_checksum(str(tmp_path / "gnu.sha256"), str(backup))[0] == digest
    (tmp_path / "bsd.sha256").write_text("SHA256 (b.sql.gz) = %s\n" % digest)
    assert _dump.read_checksum(str(tmp_path / "bsd.sha256"), str(backup))[0] == digest
    (tmp_path / "none.sha256").write_text("nothing here\n")
    with pytest.raises(ValueError):
        _dump.read_checksum(str(tmp_path / "none.sha256"), str(backup))


@pytest.mark.parametrize("raw,expected", [
    (b"public.t", "public.t"), (b'"My Schema"."a.b"', "My Schema.a.b"), (b'"x""y"', 'x"y'),
])
def test_split_qualified(raw, expected):
    assert _dump._split_qualified(raw) == expected


@pytest.mark.parametrize("last,ok", [
    (b"1\tx\n\\.\n\n\n", True), (b"\\.\n\n", True), (b"\\.\n", True), (b"1\tx\n", False), (b"1\ta\\.\n", False), (b"", False),
])
def test_copy_terminated(last, ok):
    assert _dump.copy_terminated(last) is ok


def _plain_file(tmp_path):
    path = tmp_path / "d.sql"
    path.write_bytes(PLAIN)
    return str(path)


def test_trial_outcome_is_recorded_once_by_the_verifier(tmp_path):
    seen = []

    def trial(result):
        seen.append((result["format"], list(result["tables"])))
        return _dump.trial_outcome(ok=True, tables=2, rows=3, missing=[], duration_s=0.5, database="tmp")

    res = _dump.Verifier(_plain_file(tmp_path)).run(trial=trial)
    assert seen == [("plain", ["public.t", 'My Schema.Odd "q" name'])]
    assert res["trial_restore"]["ok"] is True and res["trial_restore"]["skipped"] is None
    assert set(res["trial_restore"]) == set(_dump.trial_outcome())
    assert [c for c in res["checks"] if c["name"] == "trial_restore"] == [
        {"name": "trial_restore", "ok": True, "detail": "restored into a throwaway database: 2 tables, 3 rows in 0.5s"}]
    assert res["valid"] is True


def test_failed_trial_and_cleanup_become_findings(tmp_path):
    res = _dump.Verifier(_plain_file(tmp_path)).run(trial=lambda result: _dump.trial_outcome(
        ok=False, error="the restore (psql) exited with 3: boom", cleanup_error="could not drop x"))
    assert [(f["severity"], f["code"]) for f in res["findings"]] == [
        ("critical", "trial_restore_failed"), ("warning", "trial_restore_cleanup")]
    assert res["valid"] is False and res["trial_restore"]["error"].endswith("boom")


def test_no_trial_after_a_critical_finding(tmp_path):
    called = []
    res = _dump.Verifier(str(tmp_path / "missing.sql")).run(trial=called.append)
    assert called == [] and res["trial_restore"]["skipped"] == "the file checks found a critical problem"
    assert _dump.Verifier(_plain_file(tmp_path)).run()["trial_restore"] is None


def test_module_utils_of_the_dump_fit_in_a_head():
    utils = Path(__file__).resolve().parents[2] / "plugins" / "module_utils"
    sizes = {p.name: len(p.read_text().splitlines()) for p in list(utils.glob("_dump*.py")) + list(utils.glob("_restore*.py"))}
    assert len(sizes) >= 6 and max(sizes.values()) <= 600, sizes


def test_bytestream_reads_across_chunks_of_every_size():
    rnd = random.Random(3)
    blob = bytes(rnd.randrange(256) for dummy in range(5000))
    for size in (1, 2, 3, 7, 64, 999, 4096, 5000, 6000):
        chunks = [blob[i:i + size] for i in range(0, len(blob), size)]
        chunks.insert(len(chunks) // 2, b"")  # an empty chunk in the middle changes nothing
        stream = _dump.ByteStream(iter(chunks))
        got, pos = [], 0
        while True:
            n = rnd.choice((0, 1, 2, 5, 13, 100, 1500, 7000))
            data = stream.read(n)
            assert data == blob[pos:pos + n] and stream.pos == pos + len(data), (size, n, pos)
            pos += len(data)
            got.append(data)
            if len(data) < n:
                break
        assert b"".join(got) == blob and stream.at_eof() and stream.read(5) == b""
