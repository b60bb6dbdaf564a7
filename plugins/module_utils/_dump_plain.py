# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: plain SQL dumps: header, COPY blocks, footer, in one streaming pass.
Part of the dump verifier (see _dump.py).

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:  # libc memmem through ctypes: as fast as the regex below and it releases the GIL (the inflating thread runs)
    import ctypes
    _libc = ctypes.CDLL(None)
    _memmem = _libc.memmem
    _memmem.restype = ctypes.c_void_p
    _memmem.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)
    _c_char_p, _c_void_p, _cast = ctypes.c_char_p, ctypes.c_void_p, ctypes.cast
except (ImportError, OSError, AttributeError, TypeError):  # no ctypes or no memmem in the C library: the regex
    _memmem = None
try:  # libc strstr and memchr: glibc's strstr is vectorised (SSE2, AVX512), its memmem is not
    _strstr = _libc.strstr
    _strstr.restype = ctypes.c_void_p
    _strstr.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
    _memchr = _libc.memchr
    _memchr.restype = ctypes.c_void_p
    _memchr.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
except (NameError, AttributeError, TypeError):
    _strstr = None

from ansible_collections.sre.runbooks.plugins.module_utils._dump_stream import (
    CARRY_MAX,
    HEAD_KEEP,
    TAIL_KEEP,
    DumpError,
    _short,
    _split_qualified,
    _unquote_ident,
)

_IDENT = rb'(?:"(?:[^"]|"")*"|[^\s."(]+)'
COPY_LINE_RE = re.compile(rb"^COPY (" + _IDENT + rb"(?:\." + _IDENT + rb")?)(?: \([^\n]*\))? FROM stdin;$", re.M)
CREATE_TABLE_RE = re.compile(rb"^CREATE (?:UNLOGGED )?TABLE (" + _IDENT + rb"(?:\." + _IDENT + rb")?)", re.M)
CREATE_DB_RE = re.compile(rb"^CREATE DATABASE (" + _IDENT + rb")", re.M)
HEADER_RE = re.compile(rb"^-- PostgreSQL database (?:cluster )?dump$", re.M)
FOOTER_RE = re.compile(rb"^-- PostgreSQL database (?:cluster )?dump complete$", re.M)
DUMPED_BY_RE = re.compile(rb"^-- Dumped by pg_dump(?:all)? version (\S+)", re.M)
DUMPED_FROM_RE = re.compile(rb"^-- Dumped from database version (\S+)", re.M)
RESTRICT_RE = re.compile(rb"^\\restrict (\S+)$", re.M)
TRAILER_LINE_RE = re.compile(rb"^(?:--.*|\s*|\\unrestrict \S+|\\connect .*)$")
# inside COPY data: the '\.' terminator line or a line starting with 'COPY ' (a COPY command there means the
# block before it was cut): both in one pass over the inflated bytes, no copy of them
COPY_SCAN_RE = re.compile(rb"\n(?:\\\.\n|COPY )")
EDGE = 5                     # bytes kept across a chunk boundary inside COPY data: len(b"\nCOPY ") - 1
SCAN_STEP = 256 << 10        # bytes searched per regex call: the GIL is held that long, the inflating thread waits
TERMINATOR = b"\n\\.\n"
COPY_AT_LINE = b"\nCOPY "
COPY_LINE_END = b" FROM stdin;\n"  # how every COPY command line of a plain dump ends
# memmem is used when this is true and libc has it (tests set it false to run the regex fallback)
USE_MEMMEM = _memmem is not None
# strstr instead of memmem where the searched bytes hold no NUL (always, in a sound dump; tests set it false)
USE_STRSTR = _memmem is not None and _strstr is not None


def _address(buf):
    """Address of the bytes of buf for memmem, or None (no memmem, or buf is not a bytes object)."""
    if not USE_MEMMEM or type(buf) is not bytes:  # pylint: disable=unidiomatic-typecheck  # exactly bytes
        return None
    return _cast(_c_char_p(buf), _c_void_p).value


def _memfind(addr, start, end, needle):
    """Offset of needle in the bytes at addr between start and end (like bytes.find), -1 when absent. The
    caller keeps the bytes object alive; the GIL is released during the search."""
    if end - start < len(needle):
        return -1
    hit = _memmem(addr + start, end - start, needle, len(needle))
    return -1 if hit is None else hit - addr


def _nul_free(addr, start, size):
    """True when the bytes at addr hold no NUL from start to their end at size (a bytes object has its NUL
    right after its end, where strstr stops)."""
    return _memchr(addr + start, 0, size - start) is None


def _strfind(addr, start, end, needle):
    """_memfind through strstr, for bytes that hold no NUL from start to the end of their object (see
    _nul_free): strstr searches to that end, a hit past end is no hit. The GIL is released during the
    search."""
    if end - start < len(needle):
        return -1
    hit = _strstr(addr + start, needle)
    if hit is None:
        return -1
    hit -= addr
    return hit if hit + len(needle) <= end else -1


class PlainScanner:
    """State machine over plain SQL chunks: header, COPY blocks terminated, footer."""

    def __init__(self, quick=False):
        self.quick = quick
        self.head = b""
        self.tail = b""
        self.carry = b""
        self.in_copy = None      # table name while inside a COPY block
        self.copy_start = 0
        self.copy_blocks = 0
        self.tables = []
        self.database = None
        self.offset = 0          # uncompressed offset of the start of self.carry
        self.total = 0
        self.header_checked = False

    def _check_header(self):
        head = self.head
        if not head.lstrip().startswith(b"--") or not HEADER_RE.search(head[:4096]):
            if head.lstrip()[:5] in (b"<!DOC", b"<html", b"<HTML", b"<?xml"):
                raise DumpError("unknown_format", "the content is an HTML/XML page, not a dump (starts with %r)" % _short(head.lstrip()))
            raise DumpError("header_missing", "no '-- PostgreSQL database dump' header at the start "
                            "(starts with %r)" % _short(head.lstrip()))
        self.header_checked = True

    def header_info(self):
        info = {}
        m = DUMPED_BY_RE.search(self.head)
        info["pg_dump_version"] = m.group(1).decode("ascii", "replace") if m else None
        m = DUMPED_FROM_RE.search(self.head)
        info["server_version"] = m.group(1).decode("ascii", "replace") if m else None
        m = RESTRICT_RE.search(self.head)
        info["restrict_key"] = m.group(1) if m else None
        return info

    def feed(self, chunk):
        self.total += len(chunk)
        if len(self.head) < HEAD_KEEP:
            self.head += chunk[:HEAD_KEEP - len(self.head)]
            if not self.header_checked and (len(self.head) >= HEAD_KEEP or b"\n\n" in self.head[200:] or len(self.head) > 2048):
                self._check_header()
        if len(chunk) >= TAIL_KEEP:
            self.tail = chunk[-TAIL_KEEP:]
        else:
            self.tail = (self.tail + chunk)[-TAIL_KEEP:]
        if self.quick:
            return
        pos = 0
        base = self.offset
        carry = self.carry
        if not carry:
            buf = chunk
        elif self.in_copy is not None and len(carry) <= EDGE < len(chunk):
            # inside COPY data only the last EDGE bytes are carried: look for a terminator or COPY line
            # that straddles the boundary in a few bytes around it, then scan the chunk where it lies
            edge = carry + chunk[:EDGE + 1]
            m = COPY_SCAN_RE.search(edge)
            if m is None or m.start() >= len(carry):
                buf, base = chunk, base + len(carry)
            elif m.group() == b"\n\\.\n":
                self._copy_done()
                buf, base, pos = chunk, base + len(carry), m.end() - len(carry)
                self.carry = b""
                pos = self._scan_out(buf, pos, base)
                if pos is None:
                    return
            else:
                buf = carry + chunk  # a COPY line across the boundary: rare, check it on the joined bytes
        else:
            buf = carry + chunk
        while True:
            if self.in_copy is not None:
                pos = self._scan_copy(buf, pos, base)
                if pos is None:
                    return
            pos = self._scan_out(buf, pos, base)
            if pos is None:
                return

    def _copy_done(self):
        self.in_copy = None
        self.copy_blocks += 1

    @staticmethod
    def _search_copy(buf, start):
        """COPY_SCAN_RE.search(buf, start), in steps of SCAN_STEP bytes (overlapping by a match length)."""
        size = len(buf)
        search = COPY_SCAN_RE.search
        while True:
            stop = start + SCAN_STEP
            m = search(buf, start, stop + EDGE + 1)
            if m is not None or stop >= size:
                return m
            start = stop

    def _scan_copy(self, buf, start, base):
        addr = _address(buf)
        if addr is not None:
            return self._scan_copy_memmem(buf, start, base, addr)
        m = self._search_copy(buf, start)
        while m is not None:
            hit = m.start()
            if m.end() - hit == 4:  # b"\n\\.\n"
                self._copy_done()
                return m.end()
            eol = buf.find(b"\n", hit + 1)
            if eol < 0:
                if len(buf) - hit <= CARRY_MAX:
                    self.carry = buf[hit:]   # the line is not complete yet: check it with the next chunk
                    self.offset = base + hit
                    return None
                break  # longer than any COPY command line: a data row
            if COPY_LINE_RE.match(buf, hit + 1, eol):
                self._cut_block(base + hit + 1)
            m = self._search_copy(buf, eol)
        cut = max(len(buf) - EDGE, start)
        self.carry = buf[cut:]
        self.offset = base + cut
        return None

    def _cut_block(self, at):
        raise DumpError("copy_unterminated", "the COPY block of %s (from byte %d) has no '\\.' terminator "
                        "before the next COPY at byte %d" % (self.in_copy, self.copy_start, at))

    def _scan_copy_memmem(self, buf, start, base, addr):
        """_scan_copy with memmem (the GIL released): the first terminator, and before it every complete line
        that ends with ' FROM stdin;' (found by that longer needle, twice as fast as '\\nCOPY ') and is a
        COPY command. start is at a line start or continues a line that is not a COPY line (one that is
        was carried whole, or found across the boundary by feed); a COPY line still open at the end of buf
        is carried to the next chunk."""
        size = len(buf)
        find = _strfind if USE_STRSTR and _nul_free(addr, start, size) else _memfind
        term = find(addr, start, size, TERMINATOR)
        stop = term + 1 if term >= 0 else size  # a COPY line right before the terminator ends at its b"\n"
        pos = start
        while True:
            hit = find(addr, pos, stop, COPY_LINE_END)
            if hit < 0:
                break
            eol = hit + len(COPY_LINE_END) - 1
            line = buf.rfind(b"\n", start, hit)
            if line >= 0 and COPY_LINE_RE.match(buf, line + 1, eol):
                self._cut_block(base + line + 1)
            pos = eol
        if term >= 0:
            self._copy_done()
            return term + 4
        last = buf.rfind(b"\n", start)
        if last >= 0 and buf.startswith(COPY_AT_LINE, last) and size - last <= CARRY_MAX:
            self.carry = buf[last:]   # an open line that starts like a COPY command: check it whole
            self.offset = base + last
            return None
        cut = max(size - EDGE, start)
        self.carry = buf[cut:]
        self.offset = base + cut
        return None

    def _scan_out(self, buf, start, base):
        complete = buf.rfind(b"\n", start) + 1
        if complete <= start:
            self.carry = buf[start:]
            self.offset = base + start
            return None
        m = COPY_LINE_RE.search(buf, start, complete)
        region_end = m.start() if m else complete
        for t in CREATE_TABLE_RE.finditer(buf, start, region_end):
            self.tables.append(_split_qualified(t.group(1)))
        if self.database is None:
            d = CREATE_DB_RE.search(buf, start, region_end)
            if d:
                self.database = _unquote_ident(d.group(1).decode("utf-8", "replace"))
        if m is None:
            self.carry = buf[complete:]
            self.offset = base + complete
            return None
        self.in_copy = _split_qualified(m.group(1))
        self.copy_start = base + m.start()
        return m.end()

    def finish(self):
        if not self.header_checked:
            if not self.head.strip():
                raise DumpError("empty", "the dump holds no SQL (only %d whitespace byte(s))" % self.total)
            self._check_header()
        if self.quick:
            return
        if self.in_copy is not None:
            raise DumpError("copy_unterminated", "the dump ends inside the COPY block of %s (from byte %d): "
                            "the dump was cut while writing data" % (self.in_copy, self.copy_start))
        tail = self.tail
        found = None
        for found in FOOTER_RE.finditer(tail):
            pass
        if found is None:
            last = [line for line in tail.rstrip().split(b"\n")[-1:] if line]
            raise DumpError("footer_missing", "no '-- PostgreSQL database dump complete' footer: pg_dump did not "
                            "finish (last line %r)" % (_short(last[0]) if last else ""))
        after = tail[found.end():].split(b"\n")
        for line in after:
            if not TRAILER_LINE_RE.match(line):
                raise DumpError("footer_missing", "SQL follows the '-- PostgreSQL database dump complete' footer "
                                "(%r)" % _short(line))
