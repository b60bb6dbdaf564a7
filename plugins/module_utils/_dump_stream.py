# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: reading dumps (raw chunks, sha256, decompression of gzip/bzip2/xz
members, exact reads) and the shared error type. Part of the dump verifier (see _dump.py).

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bz2
import hashlib
import lzma
import re
import threading
import zlib

try:
    import queue as _queue
except ImportError:  # pragma: no cover - Python 2 is not supported by the module, this keeps the import safe
    import Queue as _queue  # pylint: disable=import-error

try:
    from isal import igzip_lib as _igzip_lib
    from isal import isal_zlib as _fast_zlib
    HAS_ISAL = True
except ImportError:  # isal is optional: the standard zlib gives the same answers, slower
    _igzip_lib = None
    _fast_zlib = zlib
    HAS_ISAL = False

READ_SIZE = 1 << 20          # raw read size
MAX_OUT = 2 << 20            # most bytes one decompress call may return (bounds memory; small chunks stay in cache)
PREFETCH_DEPTH = 4           # chunks a Prefetch thread may hold ready (bounds memory: depth x chunk size)
TAIL_KEEP = 64 << 10         # bytes of the end of a plain dump kept for the footer check
HEAD_KEEP = 16 << 10         # bytes of the start of a plain dump kept for the header check
CARRY_MAX = 64 << 10         # longest partial line carried between chunks inside COPY data
MAX_TOC_STRING = 256 << 20   # sanity bound for one TOC string
MAX_TOC_ENTRIES = 10000000

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
LZ4_MAGIC = b"\x04\x22\x4d\x18"


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


class Prefetch:
    """Runs an iterator in a thread of its own and hands its items over through a bounded queue, so that
    what releases the GIL there (file reads, sha256, inflating) overlaps with the consumer's work. An
    exception in the thread is raised to the consumer at the same point of the stream; close() (also
    when the consumer stops early) stops the thread and waits for it."""

    _DONE = object()

    def __init__(self, iterable, depth=PREFETCH_DEPTH):
        self._source = iterable
        self._queue = _queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sre-dump-prefetch")
        self._thread.daemon = True
        self._started = False

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except _queue.Full:
                continue
        return False

    def _run(self):
        source = iter(self._source)
        try:
            for item in source:
                if not self._put((None, item)):
                    break
            else:
                self._put((None, self._DONE))
        except BaseException as exc:  # pylint: disable=broad-except  # handed to the consumer, raised there
            self._put((exc, None))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def __iter__(self):
        if not self._started:
            self._started = True
            self._thread.start()
        try:
            while True:
                exc, item = self._queue.get()
                if exc is not None:
                    raise exc
                if item is self._DONE:
                    return
                yield item
        finally:
            self.close()

    def close(self):
        self._stop.set()
        if not self._started:
            return
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except _queue.Empty:
                pass
            self._thread.join(0.05)


M_TRIM_THRESHOLD = -1       # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_FREED = True           # tests and measurements may set it false
_KEPT = []


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the system at once. At
    full depth every inflated chunk (MAX_OUT) is allocated in the inflating thread and freed in the checking
    thread; with the default (dynamic) thresholds many of them are unmapped or trimmed, so new chunks fault
    their pages in again: 15-35 thousand page faults on 600 MiB, about a third of the system time, where this
    leaves some 5 thousand. Memory stays bounded by what is in flight (a few chunks). Once per process (the
    module's); nothing where the C library has no mallopt."""
    if _KEPT or not KEEP_FREED:
        return
    _KEPT.append(True)
    try:
        import ctypes  # pylint: disable=import-outside-toplevel
        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 128 << 20)


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


def _gzip_member():
    """A gzip member's decompressor: ISA-L's IgzipDecompressor when isal is there (it allocates each output
    chunk once at its full size, where a zlib-style decompressobj grows it from 16 KiB by doubling, copying
    and inflating in many small steps), else the standard zlib. Both check the member's CRC and length."""
    if HAS_ISAL and USE_IGZIP_LIB:
        return _BufferedMember(lambda: _igzip_lib.IgzipDecompressor(flag=_igzip_lib.DECOMP_GZIP))
    return _ZlibMember()


# tests set this false to run the zlib-style path (isal_zlib.decompressobj, or zlib without isal)
USE_IGZIP_LIB = True

_MEMBER_TYPES = {
    "gzip": (GZIP_MAGIC, _gzip_member),
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
        buf, off = self._buf, self._off
        end = off + n
        if end <= len(buf):
            self._off = end
            self.pos += n
            return buf[off:end]
        # across chunks: join the rest of this one and the start of the next ones (never a copy of a whole
        # chunk: a custom dump's data chunks are a few KiB, a copy of the 1 MiB read chunk each time costs more)
        parts = [buf[off:]]
        got = len(parts[0])
        while got < n:
            nxt = next(self._it, None)
            if nxt is None:
                self._buf, self._off = b"", 0
                break
            take = min(n - got, len(nxt))
            parts.append(nxt[:take])
            got += take
            self._buf, self._off = nxt, take
        data = b"".join(parts) if len(parts) > 1 else parts[0]
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
