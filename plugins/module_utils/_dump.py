# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: PostgreSQL dump verification (used by backup_verify).

This file is the map and the import point; the code lives in one file per concern:

* ``_dump_stream``: raw reading, sha256, decompression of gzip/bzip2/xz members, exact reads, DumpError,
  and Prefetch (at full depth, reading+sha256 and inflating each run in a thread: both release the GIL);
* ``_dump_archive``: custom archives and the toc.dat of directory/tar dumps (header, TOC, data blocks);
* ``_dump_plain``: plain SQL (header, COPY blocks, footer; inside COPY data the C library's strstr, or
  memmem where the bytes hold a NUL, through ctypes, which releases the GIL, with a regular expression as
  the fallback);
* ``_dump_select``: which backup (newest match, history, checksum files);
* ``_dump_verify``: the Verifier (every check, the result dict, the trial outcome shape);
* ``_restore``: restoring a dump (tool by format x compression, -j, decompression, counts, missing
  tables), shared by the trial restore and pg_restore_into.

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

# pylint: disable=unused-import
from ansible_collections.sre.runbooks.plugins.module_utils._dump_archive import (  # noqa: F401
    ARCH_FORMATS,
    BLK_BLOBS,
    BLK_DATA,
    COMPRESSION_ALGOS,
    COPY_END_RE,
    K_OFFSET_NO_DATA,
    K_OFFSET_POS_NOT_SET,
    K_OFFSET_POS_SET,
    copy_terminated,
    parse_archive_header,
    parse_toc,
    toc_tables,
    verify_custom_data,
)
from ansible_collections.sre.runbooks.plugins.module_utils._dump_plain import (  # noqa: F401
    COPY_LINE_RE,
    CREATE_DB_RE,
    CREATE_TABLE_RE,
    COPY_SCAN_RE,
    FOOTER_RE,
    HEADER_RE,
    PlainScanner,
)
from ansible_collections.sre.runbooks.plugins.module_utils._dump_select import (  # noqa: F401
    list_candidates,
    median,
    read_checksum,
)
from ansible_collections.sre.runbooks.plugins.module_utils._dump_stream import (  # noqa: F401
    CARRY_MAX,
    HAS_ISAL,
    MAX_OUT,
    READ_SIZE,
    ByteStream,
    Decompressed,
    DumpError,
    Prefetch,
    RawReader,
    _split_qualified,
    _unquote_ident,
    detect_compression,
    sha256_file,
)
from ansible_collections.sre.runbooks.plugins.module_utils._dump_verify import (  # noqa: F401
    FORMATS,
    Verifier,
    empty_result,
    trial_outcome,
)
from ansible_collections.sre.runbooks.plugins.module_utils._restore import (  # noqa: F401
    COUNT_TABLES_SQL,
    HAS_PSYCOPG2,
    find_pg_tool,
    restore_plan,
    trial_restore,
)
