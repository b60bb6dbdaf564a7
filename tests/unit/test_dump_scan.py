# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for the two ways the plain-dump scanner finds COPY terminators and COPY lines inside COPY data
(plugins/module_utils/_dump_plain.py): libc memmem through ctypes (GIL released) and the regex fallback used
when ctypes or memmem is missing. Both must give the same answers at every chunk boundary, for data rows
that start with 'COPY ', for a missing terminator, and for buffers that are not bytes objects."""

from __future__ import annotations

import gzip
import random
import sys

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _dump, _dump_plain  # noqa: E402
from test_dump_boundaries import COPY_LINES, PLAIN, TERMINATORS, near, scan, splits  # noqa: E402

HAS_MEMMEM = _dump_plain._memmem is not None


HAS_STRSTR = HAS_MEMMEM and _dump_plain._strstr is not None


@pytest.fixture(params=["strstr", "memmem", "regex"])
def finder(request, monkeypatch):
    if request.param == "memmem" and not HAS_MEMMEM or request.param == "strstr" and not HAS_STRSTR:
        # by hand on a C library without it; under make test (SRE_LAB_REQUIRED=1) a skip fails the session
        pytest.skip("this C library has no %s" % request.param)
    monkeypatch.setattr(_dump_plain, "USE_MEMMEM", request.param != "regex")
    monkeypatch.setattr(_dump_plain, "USE_STRSTR", request.param == "strstr")
    return request.param


def test_memmem_is_there_on_linux():
    # the fast path is what the module uses on its Linux targets: a silent fallback would only be slower
    assert HAS_MEMMEM or not sys.platform.startswith("linux")


@pytest.mark.skipif(not HAS_MEMMEM, reason="no memmem")
def test_memfind_agrees_with_bytes_find():
    rnd = random.Random(7)
    alphabet = b"\n\\.COPY x"
    for dummy in range(300):
        data = bytes(rnd.choice(alphabet) for dummy in range(rnd.randint(0, 200)))
        addr = _dump_plain._address(data)
        for needle in (_dump_plain.TERMINATOR, _dump_plain.COPY_AT_LINE):
            start = rnd.randint(0, len(data))
            end = rnd.randint(start, len(data))
            assert _dump_plain._memfind(addr, start, end, needle) == data.find(needle, start, end)


# a C library without strstr skips this by hand; make test (SRE_LAB_REQUIRED=1) fails on any skip
@pytest.mark.skipif(not HAS_STRSTR, reason="no strstr")
def test_strfind_agrees_with_bytes_find_where_there_is_no_nul():
    rnd = random.Random(8)
    alphabet = b"\n\\.COPY FROMstdin;x"
    for dummy in range(300):
        data = bytes(rnd.choice(alphabet) for dummy in range(rnd.randint(0, 200)))
        addr = _dump_plain._address(data)
        start = rnd.randint(0, len(data))
        assert _dump_plain._nul_free(addr, start, len(data))
        for needle in (_dump_plain.TERMINATOR, _dump_plain.COPY_LINE_END):
            end = rnd.randint(start, len(data))
            assert _dump_plain._strfind(addr, start, end, needle) == data.find(needle, start, end)
    data = b"a\0b\n\\.\n"
    addr = _dump_plain._address(data)
    assert not _dump_plain._nul_free(addr, 0, len(data)) and _dump_plain._nul_free(addr, 2, len(data))


def test_a_nul_byte_in_copy_data_hides_nothing(finder):
    # strstr stops at a NUL: a chunk holding one is searched with memmem, so what follows it is still seen
    dump = PLAIN.replace(b"2\tCOPY x FROM stdin;\n", b"2\tCOPY \0x FROM stdin;\n", 1)
    for cut in [len(dump)] + near([dump.index(b"\0")], 6):
        assert scan(splits(dump, [cut])).copy_blocks == 3, (finder, cut)
    broken = dump.replace(b"\\.\n\n\nCOPY public.b", b"\0\n\n\nCOPY public.b", 1)
    for cut in [len(broken)] + near([broken.index(b"\0")], 6):
        with pytest.raises(_dump.DumpError) as err:
            scan(splits(broken, [cut]))
        assert err.value.code == "copy_unterminated", (finder, cut)


def test_only_bytes_objects_take_the_memmem_path(monkeypatch):
    monkeypatch.setattr(_dump_plain, "USE_MEMMEM", True)
    assert _dump_plain._address(bytearray(b"x")) is None
    assert _dump_plain._address(memoryview(b"x")) is None
    assert (_dump_plain._address(b"x") is not None) == HAS_MEMMEM
    monkeypatch.setattr(_dump_plain, "USE_MEMMEM", False)
    assert _dump_plain._address(b"x") is None


def test_two_chunks_cut_anywhere(finder):
    whole = scan([PLAIN])
    assert whole.copy_blocks == 3
    for cut in range(1, len(PLAIN)):
        got = scan(splits(PLAIN, [cut]))
        assert (got.copy_blocks, got.tables) == (3, whole.tables), (finder, cut)


def test_a_terminator_split_exactly_across_a_chunk_boundary(finder):
    for term in TERMINATORS:
        for cut in range(term, term + 5):  # before the newline, after each of its 4 bytes
            assert scan(splits(PLAIN, [cut])).copy_blocks == 3, (finder, cut)


def test_three_chunks_around_every_mark(finder):
    points = near(TERMINATORS + COPY_LINES, 6)
    for a in points:
        for b in (a + 1, a + 3, a + 7):
            assert scan(splits(PLAIN, [a, b])).copy_blocks == 3, (finder, a, b)


def test_a_missing_terminator_is_found_at_every_cut(finder):
    broken = PLAIN.replace(b"\\.\n\n\nCOPY public.b", b"\n\nCOPY public.b", 1)
    for cut in near(COPY_LINES, 8) + [1, len(broken) // 2]:
        with pytest.raises(_dump.DumpError) as err:
            scan(splits(broken, [cut]))
        assert err.value.code == "copy_unterminated", (finder, cut)
        assert "public.a" in err.value.message


def test_many_data_rows_starting_with_copy(finder):
    # rows starting with 'COPY ' are data: each is checked once, the terminator after them is found once
    rows = b"".join(b"COPY row %d is data\n" % i for i in range(20000))
    dump = PLAIN.replace(b"COPY public.b (x) FROM stdin;\n", b"COPY public.b (x) FROM stdin;\n" + rows, 1)
    for size in (len(dump), 65536, 4097):
        got = scan([dump[i:i + size] for i in range(0, len(dump), size)])
        assert got.copy_blocks == 3, (finder, size)


def test_a_dump_cut_inside_copy_data(finder):
    cut = PLAIN[:TERMINATORS[0]]
    with pytest.raises(_dump.DumpError) as err:
        scan([cut[:len(cut) // 2], cut[len(cut) // 2:]])
    assert err.value.code == "copy_unterminated", finder


def test_the_verifier_with_each_finder(tmp_path, finder):
    path = tmp_path / "db.sql.gz"
    path.write_bytes(gzip.compress(PLAIN))
    result = _dump.Verifier(str(path)).run()
    assert result["valid"], (finder, result["findings"])
    assert result["data_blocks"] == 3


def test_a_cut_block_followed_by_an_empty_copy_block(finder):
    # the COPY line of the next block lies right before the terminator: it ends at the terminator's newline
    dump = PLAIN.replace(b"\\.\n\n\nCOPY public.b (x) FROM stdin;\nCOPY is a word here\n2\tCOPY x FROM stdin;\n\\\\.\n",
                         b"COPY public.b (x) FROM stdin;\n", 1)
    for cut in [len(dump)] + near([dump.index(b"\nCOPY public.b")], 14):
        with pytest.raises(_dump.DumpError) as err:
            scan(splits(dump, [cut]))
        assert err.value.code == "copy_unterminated", (finder, cut)


def outcome(pieces):
    try:
        got = scan(pieces)
    except _dump.DumpError as exc:
        return exc.code, exc.message
    return got.copy_blocks, got.tables


@pytest.mark.skipif(not HAS_MEMMEM, reason="no memmem")
def test_memmem_and_regex_agree_on_random_dumps(monkeypatch):
    rnd = random.Random(16)
    lines = [b"1\tx\t\\N", b"COPY is data", b"COPY public.z (a) FROM stdin;", b"2\tCOPY y FROM stdin;",
             b"\\\\.", b"x FROM stdin;", b"COPY", b"", b"3\t" + b"w" * 40]
    head = PLAIN[:PLAIN.index(b"COPY public.a")]
    for dummy in range(150):
        body = []
        for table in range(rnd.randint(1, 3)):
            body.append(b"COPY public.a (id, sku, name, note) FROM stdin;")
            body.extend(rnd.choice(lines) for dummy in range(rnd.randint(0, 12)))
            if rnd.random() < 0.85:
                body.append(b"\\.")
            body.append(b"")
        dump = head + b"\n".join(body) + b"\n" + PLAIN[FOOTER_START:]
        cuts = [rnd.randint(1, len(dump) - 1) for dummy in range(rnd.randint(0, 4))]
        answers = []
        for fast, strstr in ((True, True), (True, False), (False, False)):
            monkeypatch.setattr(_dump_plain, "USE_MEMMEM", fast)
            monkeypatch.setattr(_dump_plain, "USE_STRSTR", strstr and HAS_STRSTR)
            answers.append(outcome(splits(dump, cuts)))
        assert answers[0] == answers[1] == answers[2], (dump, cuts)


FOOTER_START = PLAIN.index(b"--\n-- PostgreSQL database dump complete")
