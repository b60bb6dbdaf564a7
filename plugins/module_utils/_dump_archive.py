# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: pg_dump archives (custom, and the toc.dat of directory/tar): header,
table of contents, data blocks. Part of the dump verifier (see _dump.py for the layout).

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re
import zlib

from ansible_collections.sre.runbooks.plugins.module_utils._dump_stream import (
    MAX_OUT,
    MAX_TOC_ENTRIES,
    DumpError,
    _fast_zlib,
    _short,
)

ARCH_FORMATS = {1: "custom", 2: "files", 3: "tar", 5: "directory"}  # toc.dat of -Fd says 3 (tar) too
K_OFFSET_POS_NOT_SET, K_OFFSET_POS_SET, K_OFFSET_NO_DATA = 1, 2, 3
BLK_DATA, BLK_BLOBS = 1, 3
COMPRESSION_ALGOS = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}
COPY_END_RE = re.compile(rb"(?:^|\n)\\\.\n\n*$")


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
                self.last = (self.last + data[-8:])[-8:]
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
                self.last = (self.last + out[-8:])[-8:]
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
