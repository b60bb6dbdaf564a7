# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: PostgreSQL dump verification (used by backup_verify).

Reads pg_dump output of every format (plain, custom, directory, tar), optionally compressed
(gzip, bzip2, xz), in one streaming pass with constant memory, and reports what it found as
checks and findings. It never writes to the backup.

Format knowledge (pg_dump's archive layout, PostgreSQL 9.x-17):

* custom (``-Fc``): ``PGDMP``, version bytes (major, minor, rev), intSize, offSize, format byte,
  compression (an int before archive version 1.15, an algorithm byte from 1.15), the creation
  time as 7 ints, then the strings dbname, server version, pg_dump version; the table of
  contents (an int count, then per entry: dumpId, hadDumper, tableoid, oid, tag, desc, section,
  defn, dropStmt, copyStmt, namespace, tablespace, tableam (1.14+), relkind (1.16+), owner,
  withOids, the dependency list ended by a NULL string, and the data offset: a flag byte plus
  offSize bytes); then data blocks: a type byte (1 = table data, 3 = large objects), the dumpId,
  and length-prefixed chunks (compressed as one zlib stream per block) ended by a zero length.
  Ints are a sign byte plus intSize little-endian bytes; strings are an int length (-1 = NULL)
  plus bytes.  Archives written to a pipe carry no data offsets (flag 1 instead of 2).
* directory (``-Fd``): ``toc.dat`` (same header and TOC, each entry followed by its data file
  name) plus one ``<dumpId>.dat`` or ``.dat.gz`` per table data entry.
* tar (``-Ft``): a tar stream holding ``toc.dat``, the ``<dumpId>.dat`` members and ``restore.sql``.
* plain: SQL text with a ``-- PostgreSQL database dump`` header, ``COPY ... FROM stdin;`` blocks
  ended by a ``\\.`` line and the ``-- PostgreSQL database dump complete`` footer (current
  pg_dump may add ``\\restrict``/``\\unrestrict`` lines around it).

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bz2
import datetime
import fnmatch
import hashlib
import lzma
import os
import re
import shlex
import stat
import tarfile
import time
import uuid
import zlib

try:
    from isal import isal_zlib as _fast_zlib
    HAS_ISAL = True
except ImportError:  # isal is optional: the standard zlib gives the same answers, slower
    _fast_zlib = zlib
    HAS_ISAL = False

try:
    import psycopg2
    from psycopg2 import sql as pgsql
    HAS_PSYCOPG2 = True
    PG_ERRORS = (psycopg2.Error,)
except ImportError:  # only the trial restore needs it; the module reports missing_required_lib
    pgsql = None
    HAS_PSYCOPG2 = False
    PG_ERRORS = ()

from ansible_collections.sre.runbooks.plugins.module_utils._common import Findings
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import PgConnectError, connect

READ_SIZE = 1 << 20          # raw read size
MAX_OUT = 8 << 20            # most bytes one decompress call may return (bounds memory)
TAIL_KEEP = 64 << 10         # bytes of the end of a plain dump kept for the footer check
HEAD_KEEP = 16 << 10         # bytes of the start of a plain dump kept for the header check
CARRY_MAX = 64 << 10         # longest partial line carried between chunks inside COPY data
MAX_TOC_STRING = 256 << 20   # sanity bound for one TOC string
MAX_TOC_ENTRIES = 10000000

FORMATS = ("auto", "plain", "custom", "directory", "tar")
ARCH_FORMATS = {1: "custom", 2: "files", 3: "tar", 5: "directory"}  # toc.dat of -Fd says 3 (tar) too
K_OFFSET_POS_NOT_SET, K_OFFSET_POS_SET, K_OFFSET_NO_DATA = 1, 2, 3
BLK_DATA, BLK_BLOBS = 1, 3
COMPRESSION_ALGOS = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
LZ4_MAGIC = b"\x04\x22\x4d\x18"

_IDENT = rb'(?:"(?:[^"]|"")*"|[^\s."(]+)'
COPY_LINE_RE = re.compile(rb"^COPY (" + _IDENT + rb"(?:\." + _IDENT + rb")?)(?: \([^\n]*\))? FROM stdin;$", re.M)
CREATE_TABLE_RE = re.compile(rb"^CREATE (?:UNLOGGED )?TABLE (" + _IDENT + rb"(?:\." + _IDENT + rb")?)", re.M)
CREATE_DB_RE = re.compile(rb"^CREATE DATABASE (" + _IDENT + rb")", re.M)
HEADER_RE = re.compile(rb"^-- PostgreSQL database (?:cluster )?dump$", re.M)
FOOTER_RE = re.compile(rb"^-- PostgreSQL database (?:cluster )?dump complete$", re.M)
DUMPED_BY_RE = re.compile(rb"^-- Dumped by pg_dump(?:all)? version (\S+)", re.M)
DUMPED_FROM_RE = re.compile(rb"^-- Dumped from database version (\S+)", re.M)
RESTRICT_RE = re.compile(rb"^\\restrict (\S+)$", re.M)
COPY_END_RE = re.compile(rb"(?:^|\n)\\\.\n\n*$")
TRAILER_LINE_RE = re.compile(rb"^(?:--.*|\s*|\\unrestrict \S+|\\connect .*)$")


class DumpError(Exception):
    """A fatal problem in the backup: code names it (a finding code), message explains it."""

    def __init__(self, code, message):
        super(DumpError, self).__init__(message)
        self.code = code
        self.message = message


def _unquote_ident(text):
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return text[1:-1].replace('""', '"')
    return text


def _split_qualified(raw):
    """b'public."Odd Name"' -> 'public.Odd Name' (schema-qualified, identifiers unquoted)."""
    text = raw.decode("utf-8", "replace")
    parts = re.findall(r'"(?:[^"]|"")*"|[^.]+', text)
    return ".".join(_unquote_ident(p) for p in parts)


def _short(data, limit=60):
    text = data[:limit].decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else "." for ch in text)
    return text


# --------------------------------------------------------------------------- raw reading

class RawReader:
    """Reads a file once in large chunks, hashing (sha256) and counting what it reads."""

    def __init__(self, path, hash_it=True, limit=None):
        self.path = path
        self.bytes_read = 0
        self._hash = hashlib.sha256() if hash_it else None
        self._limit = limit
        self._fh = open(path, "rb")

    def close(self):
        self._fh.close()

    def chunks(self):
        fh = self._fh
        while True:
            if self._limit is not None:
                want = min(READ_SIZE, self._limit - self.bytes_read)
                if want <= 0:
                    return
            else:
                want = READ_SIZE
            data = fh.read(want)
            if not data:
                return
            self.bytes_read += len(data)
            if self._hash is not None:
                self._hash.update(data)
            yield data

    def drain(self):
        for dummy in self.chunks():
            pass

    def hexdigest(self):
        return self._hash.hexdigest() if self._hash is not None else None


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            data = handle.read(READ_SIZE)
            if not data:
                break
            digest.update(data)
    return digest.hexdigest()


def detect_compression(head):
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(BZIP2_MAGIC) and len(head) > 3 and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(LZ4_MAGIC):
        return "lz4"
    return "none"


class _ZlibMember:
    """zlib-style decompressor (gzip member) with bounded output."""

    def __init__(self):
        self._d = _fast_zlib.decompressobj(31)

    def feed(self, data):
        d = self._d
        out = d.decompress(data, MAX_OUT)
        while True:
            if out:
                yield out
            if d.eof:
                return
            tail = d.unconsumed_tail
            if not tail and len(out) < MAX_OUT:
                return
            out = d.decompress(tail, MAX_OUT)

    @property
    def eof(self):
        return self._d.eof

    @property
    def unused(self):
        return self._d.unused_data


class _BufferedMember:
    """bz2/lzma-style decompressor (needs_input API) with bounded output."""

    def __init__(self, factory):
        self._d = factory()

    def feed(self, data):
        d = self._d
        out = d.decompress(data, MAX_OUT)
        while True:
            if out:
                yield out
            if d.eof or d.needs_input:
                return
            out = d.decompress(b"", MAX_OUT)

    @property
    def eof(self):
        return self._d.eof

    @property
    def unused(self):
        return self._d.unused_data


_MEMBER_TYPES = {
    "gzip": (GZIP_MAGIC, _ZlibMember),
    "bzip2": (BZIP2_MAGIC, lambda: _BufferedMember(bz2.BZ2Decompressor)),
    "xz": (XZ_MAGIC, lambda: _BufferedMember(lzma.LZMADecompressor)),
}


class Decompressed:
    """Iterates the uncompressed bytes of a (multi-member) compressed stream, checking every member,
    its integrity trailer (CRC and length for gzip) and that nothing but members follows."""

    def __init__(self, raw_chunks, compression):
        self.compression = compression
        self.members = 0
        self.trailing_zeros = 0
        self._raw = raw_chunks
        self.bytes_out = 0

    def __iter__(self):
        magic, factory = _MEMBER_TYPES[self.compression]
        member = None
        pending = b""
        in_trailer = False
        consumed = 0
        for chunk in self._raw:
            data = pending + chunk if pending else chunk
            pending = b""
            while data:
                if in_trailer:
                    if data.count(b"\0") != len(data):
                        raise DumpError("trailing_garbage", "%d byte(s) that are not %s data follow the last %s member "
                                        "(at byte %d): the file was appended to or is not one backup"
                                        % (len(data), self.compression, self.compression, consumed))
                    self.trailing_zeros += len(data)
                    consumed += len(data)
                    data = b""
                    break
                if member is None:
                    if len(data) < len(magic):
                        pending = data
                        data = b""
                        break
                    if not data.startswith(magic):
                        if self.members == 0:
                            raise DumpError("compression_error", "not a %s stream" % self.compression)
                        in_trailer = True
                        continue
                    member = factory()
                    self.members += 1
                try:
                    for out in member.feed(data):
                        self.bytes_out += len(out)
                        yield out
                except (zlib.error, _fast_zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
                    raise DumpError("compression_error", "%s member %d is corrupt near compressed byte %d: %s"
                                    % (self.compression, self.members, consumed, exc))
                if member.eof:
                    rest = member.unused
                    consumed += len(data) - len(rest)
                    data = rest
                    member = None
                else:
                    consumed += len(data)
                    data = b""
        if pending:
            if in_trailer or self.members:
                if pending.count(b"\0") != len(pending):
                    raise DumpError("trailing_garbage", "%d byte(s) that are not %s data follow the last member"
                                    % (len(pending), self.compression))
                self.trailing_zeros += len(pending)
            else:
                raise DumpError("truncated", "the %s stream ends after %d byte(s)" % (self.compression, len(pending)))
        if member is not None:
            raise DumpError("truncated", "the %s stream ends inside member %d (after %d compressed bytes): "
                            "the file is truncated" % (self.compression, self.members, consumed))
        if self.members == 0:
            raise DumpError("empty", "the file holds no %s member" % self.compression)


class ByteStream:
    """Exact reads over an iterator of chunks (for the structured archive formats)."""

    def __init__(self, chunks):
        self._it = iter(chunks)
        self._buf = b""
        self._off = 0
        self.pos = 0
        self.int_size = 4
        self.off_size = 8

    def _fill(self, n):
        while len(self._buf) - self._off < n:
            nxt = next(self._it, None)
            if nxt is None:
                return False
            self._buf = self._buf[self._off:] + nxt
            self._off = 0
        return True

    def read(self, n):
        if len(self._buf) - self._off < n:
            self._fill(n)
        data = self._buf[self._off:self._off + n]
        self._off += len(data)
        self.pos += len(data)
        return data

    def at_eof(self):
        return not self._fill(1)

    def peek(self, n):
        self._fill(n)
        return self._buf[self._off:self._off + n]

    def exact(self, n, what):
        data = self.read(n)
        if len(data) < n:
            raise DumpError("truncated", "the archive ends inside %s (at byte %d): the file is truncated" % (what, self.pos))
        return data

    def pieces(self, n, what):
        """Yield n bytes in pieces of at most READ_SIZE (constant memory for large chunks)."""
        while n > 0:
            piece = self.exact(min(n, READ_SIZE), what)
            n -= len(piece)
            yield piece

    def byte(self, what):
        return self.exact(1, what)[0]

    def int_(self, what):
        raw = self.exact(1 + self.int_size, what)
        value = int.from_bytes(raw[1:], "little")
        return -value if raw[0] else value

    def str_(self, what, keep=True):
        length = self.int_(what)
        if length < 0:
            return None
        if length > MAX_TOC_STRING:
            raise DumpError("toc_invalid", "implausible string length %d in %s (at byte %d)" % (length, what, self.pos))
        if not keep:
            for dummy in self.pieces(length, what):
                pass
            return "?" if length else ""
        return self.exact(length, what).decode("utf-8", "replace")

    def offset(self, what):
        flag = self.byte(what)
        raw = self.exact(self.off_size, what)
        return flag, int.from_bytes(raw, "little")


# --------------------------------------------------------------------------- archive (custom/dir/tar)

def _version_tuple(major, minor, rev):
    return (major, minor, rev)


def parse_archive_header(stream):
    """Parse the archive header (custom, or toc.dat of directory/tar). Returns a dict."""
    magic = stream.read(5)
    if magic != b"PGDMP":
        raise DumpError("header_invalid", "the archive does not start with PGDMP (found %r)" % _short(magic))
    major, minor, rev = (stream.byte("the archive header") for dummy in range(3))
    version = _version_tuple(major, minor, rev)
    if major != 1 or minor < 10 or minor > 16:
        raise DumpError("unsupported_version", "archive version %d.%d.%d is not supported (1.10 to 1.16 are)" % version)
    int_size = stream.byte("the archive header")
    off_size = stream.byte("the archive header")
    if int_size not in (4, 8) or off_size not in (4, 8):
        raise DumpError("header_invalid", "implausible integer/offset sizes %d/%d in the archive header" % (int_size, off_size))
    stream.int_size = int_size
    stream.off_size = off_size
    fmt_byte = stream.byte("the archive header")
    if fmt_byte not in ARCH_FORMATS:
        raise DumpError("header_invalid", "unknown archive format byte %d" % fmt_byte)
    if version >= (1, 15, 0):
        algo = stream.byte("the archive header")
        compression = COMPRESSION_ALGOS.get(algo)
        if compression is None:
            raise DumpError("header_invalid", "unknown compression algorithm %d in the archive header" % algo)
    else:
        level = stream.int_("the archive header")
        if level < -1 or level > 9:
            raise DumpError("header_invalid", "implausible compression level %d in the archive header" % level)
        compression = "none" if level == 0 else "gzip"
    tm = [stream.int_("the archive header") for dummy in range(7)]
    created = None
    try:
        created = datetime.datetime(tm[5] + 1900, tm[4] + 1, tm[3], tm[2], tm[1], min(tm[0], 59)).isoformat()
    except ValueError:
        raise DumpError("header_invalid", "implausible creation time in the archive header")
    dbname = stream.str_("the archive header")
    server_version = stream.str_("the archive header")
    pg_dump_version = stream.str_("the archive header")
    return {
        "archive_version": "%d.%d.%d" % version, "version": version, "format": ARCH_FORMATS[fmt_byte],
        "compression": compression, "created": created, "database": dbname,
        "server_version": server_version, "pg_dump_version": pg_dump_version,
    }


def parse_toc(stream, header, container):
    """Parse the table of contents of a custom archive or a toc.dat (container: custom, directory
    or tar, which decides the per-entry extra data). Returns the entries (only the fields we use)."""
    version = header["version"]
    fmt = container
    count = stream.int_("the table of contents")
    if count < 0 or count > MAX_TOC_ENTRIES:
        raise DumpError("toc_invalid", "implausible table of contents size %d" % count)
    entries = []
    for index in range(count):
        what = "table of contents entry %d of %d" % (index + 1, count)
        entry = {"dump_id": stream.int_(what), "had_dumper": stream.int_(what) != 0}
        stream.str_(what)  # tableoid
        stream.str_(what)  # oid
        entry["tag"] = stream.str_(what)
        entry["desc"] = stream.str_(what)
        entry["section"] = stream.int_(what)
        stream.str_(what, keep=False)  # defn
        stream.str_(what, keep=False)  # dropStmt
        entry["copy"] = bool(stream.str_(what, keep=False))  # copyStmt
        entry["namespace"] = stream.str_(what)
        stream.str_(what)  # tablespace
        if version >= (1, 14, 0):
            stream.str_(what)  # tableam
        if version >= (1, 16, 0):
            stream.int_(what)  # relkind
        stream.str_(what)  # owner
        stream.str_(what)  # withOids
        deps = 0
        while stream.str_(what) is not None:
            deps += 1
            if deps > MAX_TOC_ENTRIES:
                raise DumpError("toc_invalid", "endless dependency list in %s" % what)
        if fmt == "custom":
            entry["offset_flag"], entry["offset"] = stream.offset(what)
            if entry["offset_flag"] not in (K_OFFSET_POS_NOT_SET, K_OFFSET_POS_SET, K_OFFSET_NO_DATA):
                raise DumpError("toc_invalid", "bad data offset flag %d in %s" % (entry["offset_flag"], what))
        else:
            entry["filename"] = stream.str_(what)
        if entry["dump_id"] <= 0 or entry["desc"] is None:
            raise DumpError("toc_invalid", "%s is malformed (dump id %s, type %r)" % (what, entry["dump_id"], entry["desc"]))
        entries.append(entry)
    return entries


def toc_tables(entries):
    return ["%s.%s" % (e["namespace"], e["tag"]) if e.get("namespace") else e["tag"]
            for e in entries if e["desc"] == "TABLE"]


def _data_entries(entries, fmt):
    out = []
    for entry in entries:
        if not entry["had_dumper"]:
            continue
        if fmt == "custom" and entry.get("offset_flag") == K_OFFSET_NO_DATA:
            continue
        if fmt != "custom" and not entry.get("filename"):
            continue
        out.append(entry)
    return out


def _entry_name(entry):
    name = "%s.%s" % (entry["namespace"], entry["tag"]) if entry.get("namespace") else entry["tag"]
    return "%s %s (dump id %d)" % (entry["desc"], name, entry["dump_id"])


class _BlockInflater:
    """Decompresses one data block's chunks (one zlib stream per block), bounded output."""

    def __init__(self, compression):
        self.compression = compression
        self._d = _fast_zlib.decompressobj() if compression == "gzip" else None
        self.bytes_out = 0
        self.last = b""

    def feed(self, data):
        if self._d is None:
            self.bytes_out += len(data)
            if data:
                self.last = (self.last + data)[-8:]
            return
        d = self._d
        if d.eof:
            if data:
                raise DumpError("data_block_corrupt", "data after the end of the compressed stream")
            return
        out = d.decompress(data, MAX_OUT)
        while True:
            if out:
                self.bytes_out += len(out)
                self.last = (self.last + out)[-8:]
            if d.eof:
                if d.unused_data:
                    raise DumpError("data_block_corrupt", "bytes after the end of the compressed stream")
                return
            tail = d.unconsumed_tail
            if not tail and len(out) < MAX_OUT:
                return
            out = d.decompress(tail, MAX_OUT)

    def finish(self):
        if self._d is not None and not self._d.eof:
            raise DumpError("data_block_corrupt", "the compressed stream is incomplete")


def verify_custom_data(stream, header, entries, result):
    """Read every data block after the TOC; check chunks decompress and every data entry has its block."""
    compression = header["compression"]
    if compression not in ("none", "gzip"):
        raise DumpError("unsupported_compression", "data blocks are %s-compressed, which this module cannot "
                        "verify (only none and gzip)" % compression)
    by_id = dict((e["dump_id"], e) for e in entries)
    expected = _data_entries(entries, "custom")
    seen = set()
    offsets_bad = []
    blocks = 0
    uncompressed = 0
    while True:
        block_pos = stream.pos
        first = stream.read(1)
        if not first:
            break
        btype = first[0]
        if btype not in (BLK_DATA, BLK_BLOBS):
            raise DumpError("data_block_corrupt", "byte %d at offset %d is not a data block start "
                            "(after %d block(s)): corrupt or trailing garbage" % (btype, block_pos, blocks))
        dump_id = stream.int_("a data block header")
        entry = by_id.get(dump_id)
        if entry is None:
            raise DumpError("data_block_corrupt", "data block at offset %d names dump id %d, which is not in the "
                            "table of contents" % (block_pos, dump_id))
        if dump_id in seen:
            raise DumpError("data_block_corrupt", "a second data block for %s at offset %d" % (_entry_name(entry), block_pos))
        if entry.get("offset_flag") == K_OFFSET_POS_SET and entry.get("offset") != block_pos:
            offsets_bad.append(_entry_name(entry))
        what = "the data of %s" % _entry_name(entry)
        try:
            if btype == BLK_DATA:
                uncompressed += _read_chunks(stream, compression, what, entry["copy"])
            else:
                oid = stream.int_(what)
                while oid != 0:
                    uncompressed += _read_chunks(stream, compression, what, False)
                    oid = stream.int_(what)
        except DumpError as exc:
            if exc.code == "truncated":
                raise
            raise DumpError("data_block_corrupt", "%s (block at offset %d): %s" % (what, block_pos, exc.message))
        seen.add(dump_id)
        blocks += 1
        result["data_blocks"] = blocks
    result["uncompressed_bytes"] = uncompressed
    missing = [_entry_name(e) for e in expected if e["dump_id"] not in seen]
    return missing, offsets_bad


def _read_chunks(stream, compression, what, is_copy):
    inflater = _BlockInflater(compression)
    while True:
        length = stream.int_(what)
        if length == 0:
            break
        if length < 0 or length > (1 << 31):
            raise DumpError("data_block_corrupt", "implausible chunk length %d" % length)
        for piece in stream.pieces(length, what):
            try:
                inflater.feed(piece)
            except (zlib.error, _fast_zlib.error) as exc:
                raise DumpError("data_block_corrupt", "a chunk does not decompress: %s" % exc)
    inflater.finish()
    if is_copy and not copy_terminated(inflater.last):
        raise DumpError("data_block_corrupt", "the COPY data does not end with its '\\.' terminator (cut while dumping)")
    return inflater.bytes_out


def copy_terminated(last):
    """pg_dump ends the COPY data of every table with a '\\.' line (then blank lines)."""
    return COPY_END_RE.search(last) is not None


# --------------------------------------------------------------------------- plain SQL

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
        buf = self.carry + chunk if self.carry else chunk
        base = self.offset
        pos = 0
        while True:
            if self.in_copy is not None:
                pos = self._scan_copy(buf, pos, base)
                if pos is None:
                    return
            pos = self._scan_out(buf, pos, base)
            if pos is None:
                return

    def _scan_copy(self, buf, start, base):
        end = buf.find(b"\n\\.\n", start)
        limit = end if end >= 0 else len(buf)
        hit = buf.find(b"\nCOPY ", start, limit)
        while hit >= 0:
            eol = buf.find(b"\n", hit + 1)
            if eol < 0:
                break
            if COPY_LINE_RE.match(buf, hit + 1, eol):
                raise DumpError("copy_unterminated", "the COPY block of %s (from byte %d) has no '\\.' terminator "
                                "before the next COPY at byte %d" % (self.in_copy, self.copy_start, base + hit + 1))
            hit = buf.find(b"\nCOPY ", eol, limit)
        if end < 0:
            last_nl = buf.rfind(b"\n", start)
            cut = last_nl if last_nl >= 0 and len(buf) - last_nl <= CARRY_MAX else max(len(buf) - 3, start)
            self.carry = buf[cut:]
            self.offset = base + cut
            return None
        self.in_copy = None
        self.copy_blocks += 1
        return end + 4

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


# --------------------------------------------------------------------------- selection and history

def list_candidates(directory, pattern):
    """Backups in directory matching pattern (files or directory-format dumps), newest first."""
    items = []
    for name in os.listdir(directory):
        if name.startswith(".") or name.endswith(".sha256") or not fnmatch.fnmatch(name, pattern):
            continue
        full = os.path.join(directory, name)
        try:
            st = os.stat(full)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and not os.path.exists(os.path.join(full, "toc.dat")):
            continue
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            continue
        items.append((st.st_mtime, name, full, _size_of(full, st)))
    items.sort(reverse=True)
    return items


def _size_of(path, st=None):
    st = st or os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        total = 0
        for name in os.listdir(path):
            try:
                total += os.stat(os.path.join(path, name)).st_size
            except OSError:
                pass
        return total
    return st.st_size


def median(values):
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return float(values[mid]) if len(values) % 2 else (values[mid - 1] + values[mid]) / 2.0


def read_checksum(value, backup_path):
    """A sha256 hex value, or a .sha256 file ('<hex>  <name>' lines). Returns (hex, source)."""
    text = (value or "").strip()
    if re.match(r"^[0-9a-fA-F]{64}$", text):
        return text.lower(), "given value"
    with open(text, "r") as handle:
        content = handle.read(1 << 20)
    base = os.path.basename(backup_path)
    first = None
    for line in content.splitlines():
        m = re.match(r"^(?:SHA256 \((.+)\) = ([0-9a-fA-F]{64})|([0-9a-fA-F]{64})\s+\*?(.*))$", line.strip())
        if not m:
            continue
        digest = (m.group(2) or m.group(3)).lower()
        name = m.group(1) or m.group(4) or ""
        if first is None:
            first = digest
        if os.path.basename(name.strip()) == base:
            return digest, text
    if first is None:
        raise ValueError("no sha256 value found in %s" % text)
    return first, text


# --------------------------------------------------------------------------- the verifier

def empty_result(path):
    return {
        "valid": False, "status": "critical", "findings": [], "path": path, "format": None,
        "compression": None, "size_bytes": None, "uncompressed_bytes": None, "mtime": None, "age_s": None,
        "sha256": None, "pg_dump_version": None, "server_version": None, "database": None, "created": None,
        "archive_version": None, "tables": [], "data_blocks": 0, "checks": [], "trial_restore": None,
        "history": {"count": 0, "median_size_bytes": None},
    }


class Verifier:
    """Verify one backup. Parameters mirror the module options; run() returns the result dict."""

    def __init__(self, path, pattern="*", fmt="auto", depth="full", max_age=None, min_size=None,
                 max_size_drop_pct=None, checksum=None, expected_tables=None, now=None, verified_only=False):
        self.path = path
        self.verified_only = verified_only
        self.pattern = pattern or "*"
        self.fmt = fmt or "auto"
        self.depth = depth or "full"
        self.max_age = max_age
        self.min_size = min_size
        self.max_size_drop_pct = max_size_drop_pct
        self.checksum = checksum
        self.expected_tables = expected_tables or []
        self.now = now if now is not None else time.time()
        self.findings = Findings()
        self.result = empty_result(path)
        self._history = []

    # helpers
    def check(self, name, ok, detail):
        self.result["checks"].append({"name": name, "ok": bool(ok), "detail": detail})

    def fail(self, name, code, message, severity="critical"):
        self.check(name, False, message)
        self.findings.add(severity, code, message)

    def finalize(self):
        r = self.result
        r["findings"] = self.findings.as_list()
        r["status"] = self.findings.status()
        r["valid"] = not any(f["severity"] == "critical" for f in r["findings"])
        return r

    # selection
    def _select(self):
        path = self.path
        if not os.path.lexists(path):
            self.fail("exists", "not_found", "%s does not exist" % path)
            return None
        if os.path.isdir(path) and not os.path.exists(os.path.join(path, "toc.dat")):
            try:
                items = list_candidates(path, self.pattern)
            except OSError as exc:
                self.fail("exists", "unreadable", "cannot list the directory %s: %s" % (path, exc.strerror or exc))
                return None
            candidates = items
            if self.verified_only:
                candidates = [i for i in items if os.path.isfile(i[2].rstrip("/") + ".sha256")]
            if not candidates:
                self.fail("exists", "no_backup", "no %sbackup matching %r in %s" % (
                    "verified (with a .sha256 beside it) " if self.verified_only and items else "", self.pattern, path))
                return None
            newest = candidates[0]
            chosen = newest[2]
            self._history = [i for i in items if i is not newest and i[0] <= newest[0]]
            self.check("exists", True, "newest %sof %d backup(s) matching %r in %s: %s"
                       % ("verified " if self.verified_only else "", len(items), self.pattern, path, newest[1]))
            return chosen
        try:
            items = list_candidates(os.path.dirname(os.path.abspath(path)), self.pattern)
        except OSError:
            items = []
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            mtime = None
        real = os.path.realpath(path)
        self._history = [i for i in items if os.path.realpath(i[2]) != real and mtime is not None and i[0] <= mtime]
        self.check("exists", True, "%s exists" % path)
        return path

    def run(self, trial=None):
        chosen = self._select()
        if chosen is None:
            return self.finalize()
        self.result["path"] = chosen
        try:
            self._verify(chosen)
        except DumpError as exc:
            self.fail(self._check_for(exc.code), exc.code, exc.message)
        except (IOError, OSError) as exc:
            self.fail("readable", "unreadable", "cannot read %s: %s" % (getattr(exc, "filename", None) or chosen, exc.strerror or exc))
        self._policy_checks()
        if trial is not None and not any(f["severity"] == "critical" for f in self.findings.as_list()):
            trial(self)
        return self.finalize()

    @staticmethod
    def _check_for(code):
        return {
            "empty": "not_empty", "unknown_format": "format", "format_mismatch": "format",
            "compression_error": "compression", "trailing_garbage": "compression", "truncated": "complete",
            "header_missing": "header", "header_invalid": "header", "unsupported_version": "header",
            "toc_invalid": "toc", "copy_unterminated": "copy_blocks", "footer_missing": "footer",
            "data_block_corrupt": "data_blocks", "data_block_missing": "data_blocks",
            "unsupported_compression": "compression", "data_file_missing": "data_blocks",
        }.get(code, code)

    def _stat(self, chosen):
        st = os.stat(chosen)
        r = self.result
        r["size_bytes"] = _size_of(chosen, st)
        r["mtime"] = datetime.datetime.utcfromtimestamp(st.st_mtime).strftime("%Y-%m-%dT%H:%M:%SZ")
        r["age_s"] = round(max(0.0, self.now - st.st_mtime), 3)
        return st

    def _verify(self, chosen):
        st = self._stat(chosen)
        if stat.S_ISDIR(st.st_mode):
            self.check("readable", True, "directory-format dump")
            self._set_format("directory", None)
            self._verify_directory(chosen)
            return
        if not stat.S_ISREG(st.st_mode):
            raise DumpError("unknown_format", "%s is not a regular file" % chosen)
        if st.st_size == 0:
            raise DumpError("empty", "%s is empty (0 bytes)" % chosen)
        quick = self.depth == "quick"
        reader = RawReader(chosen, hash_it=not quick)
        try:
            self.check("readable", True, "%d bytes" % st.st_size)
            raw = reader.chunks()
            first = next(raw, b"")
            compression = detect_compression(first[:8])
            self.result["compression"] = compression

            def raw_iter():
                yield first
                yield from raw

            if compression in ("zstd", "lz4"):
                raise DumpError("unsupported_compression", "the file is %s-compressed; this module verifies "
                                "gzip, bzip2 and xz (decompress it first)" % compression)
            stream_src = raw_iter() if compression == "none" else Decompressed(raw_iter(), compression)
            chunks = iter(stream_src)
            inner_first = b""
            for inner_first in chunks:
                if inner_first:
                    break
            if not inner_first:
                raise DumpError("empty", "%s holds no data after %s decompression" % (chosen, compression))

            def inner_iter():
                yield inner_first
                yield from chunks

            fmt = self._detect_inner(inner_first)
            self._set_format(fmt, compression)
            if fmt == "plain":
                self._verify_plain(inner_iter(), quick)
            elif fmt == "custom":
                self._verify_custom(inner_iter(), quick)
            else:
                self._verify_tar(inner_iter(), quick)
            if not quick:
                # read to the very end (also checks every remaining compressed member)
                for dummy in chunks:
                    pass
                reader.drain()
                if compression != "none":
                    self.check("compression", True, "%s: %d member(s), every CRC and length matches%s"
                               % (compression, stream_src.members,
                                  ", %d trailing zero byte(s) ignored" % stream_src.trailing_zeros
                                  if stream_src.trailing_zeros else ""))
                    if stream_src.trailing_zeros:
                        self.findings.add("warning", "trailing_zeros", "%d zero byte(s) follow the last %s member"
                                          % (stream_src.trailing_zeros, compression))
                    if self.result["uncompressed_bytes"] is None:
                        self.result["uncompressed_bytes"] = stream_src.bytes_out
                self.result["sha256"] = reader.hexdigest()
        finally:
            reader.close()

    def _detect_inner(self, data):
        if data.startswith(b"PGDMP"):
            found = "custom"
        elif len(data) >= 262 and data[257:262] == b"ustar":
            found = "tar"
        else:
            stripped = data.lstrip()[:64]
            if stripped.startswith(b"--") or stripped.upper().startswith((b"SET ", b"CREATE", b"BEGIN", b"\\")):
                found = "plain"
            else:
                raise DumpError("unknown_format", "the content is not a PostgreSQL dump (starts with %r)" % _short(data.lstrip()))
        if self.fmt != "auto" and self.fmt != found:
            raise DumpError("format_mismatch", "format %s was expected but the content is a %s dump" % (self.fmt, found))
        return found

    def _set_format(self, fmt, compression):
        if self.fmt != "auto" and self.fmt != fmt:
            raise DumpError("format_mismatch", "format %s was expected but the content is a %s dump" % (self.fmt, fmt))
        self.result["format"] = fmt
        if compression is not None:
            self.result["compression"] = compression
        self.check("format", True, "%s%s" % (fmt, "" if not compression or compression == "none" else " (%s)" % compression))

    # plain
    def _verify_plain(self, chunks, quick):
        scanner = PlainScanner(quick=quick)
        total = 0
        for chunk in chunks:
            scanner.feed(chunk)
            total += len(chunk)
            if quick and len(scanner.head) >= HEAD_KEEP:
                break
        if quick:
            scanner.finish()
        info = scanner.header_info()
        self.result["pg_dump_version"] = info["pg_dump_version"]
        self.result["server_version"] = info["server_version"]
        self.check("header", True, "plain SQL dump header%s" % (
            " (pg_dump %s)" % info["pg_dump_version"] if info["pg_dump_version"] else ""))
        if quick:
            self.result["tables"] = scanner.tables
            return
        scanner.finish()
        self.result["uncompressed_bytes"] = total
        self.result["tables"] = scanner.tables
        self.result["data_blocks"] = scanner.copy_blocks
        self.result["database"] = scanner.database
        self.check("copy_blocks", True, "%d COPY block(s), every one terminated" % scanner.copy_blocks)
        detail = "completion footer present"
        if info["restrict_key"]:
            if b"\\unrestrict " + info["restrict_key"] not in scanner.tail:
                self.findings.add("warning", "unrestrict_missing", "the dump opens with \\restrict but has no matching "
                                  "\\unrestrict line after its footer")
                detail += ", \\unrestrict missing"
            else:
                detail += ", \\restrict/\\unrestrict pair"
        self.check("footer", True, detail)

    # custom
    def _archive_header(self, stream, label):
        header = parse_archive_header(stream)
        if (header["format"] == "custom") != (label == "custom"):
            raise DumpError("header_invalid", "a %s-format dump whose archive header says %s" % (label, header["format"]))
        r = self.result
        r["pg_dump_version"] = header["pg_dump_version"]
        r["server_version"] = header["server_version"]
        r["database"] = header["database"]
        r["created"] = header["created"]
        r["archive_version"] = header["archive_version"]
        self.check("header", True, "%s archive %s, pg_dump %s, database %s, data compression %s"
                   % (label, header["archive_version"], header["pg_dump_version"], header["database"], header["compression"]))
        entries = parse_toc(stream, header, label)
        r["tables"] = toc_tables(entries)
        self.check("toc", True, "%d entries, %d with data" % (len(entries), len(_data_entries(entries, label))))
        return header, entries

    def _verify_custom(self, chunks, quick):
        stream = ByteStream(chunks)
        header, entries = self._archive_header(stream, "custom")
        if quick:
            return
        missing, offsets_bad = verify_custom_data(stream, header, entries, self.result)
        if missing:
            raise DumpError("data_block_missing", "%d data block(s) missing: %s" % (len(missing), ", ".join(missing[:5])))
        piped = any(e.get("offset_flag") == K_OFFSET_POS_NOT_SET for e in _data_entries(entries, "custom"))
        self.check("data_blocks", True, "%d data block(s), every chunk decompressed and terminated%s"
                   % (self.result["data_blocks"], " (written to a pipe: no data offsets)" if piped else ""))
        if offsets_bad:
            self.fail("data_offsets", "data_block_corrupt", "data offsets in the table of contents do not match "
                      "the blocks: %s" % ", ".join(offsets_bad[:5]))

    # directory
    def _verify_directory(self, path):
        toc_path = os.path.join(path, "toc.dat")
        reader = RawReader(toc_path)
        try:
            stream = ByteStream(reader.chunks())
            header, entries = self._archive_header(stream, "directory")
            if header["format"] == "custom":
                raise DumpError("header_invalid", "toc.dat of a directory dump whose header says custom")
            reader.drain()
            self.result["sha256"] = reader.hexdigest()
        finally:
            reader.close()
        data = _data_entries(entries, "directory")
        missing = []
        files = []
        for entry in data:
            name = entry["filename"]
            candidates = [os.path.join(path, name)] + [os.path.join(path, name + ext) for ext in (".gz", ".lz4", ".zst")]
            found = next((c for c in candidates if os.path.exists(c)), None)
            if found is None:
                missing.append("%s (%s)" % (_entry_name(entry), name))
            else:
                files.append((entry, found))
        if missing:
            raise DumpError("data_block_missing", "%d data file(s) missing: %s" % (len(missing), ", ".join(missing[:5])))
        self.result["compression"] = "gzip" if any(f.endswith(".gz") for dummy, f in files) else "none"
        if self.depth == "quick":
            return
        total = 0
        for entry, found in files:
            total += self._verify_data_file(entry, found)
            self.result["data_blocks"] += 1
        self.result["uncompressed_bytes"] = total
        self.check("data_blocks", True, "%d data file(s), every one complete" % len(files))

    def _verify_data_file(self, entry, found):
        if found.endswith((".lz4", ".zst")):
            raise DumpError("unsupported_compression", "%s is %s-compressed, which this module cannot verify"
                            % (os.path.basename(found), found.rsplit(".", 1)[1]))
        reader = RawReader(found, hash_it=False)
        last = b""
        total = 0
        try:
            src = reader.chunks()
            if found.endswith(".gz"):
                src = Decompressed(src, "gzip")
            try:
                for chunk in src:
                    total += len(chunk)
                    last = (last + chunk)[-8:]
            except DumpError as exc:
                raise DumpError("data_block_corrupt", "%s, data file %s: %s" % (_entry_name(entry), os.path.basename(found), exc.message))
        finally:
            reader.close()
        if entry["copy"] and not copy_terminated(last):
            raise DumpError("data_block_corrupt", "%s, data file %s: the COPY data does not end with its '\\.' terminator"
                            % (_entry_name(entry), os.path.basename(found)))
        return total

    # tar
    def _verify_tar(self, chunks, quick):
        stream = ByteStream(chunks)
        try:
            archive = tarfile.open(fileobj=stream, mode="r|")
        except tarfile.TarError as exc:
            raise DumpError("header_invalid", "not a readable tar stream: %s" % exc)
        entries = None
        header = None
        seen = {}
        total = 0
        try:
            for member in archive:
                if not member.isfile():
                    continue
                handle = archive.extractfile(member)
                if member.name == "toc.dat":
                    toc = ByteStream(iter(lambda: handle.read(READ_SIZE), b""))
                    header, entries = self._archive_header(toc, "tar")
                    if quick:
                        return
                    continue
                size = 0
                last = b""
                for piece in iter(lambda: handle.read(READ_SIZE), b""):
                    size += len(piece)
                    last = (last + piece)[-8:]
                seen[member.name] = (size, last)
                total += size
        except tarfile.TarError as exc:
            raise DumpError("truncated", "the tar stream is incomplete or corrupt: %s" % exc)
        if entries is None:
            raise DumpError("toc_invalid", "the tar archive has no toc.dat")
        data = _data_entries(entries, "tar")
        missing = [_entry_name(e) for e in data if e["filename"] not in seen]
        if missing:
            raise DumpError("data_block_missing", "%d data member(s) missing: %s" % (len(missing), ", ".join(missing[:5])))
        for entry in data:
            size, last = seen[entry["filename"]]
            if entry["copy"] and not copy_terminated(last):
                raise DumpError("data_block_corrupt", "%s: the COPY data does not end with its '\\.' terminator" % _entry_name(entry))
        self.result["data_blocks"] = len(data)
        self.result["uncompressed_bytes"] = total
        self.check("data_blocks", True, "%d data member(s), every one complete" % len(data))

    # policy checks (age, size, history, checksum, expected tables)
    def _policy_checks(self):
        r = self.result
        if r["size_bytes"] is None:
            return
        if self.max_age is not None and r["age_s"] is not None:
            if r["age_s"] > self.max_age:
                self.fail("age", "stale", "the backup is %s old, more than max_age %s"
                          % (_human_age(r["age_s"]), _human_age(self.max_age)))
            else:
                self.check("age", True, "%s old (max_age %s)" % (_human_age(r["age_s"]), _human_age(self.max_age)))
        size = int(r["size_bytes"])
        if self.min_size is not None:
            if size < self.min_size:
                self.fail("min_size", "too_small", "the backup is %d bytes, less than min_size %d" % (size, self.min_size))
            else:
                self.check("min_size", True, "%d bytes >= %d" % (size, self.min_size))
        sizes = [i[3] for i in self._history]
        med = median(sizes)
        r["history"] = {"count": len(sizes), "median_size_bytes": med}
        if self.max_size_drop_pct is not None:
            if not sizes:
                self.check("size_drop", True, "no earlier backup matching %r to compare with" % self.pattern)
            elif med and size < med * (1 - self.max_size_drop_pct / 100.0):
                drop = 100.0 * (med - size) / med
                self.fail("size_drop", "size_drop", "the backup is %d bytes, %.1f%% smaller than the median %d of %d earlier "
                          "backup(s) (max_size_drop_pct %s)" % (size, drop, int(med), len(sizes), self.max_size_drop_pct),
                          severity="warning")
            else:
                self.check("size_drop", True, "%d bytes vs median %d of %d earlier backup(s)" % (size, int(med or 0), len(sizes)))
        self._checksum_check()
        if self.expected_tables and r["format"]:
            have = set(r["tables"])
            missing = [t for t in self.expected_tables if t not in have and ("." in t or "public." + t not in have)]
            if missing:
                self.fail("expected_tables", "missing_tables", "expected table(s) not in the backup: %s" % ", ".join(missing))
            else:
                self.check("expected_tables", True, "all %d expected table(s) present" % len(self.expected_tables))

    def _checksum_check(self):
        r = self.result
        spec = self.checksum
        chosen = r["path"]
        if not spec:
            sibling = chosen.rstrip("/") + ".sha256"
            if os.path.isfile(sibling):
                spec = sibling
            else:
                return
        try:
            expected, source = read_checksum(spec, chosen)
        except (IOError, OSError) as exc:
            self.fail("checksum", "checksum_unreadable", "cannot read the checksum file %s: %s" % (spec, exc.strerror or exc))
            return
        except ValueError as exc:
            self.fail("checksum", "checksum_unreadable", str(exc))
            return
        if r["sha256"] is None:
            target = os.path.join(chosen, "toc.dat") if os.path.isdir(chosen) else chosen
            try:
                r["sha256"] = sha256_file(target)
            except (IOError, OSError) as exc:
                self.fail("checksum", "unreadable", "cannot read %s: %s" % (target, exc.strerror or exc))
                return
        if r["sha256"] != expected:
            self.fail("checksum", "checksum_mismatch", "sha256 %s does not match %s from %s" % (r["sha256"], expected, source))
        else:
            self.check("checksum", True, "sha256 matches %s" % source)


def _human_age(seconds):
    seconds = float(seconds)
    if seconds >= 86400:
        return "%.1fd" % (seconds / 86400)
    if seconds >= 3600:
        return "%.1fh" % (seconds / 3600)
    if seconds >= 60:
        return "%.1fm" % (seconds / 60)
    return "%.0fs" % seconds


# --------------------------------------------------------------------------- trial restore

_LIBPQ_ENV = (("login_host", "PGHOST"), ("login_unix_socket", "PGHOST"), ("login_port", "PGPORT"), ("port", "PGPORT"),
              ("login_user", "PGUSER"), ("login_password", "PGPASSWORD"), ("ssl_mode", "PGSSLMODE"),
              ("ca_cert", "PGSSLROOTCERT"), ("connect_timeout", "PGCONNECT_TIMEOUT"))
_DECOMPRESS = {"gzip": "gzip -dc", "bzip2": "bzip2 -dc", "xz": "xz -dc"}
COUNT_TABLES_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY 1, 2"""


def find_pg_tool(name, bindir=None):
    """pg_restore/psql: from bindir, the PATH, then the newest /usr/lib/postgresql/*/bin."""
    if bindir:
        return os.path.join(bindir, name)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, name)
        if directory and os.access(candidate, os.X_OK):
            return candidate
    base = "/usr/lib/postgresql"
    try:
        versions = sorted((v for v in os.listdir(base) if v.replace(".", "").isdigit()), key=float, reverse=True)
    except OSError:
        versions = []
    for version in versions:
        candidate = os.path.join(base, version, "bin", name)
        if os.access(candidate, os.X_OK):
            return candidate
    return name


def libpq_env(params, dbname):
    """Environment for pg_restore/psql from the connection options (the password never goes in argv)."""
    env = {}
    for option, var in _LIBPQ_ENV:
        value = params.get(option)
        if value not in (None, ""):
            env[var] = str(value)
    env["PGDATABASE"] = dbname
    env["PGAPPNAME"] = "sre.runbooks backup_verify trial restore"
    return env


class TrialRestore:
    """Restore the verified backup into a throwaway database, count tables and rows, always drop it."""

    def __init__(self, module):
        self.module = module

    def __call__(self, verifier):
        result = verifier.result
        out = {"ok": None, "tables": None, "rows": None, "duration_s": None, "database": None, "skipped": None, "error": None}
        result["trial_restore"] = out
        if self.module.check_mode:
            out["skipped"] = "check mode: the trial restore creates a temporary database"
            return
        start = time.time()
        name = "sre_trial_restore_%s" % uuid.uuid4().hex[:12]
        out["database"] = name
        try:
            admin = connect(self.module.params)
        except PgConnectError as exc:
            self._failed(verifier, out, start, "cannot connect to the server for the trial restore: %s" % exc)
            return
        created = False
        version = 0
        try:
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute("SELECT current_setting('server_version_num')::int")
                version = cur.fetchone()[0]
                cur.execute(pgsql.SQL("CREATE DATABASE {} TEMPLATE template0").format(pgsql.Identifier(name)))
            created = True
            error = self._restore(result, name)
            if error:
                self._failed(verifier, out, start, error)
                return
            tables, rows = self._count(name)
            out.update(ok=True, tables=len(tables), rows=rows, duration_s=round(time.time() - start, 3))
            missing = [t for t in result["tables"] if t not in tables]
            if missing:
                out["ok"] = False
                out["error"] = "tables of the backup missing after the restore: %s" % ", ".join(missing[:10])
                verifier.fail("trial_restore", "trial_restore_failed", out["error"])
            else:
                verifier.check("trial_restore", True, "restored into a throwaway database: %d tables, %d rows in %.1fs"
                               % (len(tables), rows, time.time() - start))
        except PgConnectError as exc:
            self._failed(verifier, out, start, "trial restore: %s" % exc)
        except (OSError, ValueError) as exc:
            self._failed(verifier, out, start, "trial restore: %s" % exc)
        except PG_ERRORS as exc:
            self._failed(verifier, out, start, "trial restore: %s" % str(exc).strip())
        finally:
            if created:
                try:
                    self._drop(admin, name, version)
                except PG_ERRORS as exc:
                    verifier.findings.add("warning", "trial_restore_cleanup", "could not drop the throwaway database %s: %s"
                                          % (name, str(exc).strip()))
            admin.close()

    def _failed(self, verifier, out, start, message):
        out.update(ok=False, error=message, duration_s=round(time.time() - start, 3))
        verifier.fail("trial_restore", "trial_restore_failed", message)

    def _restore(self, result, name):
        params = self.module.params
        env = libpq_env(params, name)
        path = result["path"]
        fmt = result["format"]
        compression = result["compression"] or "none"
        bindir = params.get("pg_bindir")
        if fmt == "plain":
            psql = find_pg_tool("psql", bindir)
            argv = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--no-password", "-o", os.devnull]
            if compression == "none":
                rc, dummy, err = self.module.run_command(argv + ["-f", path], environ_update=env)
            else:
                cmd = "set -o pipefail; %s -- %s | %s" % (_DECOMPRESS[compression], shlex.quote(path),
                                                          " ".join(shlex.quote(a) for a in argv))
                rc, dummy, err = self.module.run_command(["/bin/bash", "-c", cmd], environ_update=env)
        else:
            restore = find_pg_tool("pg_restore", bindir)
            argv = [restore, "--exit-on-error", "--no-owner", "--no-privileges", "--no-password", "-d", name]
            jobs = params.get("trial_restore_jobs") or 1
            if fmt in ("custom", "directory") and jobs > 1 and (compression == "none" or fmt == "directory"):
                argv += ["-j", str(jobs)]
            if fmt == "directory" or compression == "none":
                rc, dummy, err = self.module.run_command(argv + [path], environ_update=env)
            else:
                cmd = "set -o pipefail; %s -- %s | %s" % (_DECOMPRESS[compression], shlex.quote(path),
                                                          " ".join(shlex.quote(a) for a in argv))
                rc, dummy, err = self.module.run_command(["/bin/bash", "-c", cmd], environ_update=env)
        if rc != 0:
            lines = [line for line in (err or "").strip().splitlines() if line.strip()]
            return "the restore exited with %d: %s" % (rc, " / ".join(lines[-3:]) or "no error output")
        return None

    def _count(self, name):
        params = dict(self.module.params)
        params["login_db"] = name
        params["db"] = name
        conn = connect(params)
        try:
            with conn.cursor() as cur:
                cur.execute(COUNT_TABLES_SQL)
                tables = cur.fetchall()
                rows = 0
                for schema, table in tables:
                    cur.execute(pgsql.SQL("SELECT count(*) FROM {}.{}").format(pgsql.Identifier(schema), pgsql.Identifier(table)))
                    rows += cur.fetchone()[0]
            conn.rollback()
        finally:
            conn.close()
        return set("%s.%s" % t for t in tables), rows

    def _drop(self, admin, name, version):
        with admin.cursor() as cur:
            if version < 130000:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                cur.execute(pgsql.SQL("DROP DATABASE IF EXISTS {}").format(pgsql.Identifier(name)))
            else:
                cur.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
