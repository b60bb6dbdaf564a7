#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: backup_verify
short_description: Verify a PostgreSQL dump deeply, in one streaming pass, and optionally restore it as a trial
version_added: 0.1.0
description:
  - Checks that a C(pg_dump) backup can really be restored, not only that it exists.
  - Reads plain SQL, custom (C(-Fc)), directory (C(-Fd)) and tar (C(-Ft)) dumps, detecting the format and
    the compression (gzip, bzip2, xz) from the content, never from the name.
  - With O(depth=full) every byte is read once, in constant memory whatever the size; the same pass computes
    the sha256. Reading with the sha256 and decompressing each run in a thread of their own (ISA-L through the
    Python C(isal) package when it is installed, the standard zlib otherwise), beside the checks. Compressed
    streams are checked member by member (CRC and length of every gzip member), and
    bytes after the last member are reported. Plain dumps must have the pg_dump header, every C(COPY) block
    ended by its C(\.) line and the C(-- PostgreSQL database dump complete) footer (the C(\restrict) and
    C(\unrestrict) lines of current pg_dump are allowed, not required). Custom archives are parsed (header,
    table of contents, every data block decompressed to its end, every table data entry has its block),
    including archives written to a pipe, which carry no data offsets.
  - Age, size, size drop against the earlier backups, sha256 and expected tables are checked when asked.
  - O(trial_restore=true) restores the backup into a throwaway database on the server given by the
    connection options, counts its tables and rows, and always drops it afterwards. It restores the way
    M(sre.runbooks.pg_restore_into) does (the same code), with C(--no-owner --no-privileges).
  - Never writes to the backup. A missing path, an empty directory or an unreadable file is a finding.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description:
      - The module only reads the backup, so it runs the same way in check mode.
      - The trial restore creates a temporary database, so it is skipped in check mode
        (RV(trial_restore.skipped) says so).
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  path:
    description:
      - A backup file, a directory-format dump (a directory holding C(toc.dat)), or a directory of backups, in
        which case the newest entry matching O(pattern) is verified.
    type: path
    required: true
  pattern:
    description:
      - Shell glob of backup names in the directory (O(path), or the directory holding O(path)).
      - Picks the newest backup when O(path) is a directory, and the earlier backups for O(max_size_drop_pct).
      - Names starting with a dot and C(.sha256) files are never backups.
    type: str
    default: "*"
  verified_only:
    description:
      - When O(path) is a directory, pick the newest backup that has a C(<backup>.sha256) file beside it (the
        backup runbook writes one only after verifying the backup), instead of the newest one.
    type: bool
    default: false
  format:
    description:
      - The dump format. V(auto) detects it from the content; any other value is also checked against it.
    type: str
    choices: [auto, plain, custom, directory, tar]
    default: auto
  depth:
    description:
      - V(full) reads every byte (stream integrity, every COPY block or data block, the footer, sha256).
      - V(quick) reads only the header and the table of contents.
    type: str
    choices: [full, quick]
    default: full
  max_age:
    description:
      - Oldest acceptable backup, from the file's modification time, for example V(26h) or V(1d).
        An older backup is a critical C(stale) finding.
    type: str
  min_size:
    description: Smallest acceptable size, for example V(1M). A smaller backup is a critical C(too_small) finding.
    type: str
  max_size_drop_pct:
    description:
      - Largest acceptable drop, in percent, against the median size of the earlier backups matching O(pattern)
        in the same directory. A larger drop is a warning C(size_drop) finding.
    type: float
  checksum:
    description:
      - The expected sha256, as a hex value or the path of a C(.sha256) file (C(sha256sum) or BSD format).
      - When not given and a C(<backup>.sha256) file exists beside the backup, that file is used.
      - For a directory-format dump the sha256 is that of its C(toc.dat).
    type: str
  expected_tables:
    description:
      - Tables that must be in the dump. A name without a schema means C(public.<name>).
    type: list
    elements: str
    default: []
  trial_restore:
    description:
      - Restore the backup into a throwaway database (C(pg_restore) for archives, C(psql) for plain dumps),
        count its tables and rows, and drop it afterwards whatever happens.
      - Runs only when the file checks found nothing critical. Needs C(psycopg2) and the connection options.
    type: bool
    default: false
  trial_restore_jobs:
    description: Parallel jobs for C(pg_restore -j) in the trial restore (custom and directory formats).
    type: int
    default: 1
  pg_bindir:
    description:
      - Directory holding C(pg_restore) and C(psql) for the trial restore. By default the C(PATH), then the
        newest C(/usr/lib/postgresql/*/bin).
    type: path
  fail_on:
    description:
      - Fail the task when the status reaches this level (findings are returned either way).
    type: str
    choices: [never, warning, critical]
    default: never
extends_documentation_fragment:
  - sre.runbooks.postgres
notes:
  - Checked against the output of C(pg_dump) 15. Archive versions 1.10 to 1.16 (PostgreSQL 9.0 to 17) are read;
    lz4 and zstd compressed data are reported as not verifiable.
seealso:
  - module: sre.runbooks.pg_restore_into
  - name: pg_dump
    description: The PostgreSQL documentation of the dump formats.
    link: https://www.postgresql.org/docs/current/app-pgdump.html
"""

EXAMPLES = r"""
- name: Verify the newest nightly dump deeply
  sre.runbooks.backup_verify:
    path: /var/backups/app/daily
    pattern: "*.sql.gz"
    max_age: 26h
    min_size: 1M
    max_size_drop_pct: 50
    expected_tables: [users, orders]
    fail_on: critical
  register: backup

- name: Check only the header and table of contents of one archive
  sre.runbooks.backup_verify:
    path: /var/backups/app/app-2025-01-01.dump
    depth: quick

- name: Restore the newest custom dump into a throwaway database as a drill
  sre.runbooks.backup_verify:
    path: /var/backups/app
    pattern: "*.dump"
    trial_restore: true
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ vault_pg_password }}"
  register: drill
"""

RETURN = r"""
valid:
  description: True when no check found anything critical.
  returned: always
  type: bool
status:
  description: Worst finding severity, V(ok), V(warning) or V(critical).
  returned: always
  type: str
findings:
  description: What is wrong, as C({severity, code, message}).
  returned: always
  type: list
  elements: dict
  sample:
    - severity: critical
      code: footer_missing
      message: "no '-- PostgreSQL database dump complete' footer: pg_dump did not finish"
path:
  description: The backup that was verified (the newest match when O(path) is a directory).
  returned: always
  type: str
format:
  description: The detected format, V(plain), V(custom), V(directory) or V(tar); null when unknown.
  returned: always
  type: str
compression:
  description: Outer compression (V(none), V(gzip), V(bzip2), V(xz), ...) or, for directory dumps, that of the data files.
  returned: always
  type: str
size_bytes:
  description: Size of the file (of all files for a directory dump).
  returned: always
  type: int
uncompressed_bytes:
  description: Bytes of dump data after decompression (null with O(depth=quick)).
  returned: always
  type: int
mtime:
  description: Modification time of the backup, ISO 8601 UTC.
  returned: always
  type: str
age_s:
  description: Seconds since the modification time.
  returned: always
  type: float
sha256:
  description: sha256 of the file (of C(toc.dat) for a directory dump); null with O(depth=quick) unless a checksum was checked.
  returned: always
  type: str
pg_dump_version:
  description: Version of the pg_dump that wrote the backup.
  returned: always
  type: str
server_version:
  description: Version of the server the backup was taken from.
  returned: always
  type: str
database:
  description: Name of the dumped database (archive header, or C(CREATE DATABASE) in a plain dump).
  returned: always
  type: str
created:
  description: Creation time written in the archive header (custom, directory, tar), server local time.
  returned: always
  type: str
archive_version:
  description: Archive format version (custom, directory, tar).
  returned: always
  type: str
tables:
  description: Schema-qualified names of the tables in the dump.
  returned: always
  type: list
  elements: str
data_blocks:
  description: Number of data blocks (COPY blocks of a plain dump, data blocks or files of an archive) read.
  returned: always
  type: int
checks:
  description: Every check that ran, as C({name, ok, detail}).
  returned: always
  type: list
  elements: dict
history:
  description: The earlier backups matching O(pattern) in the same directory.
  returned: always
  type: dict
  contains:
    count:
      description: How many.
      type: int
    median_size_bytes:
      description: Their median size.
      type: float
trial_restore:
  description: Result of the trial restore; null when not asked.
  returned: always
  type: dict
  contains:
    ok:
      description: Whether the restore succeeded (null when skipped).
      type: bool
    tables:
      description: Tables in the restored database.
      type: int
    rows:
      description: Rows in all those tables.
      type: int
    duration_s:
      description: Seconds the restore and the counting took.
      type: float
    database:
      description: Name of the throwaway database (dropped afterwards).
      type: str
    skipped:
      description: Why the trial restore did not run, when it did not.
      type: str
    error:
      description: Why the restore failed, when it failed.
      type: str
    missing:
      description: Tables of the backup that are not in the restored database (null when it did not run).
      type: list
      elements: str
    cleanup_error:
      description: Why the throwaway database could not be dropped, when it could not (also a warning finding).
      type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._common import (
    FAIL_ON_CHOICES,
    fail_message,
    parse_duration,
    parse_size,
    should_fail,
)
from ansible_collections.sre.runbooks.plugins.module_utils._dump_verify import FORMATS, Verifier, empty_result
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import postgres_argument_spec


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        path=dict(type="path", required=True),
        pattern=dict(type="str", default="*"),
        verified_only=dict(type="bool", default=False),
        format=dict(type="str", choices=list(FORMATS), default="auto"),
        depth=dict(type="str", choices=["full", "quick"], default="full"),
        max_age=dict(type="str"),
        min_size=dict(type="str"),
        max_size_drop_pct=dict(type="float"),
        checksum=dict(type="str"),
        expected_tables=dict(type="list", elements="str", default=[]),
        trial_restore=dict(type="bool", default=False),
        trial_restore_jobs=dict(type="int", default=1),
        pg_bindir=dict(type="path"),
        fail_on=dict(type="str", choices=FAIL_ON_CHOICES, default="never"),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params

    def bad_option(msg):
        module.fail_json(msg=msg, changed=False, **empty_result(p["path"]))

    try:
        max_age = parse_duration(p["max_age"])
        min_size = parse_size(p["min_size"])
    except ValueError as exc:
        bad_option("Checking the options: %s" % exc)
    if p["max_size_drop_pct"] is not None and not 0 <= p["max_size_drop_pct"] <= 100:
        bad_option("Checking the options: max_size_drop_pct must be between 0 and 100")
    trial_restore = None
    if p["trial_restore"]:
        # the restore code (and psycopg2) is imported only for a trial restore: the file checks start sooner
        from ansible_collections.sre.runbooks.plugins.module_utils._restore import (  # pylint: disable=import-outside-toplevel
            HAS_PSYCOPG2,
            trial_restore,
        )
        if not HAS_PSYCOPG2:
            bad_option(missing_required_lib("psycopg2", reason="for trial_restore"))
    if p["trial_restore_jobs"] < 1:
        bad_option("Checking the options: trial_restore_jobs must be at least 1")

    verifier = Verifier(
        p["path"], pattern=p["pattern"], fmt=p["format"], depth=p["depth"], max_age=max_age,
        min_size=min_size, max_size_drop_pct=p["max_size_drop_pct"], checksum=p["checksum"],
        expected_tables=p["expected_tables"], verified_only=p["verified_only"],
    )
    trial = None
    if p["trial_restore"]:
        def trial(dump):
            return trial_restore(p, dump, jobs=p["trial_restore_jobs"], bindir=p["pg_bindir"], check_mode=module.check_mode)
    result = verifier.run(trial=trial)

    if should_fail(result["status"], p["fail_on"]):
        module.fail_json(msg=fail_message("Verifying the backup %s" % result["path"], result["status"], result["findings"]),
                         changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
