# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the dump verifier: one backup, every check, the result dict
(used by backup_verify).

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import stat
import sys
import tarfile
import time

from ansible_collections.sre.runbooks.plugins.module_utils._common import Findings
from ansible_collections.sre.runbooks.plugins.module_utils._dump_archive import (
    K_OFFSET_POS_NOT_SET,
    _data_entries,
    _entry_name,
    copy_terminated,
    parse_archive_header,
    parse_toc,
    toc_tables,
    verify_custom_data,
)
from ansible_collections.sre.runbooks.plugins.module_utils._dump_plain import PlainScanner
from ansible_collections.sre.runbooks.plugins.module_utils._dump_select import _size_of, list_candidates, median, read_checksum
from ansible_collections.sre.runbooks.plugins.module_utils._dump_stream import (
    HEAD_KEEP,
    READ_SIZE,
    ByteStream,
    Decompressed,
    DumpError,
    Prefetch,
    RawReader,
    _short,
    detect_compression,
    keep_freed_memory,
    sha256_file,
)

FORMATS = ("auto", "plain", "custom", "directory", "tar")
# While the reading and inflating threads run, the main thread scans and holds the GIL nearly all the time: a
# thread coming back from a GIL-free call (read, sha256, inflate) waits for it up to the switch interval
# (5 ms by default, longer than one call's work); a short interval hands it back within a scan step.
SWITCH_INTERVAL = 0.0005
# inflating in a thread of its own (beside reading+sha256 and the checks); false: in the checking thread
INFLATE_THREAD = True
TRIAL_KEYS = ("ok", "tables", "rows", "duration_s", "database", "skipped", "error", "missing", "cleanup_error")


def trial_outcome(**values):
    """The one shape of RV(trial_restore): every key present, None when not known."""
    out = dict.fromkeys(TRIAL_KEYS)
    out.update(values)
    return out


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
                 max_size_drop_pct=None, checksum=None, expected_tables=None, now=None, verified_only=False,
                 threads=True):
        self.path = path
        self.threads = threads
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
        """Verify; then, when trial is given (a function of the result so far returning a trial outcome, see
        _restore.trial_restore) and nothing critical was found, run it and record its outcome once."""
        chosen = self._select()
        if chosen is not None:
            self.result["path"] = chosen
            try:
                self._verify(chosen)
            except DumpError as exc:
                self.fail(self._check_for(exc.code), exc.code, exc.message)
            except (IOError, OSError) as exc:
                self.fail("readable", "unreadable", "cannot read %s: %s" % (getattr(exc, "filename", None) or chosen, exc.strerror or exc))
            self._policy_checks()
        if trial is not None:
            if self.critical():
                self.record_trial(trial_outcome(skipped="the file checks found a critical problem"))
            else:
                self.record_trial(trial(self.result))
        return self.finalize()

    def critical(self):
        return any(f["severity"] == "critical" for f in self.findings.as_list())

    def record_trial(self, outcome):
        """Record a trial restore outcome (a plain dict, see trial_outcome): the result key, a check, findings."""
        self.result["trial_restore"] = outcome
        if outcome.get("skipped"):
            return
        if outcome.get("ok"):
            self.check("trial_restore", True, "restored into a throwaway database: %d tables, %d rows in %.1fs"
                       % (outcome["tables"], outcome["rows"], outcome["duration_s"] or 0))
        else:
            self.fail("trial_restore", "trial_restore_failed", outcome.get("error") or "the trial restore failed")
        if outcome.get("cleanup_error"):
            self.findings.add("warning", "trial_restore_cleanup", outcome["cleanup_error"])

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
        threads = []  # full depth: reading+sha256 and inflating each run in a thread (both release the GIL)
        switch = sys.getswitchinterval()
        try:
            self.check("readable", True, "%d bytes" % st.st_size)
            raw = reader.chunks()
            if not quick and self.threads:
                keep_freed_memory()
                sys.setswitchinterval(min(switch, SWITCH_INTERVAL))
                threads.append(Prefetch(raw))
                raw = iter(threads[-1])
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
            if compression != "none" and not quick and self.threads and INFLATE_THREAD:
                threads.append(Prefetch(stream_src))
                chunks = iter(threads[-1])
            else:
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
            for thread in reversed(threads):
                thread.close()
            sys.setswitchinterval(switch)
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
                    last = (last + chunk[-8:])[-8:]
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
                    last = (last + piece[-8:])[-8:]
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
