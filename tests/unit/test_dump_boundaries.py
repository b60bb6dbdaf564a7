# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for the chunk boundaries of the fast plain-dump path (plugins/module_utils/_dump_plain.py and
_dump_stream.py, through the _dump.py facade): inside COPY data only a few bytes are carried from one inflated
chunk to the next, so every terminator, COPY line and footer is cut at every offset here; gzip members,
trailing bytes and the reading/inflating threads (Prefetch) against the same verifier without threads."""

from __future__ import annotations

import gzip
import hashlib
import sys
import threading

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _dump  # noqa: E402

ROWS = b"".join(b"%d\tSKU-%04d\tname %d\t\\N\n" % (i, i, i) for i in range(40))
PLAIN = (
    b"--\n-- PostgreSQL database dump\n--\n\n\\restrict k1\n\n"
    b"-- Dumped by pg_dump version 15.18\n\n"
    b"CREATE TABLE public.a (id int, sku text, name text, note text);\n\n"
    b"CREATE TABLE public.b (x text);\n\n"
    b"COPY public.a (id, sku, name, note) FROM stdin;\n" + ROWS + b"\\.\n\n\n"
    b"COPY public.b (x) FROM stdin;\nCOPY is a word here\n2\tCOPY x FROM stdin;\n\\\\.\n\\.\n\n\n"
    b"COPY public.a (id, sku, name, note) FROM stdin;\n\\.\n\n\n"
    b"--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict k1\n\n"
)
TERMINATORS = [i for i in range(len(PLAIN)) if PLAIN.startswith(b"\n\\.\n", i)]
COPY_LINES = [i for i in range(len(PLAIN)) if PLAIN.startswith(b"\nCOPY ", i)]
FOOTER = PLAIN.index(b"-- PostgreSQL database dump complete")


def scan(pieces):
    scanner = _dump.PlainScanner()
    for piece in pieces:
        scanner.feed(piece)
    scanner.finish()
    return scanner


def splits(data, cuts):
    cuts = sorted(set(c for c in cuts if 0 < c < len(data)))
    edges = [0] + cuts + [len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


def near(points, width=8):
    return sorted(set(p + d for p in points for d in range(-width, width + 1)))


def test_the_sample_has_what_the_cuts_are_about():
    assert len(TERMINATORS) == 3 and len(COPY_LINES) == 4  # one is a data row
    assert scan([PLAIN]).copy_blocks == 3


def test_two_chunks_cut_anywhere():
    for cut in range(1, len(PLAIN)):
        scanner = scan([PLAIN[:cut], PLAIN[cut:]])
        assert (cut, scanner.copy_blocks, scanner.tables) == (cut, 3, ["public.a", "public.b"])


@pytest.mark.parametrize("width", [1, 2, 3, 5, 6, 7])
def test_a_small_chunk_in_the_middle_of_a_terminator_or_copy_line(width):
    """Three chunks: the middle one (1..7 bytes) lies across a terminator, a COPY line or the footer."""
    for at in near(TERMINATORS + COPY_LINES + [FOOTER]):
        assert (at, scan(splits(PLAIN, [at, at + width])).copy_blocks) == (at, 3)


@pytest.mark.parametrize("size", [1, 2, 4, 5, 6, 7, 11, 64])
def test_every_chunk_size(size):
    assert scan([PLAIN[i:i + size] for i in range(0, len(PLAIN), size)]).copy_blocks == 3


CUT_BLOCK = PLAIN.replace(ROWS + b"\\.\n", ROWS[:-30] + b"\n", 1)   # public.a cut mid-row, no terminator


def test_a_missing_terminator_is_found_at_every_cut():
    at = CUT_BLOCK.index(b"\nCOPY public.b") + 1
    for cut in range(1, len(CUT_BLOCK)):
        with pytest.raises(_dump.DumpError) as err:
            scan([CUT_BLOCK[:cut], CUT_BLOCK[cut:]])
        assert (cut, err.value.code) == (cut, "copy_unterminated")
        assert "public.a" in err.value.message and "byte %d" % at in err.value.message


@pytest.mark.parametrize("cut", near([PLAIN.rindex(b"\\.\n")], 6))
def test_a_dump_cut_inside_the_last_copy_block(cut):
    data = PLAIN[:PLAIN.rindex(b"\\.\n")]
    with pytest.raises(_dump.DumpError) as err:
        scan([data[:cut], data[cut:]])
    assert err.value.code == "copy_unterminated"


@pytest.mark.parametrize("cut", near([FOOTER], 12) + [len(PLAIN) - 1, len(PLAIN) - 3])
def test_footer_split(cut):
    assert scan([PLAIN[:cut], PLAIN[cut:]]).copy_blocks == 3
    broken = PLAIN.replace(b"dump complete", b"dump compl", 1)
    with pytest.raises(_dump.DumpError) as err:
        scan([broken[:cut], broken[cut:]])
    assert err.value.code == "footer_missing"
    with pytest.raises(_dump.DumpError) as err:
        scan([PLAIN[:cut], PLAIN[cut:], b"SELECT 1;\n"])
    assert err.value.code == "footer_missing"


def test_a_data_row_starting_with_copy_longer_than_the_carry():
    row = b"COPY " + b"x" * (_dump.CARRY_MAX + 10) + b"\n"
    data = PLAIN.replace(b"COPY is a word here\n", row, 1)
    start = data.index(row)
    for cut in (start + 3, start + 100, start + _dump.CARRY_MAX, start + len(row) - 2):
        assert scan([data[:cut], data[cut:]]).copy_blocks == 3


def test_the_copy_scan_pattern():
    assert _dump.COPY_SCAN_RE.search(b"1\tx\n\\.\n").group() == b"\n\\.\n"
    assert _dump.COPY_SCAN_RE.search(b"1\tx\nCOPY t FROM stdin;\n").group() == b"\nCOPY "
    assert _dump.COPY_SCAN_RE.search(b"1\t\\\\.\n2\tCOPY\n\\N\n") is None


# ---- gzip members, trailing bytes, threads: the whole verifier on files


def _write(tmp_path, name, blob):
    path = tmp_path / name
    path.write_bytes(blob)
    return str(path)


def _codes(result):
    return [(f["severity"], f["code"]) for f in result["findings"]]


def _verify_both(path):
    """The verifier with the reading/inflating threads and without: the same result."""
    threaded = _dump.Verifier(path, now=0).run()
    plain = _dump.Verifier(path, now=0, threads=False).run()
    assert threaded == plain
    return threaded


BIG = PLAIN.replace(ROWS, ROWS * 300, 1)   # ~270 KB inflated


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Small raw reads and inflated chunks: many chunks (and boundaries) through the threads."""
    from ansible_collections.sre.runbooks.plugins.module_utils import _dump_stream
    monkeypatch.setattr(_dump_stream, "READ_SIZE", 4096)
    monkeypatch.setattr(_dump_stream, "MAX_OUT", 7919)


@pytest.fixture(params=["igzip_lib", "decompressobj"])
def gzip_impl(request, monkeypatch):
    """Both ways a gzip member is inflated: ISA-L's IgzipDecompressor (the default with isal) and the
    zlib-style decompressobj (isal_zlib, or zlib without isal): the same answers."""
    from ansible_collections.sre.runbooks.plugins.module_utils import _dump_stream
    if request.param == "igzip_lib" and not _dump_stream.HAS_ISAL:
        # by hand only: isal is in requirements/dev.txt, and under make test (SRE_LAB_REQUIRED=1) a skip fails
        pytest.skip("isal is not installed")
    monkeypatch.setattr(_dump_stream, "USE_IGZIP_LIB", request.param == "igzip_lib")
    return request.param


@pytest.mark.parametrize("member_size", [1000, 65536, 1 << 22])
def test_multi_member_gzip(tmp_path, member_size, gzip_impl):
    blob = b"".join(gzip.compress(BIG[i:i + member_size], 1) for i in range(0, len(BIG), member_size))
    res = _verify_both(_write(tmp_path, "d.sql.gz", blob))
    members = (len(BIG) + member_size - 1) // member_size
    assert res["valid"] is True and res["data_blocks"] == 3 and res["uncompressed_bytes"] == len(BIG)
    assert res["sha256"] == hashlib.sha256(blob).hexdigest()
    assert [c["detail"] for c in res["checks"] if c["name"] == "compression"] == [
        "gzip: %d member(s), every CRC and length matches" % members]


@pytest.mark.parametrize("tail,expected", [
    (b"\0" * 9, [("warning", "trailing_zeros")]),
    (b"garbage", [("critical", "trailing_garbage")]),
    (b"\0\0\0x", [("critical", "trailing_garbage")]),
    (b"\x1f", [("critical", "trailing_garbage")]),
    (b"\x1f\x8b\x08\x00", [("critical", "truncated")]),
])
def test_bytes_after_the_last_member(tmp_path, tail, expected, gzip_impl):
    blob = gzip.compress(BIG, 1)
    res = _verify_both(_write(tmp_path, "d.sql.gz", blob + tail))
    assert _codes(res) == expected


def test_a_corrupt_member_in_the_middle(tmp_path, gzip_impl):
    first, second = gzip.compress(BIG[:500000], 1), gzip.compress(BIG[500000:], 1)
    bad = bytearray(first)
    bad[-6] ^= 0xFF  # CRC of the first member
    res = _verify_both(_write(tmp_path, "d.sql.gz", bytes(bad) + second))
    assert _codes(res) == [("critical", "compression_error")]


def test_a_wrong_length_in_a_member_trailer(tmp_path, gzip_impl):
    blob = bytearray(gzip.compress(BIG, 1))
    blob[-1] ^= 0x01  # ISIZE: the CRC matches, the length does not
    res = _verify_both(_write(tmp_path, "d.sql.gz", bytes(blob)))
    assert _codes(res) == [("critical", "compression_error")]


def test_a_member_header_with_name_extra_comment_and_header_crc(tmp_path, gzip_impl):
    import struct
    import zlib
    deflated = zlib.compressobj(1, zlib.DEFLATED, -15)
    body = deflated.compress(BIG) + deflated.flush()
    header = b"\x1f\x8b\x08\x1e" + b"\0" * 4 + b"\0\x03" + struct.pack("<H", 6) + b"ab\x02\x00xy" + b"db.sql\0" + b"a comment\0"
    header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    member = header + body + struct.pack("<II", zlib.crc32(BIG), len(BIG))
    res = _verify_both(_write(tmp_path, "d.sql.gz", member + gzip.compress(b"", 1)))
    assert res["valid"] is True and res["data_blocks"] == 3 and res["uncompressed_bytes"] == len(BIG), _codes(res)
    assert [c["detail"] for c in res["checks"] if c["name"] == "compression"] == [
        "gzip: 2 member(s), every CRC and length matches"]


def test_a_missing_terminator_through_gzip_and_threads(tmp_path, gzip_impl):
    data = BIG.replace(b"\\.\n\n\nCOPY public.b", b"\n\n\nCOPY public.b", 1)
    res = _verify_both(_write(tmp_path, "d.sql.gz", gzip.compress(data, 1)))
    assert _codes(res) == [("critical", "copy_unterminated")]


def test_prefetch_hands_over_items_and_errors_in_order():
    def source():
        yield b"a"
        yield b"b"
        raise _dump.DumpError("truncated", "cut")
    got = []
    with pytest.raises(_dump.DumpError) as err:
        for item in _dump.Prefetch(source(), depth=1):
            got.append(item)
    assert got == [b"a", b"b"] and err.value.code == "truncated"


def test_prefetch_stops_its_thread_when_the_consumer_stops_early():
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield b"x"
        finally:
            closed.set()
    prefetch = _dump.Prefetch(endless(), depth=2)
    for dummy in zip(range(5), prefetch):
        pass
    prefetch.close()
    assert closed.is_set() and not prefetch._thread.is_alive()
