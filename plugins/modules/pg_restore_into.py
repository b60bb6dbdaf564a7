#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_restore_into
short_description: Restore a PostgreSQL dump into a new or empty database and count what it holds
version_added: 0.1.0
description:
  - Restores a C(pg_dump) backup (plain SQL, custom, directory or tar; a file may be gzip, bzip2 or xz
    compressed) into the database O(db), which must be new or empty, then counts its tables and rows and
    lists the tables of the dump that are missing from it.
  - The tool follows from the format and the compression, detected from the content, never from the name;
    C(psql -v ON_ERROR_STOP=1 --single-transaction) for plain SQL, C(pg_restore --exit-on-error) for the
    archive formats, with C(-j) O(jobs) where pg_restore can run in parallel (an uncompressed custom file, a
    directory). A compressed file is decompressed by C(gzip), C(bzip2) or C(xz -dc) into the tool's standard
    input, or by the module itself when that program is not installed. Both processes must succeed.
  - This is the same code as the trial restore of M(sre.runbooks.backup_verify).
  - The password reaches C(pg_restore) and C(psql) only through a private C(0600) PGPASSFILE made for the call
    and unlinked as soon as written (read through an inherited descriptor, so a killed run leaves no password on
    disk), never through their arguments or an environment variable.
  - A database it created is dropped again when the restore fails; a database that existed is left as the
    failed restore leaves it.
  - Bad input (a missing file, a dump that cannot be read, a server that cannot be reached, a wrong password)
    fails with one message saying what and why.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description:
      - In check mode the dump is read (format, compression, tables) and the server is asked whether O(db)
        exists and is empty; nothing is created or restored. RV(msg) and RV(command) say what would run.
  diff_mode:
    support: none
    description: No diff; RV(tables), RV(rows) and RV(missing) say what was restored.
options:
  path:
    description:
      - The dump, a file or a directory-format dump (a directory holding C(toc.dat)).
    type: path
    required: true
  db:
    description:
      - The database to restore into. It must not hold any table yet.
    type: str
    required: true
  create:
    description:
      - Create O(db) (C(TEMPLATE template0)) when it does not exist. With V(false) a missing O(db) is an error.
    type: bool
    default: true
  owner:
    description: Owner of the database when the module creates it (by default the login user).
    type: str
  format:
    description:
      - The dump format. V(auto) detects it from the content; any other value is also checked against it.
    type: str
    choices: [auto, plain, custom, directory, tar]
    default: auto
  tables:
    description:
      - Schema-qualified names of the tables the dump holds (RV(sre.runbooks.backup_verify#module:tables)),
        which RV(missing) is checked against. By default they are read from the dump (its table of contents, or
        a full read of a plain dump).
    type: list
    elements: str
  jobs:
    description: Parallel jobs of C(pg_restore -j) (uncompressed custom files and directory dumps only).
    type: int
    default: 1
  no_owner:
    description:
      - Do not restore ownership and privileges (C(pg_restore --no-owner --no-privileges)); objects then belong
        to the login user. Plain SQL dumps carry their C(ALTER ... OWNER) statements in the SQL itself.
    type: bool
    default: false
  fail_on_missing:
    description: Fail when a table of the dump is missing from the restored database (RV(missing) lists them).
    type: bool
    default: true
  pg_bindir:
    description:
      - Directory holding C(pg_restore) and C(psql). By default the C(PATH), then the newest
        C(/usr/lib/postgresql/*/bin).
    type: path
  pg_restore_bin:
    description: The C(pg_restore) program, a path or a name looked up as for O(pg_bindir).
    type: str
  psql_bin:
    description: The C(psql) program, a path or a name looked up as for O(pg_bindir).
    type: str
extends_documentation_fragment:
  - sre.runbooks.postgres
notes:
  - The login user needs C(CREATEDB) to create O(db), and whatever the dump's statements need (usually a
    superuser, for extensions and ownership).
seealso:
  - module: sre.runbooks.backup_verify
  - name: pg_restore
    description: The PostgreSQL documentation of pg_restore.
    link: https://www.postgresql.org/docs/current/app-pgrestore.html
"""

EXAMPLES = r"""
- name: Restore the verified backup beside the live database
  sre.runbooks.pg_restore_into:
    path: "{{ backup.path }}"
    db: app_restore_20250101
    tables: "{{ backup.tables }}"
    jobs: 4
    login_host: /var/run/postgresql
    login_user: postgres
  register: restored

- name: Restore a gzip plain dump into a scratch database, as the app's role
  sre.runbooks.pg_restore_into:
    path: /var/backups/app/app-2025-01-01.sql.gz
    db: scratch
    owner: app
    login_host: db.internal
    login_user: admin
    login_password: "{{ vault_pg_admin_password }}"
"""

RETURN = r"""
msg:
  description: What was done (or would be done in check mode), or why it failed.
  returned: always
  type: str
  sample: "restored /var/backups/app.dump (custom) into app_restore with pg_restore -j 4: 12 tables, 30512 rows in 4.2s"
database:
  description: The database restored into.
  returned: always
  type: str
created:
  description: Whether the module created the database (in check mode, whether it would).
  returned: always
  type: bool
format:
  description: Format of the dump, V(plain), V(custom), V(directory) or V(tar).
  returned: always
  type: str
compression:
  description: Compression of the dump file (for a directory dump, that of its data files).
  returned: always
  type: str
command:
  description: How it was (or would be) restored, for example V(gzip -dc | psql) or V(pg_restore -j 4).
  returned: always
  type: str
tables:
  description: Number of tables in the restored database (null when nothing was restored).
  returned: always
  type: int
rows:
  description: Rows in all those tables.
  returned: always
  type: int
missing:
  description: Tables of the dump that are not in the restored database.
  returned: always
  type: list
  elements: str
skipped_extensions:
  description:
    - Extensions of the dump left out of the restore because the login is not a superuser and they are not trusted
      (as C(pg_stat_statements) on a hosted server, where the provider installs it); empty for a superuser.
    - Only for pg_restore formats read from a file; the restored copy lacks them.
  returned: always
  type: list
  elements: str
table_rows:
  description: Every table of the restored database with its row count, as C({name, rows}).
  returned: always
  type: list
  elements: dict
seconds:
  description: Seconds the restore and the counting took.
  returned: always
  type: float
queries:
  description: The SQL statements the module ran.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._dump_verify import FORMATS, Verifier
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import (
    PgConnectError,
    connect,
    postgres_argument_spec,
    scrub,
    secrets_of,
)
from ansible_collections.sre.runbooks.plugins.module_utils._restore import (
    APP_NAME,
    HAS_PSYCOPG2,
    PG_ERRORS,
    RestoreError,
    admin_params,
    conninfo,
    count_tables,
    create_database,
    database_exists,
    db_params,
    drop_database,
    plan_summary,
    resolve_tools,
    restore_into,
    restore_plan,
)


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        path=dict(type="path", required=True),
        db=dict(type="str", required=True),
        create=dict(type="bool", default=True),
        owner=dict(type="str"),
        format=dict(type="str", choices=list(FORMATS), default="auto"),
        tables=dict(type="list", elements="str"),
        jobs=dict(type="int", default=1),
        no_owner=dict(type="bool", default=False),
        fail_on_missing=dict(type="bool", default=True),
        pg_bindir=dict(type="path"),
        pg_restore_bin=dict(type="str"),
        psql_bin=dict(type="str"),
    )
    return spec


class Job:
    """One restore: read the dump, check the target, restore, count. fail() ends the module."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.result = {"changed": False, "msg": "", "database": self.p["db"], "created": False, "format": None,
                       "compression": None, "command": None, "tables": None, "rows": None, "missing": [],
                       "table_rows": [], "seconds": None, "queries": [], "skipped_extensions": []}
        self.what = "Restoring %s into %s" % (self.p["path"], self.p["db"])

    def fail(self, message):
        self.result["msg"] = scrub("%s: %s" % (self.what, message), secrets_of(self.p))
        self.module.fail_json(**self.result)

    def read_dump(self):
        """Format, compression and tables of the dump (its header and TOC; a plain dump is read to the end
        when the tables are not given)."""
        p = self.p
        path = p["path"]
        if not os.path.exists(path):
            self.fail("the dump does not exist")
        if os.path.isdir(path) and not os.path.exists(os.path.join(path, "toc.dat")):
            self.fail("the directory holds no toc.dat: not a directory-format dump")
        dump = Verifier(path, fmt=p["format"], depth="quick").run()
        if dump["valid"] and dump["format"] == "plain" and p["tables"] is None:
            dump = Verifier(path, fmt=p["format"], depth="full").run()
        if not dump["valid"]:
            self.fail("the dump cannot be restored: %s" % "; ".join(
                "%s: %s" % (f["code"], f["message"]) for f in dump["findings"] if f["severity"] == "critical"))
        self.result["format"] = dump["format"]
        self.result["compression"] = dump["compression"]
        return dump, (p["tables"] if p["tables"] is not None else dump["tables"])

    def check_target(self, admin):
        """Whether db exists (then it must hold no table) - fails otherwise."""
        p, queries = self.p, self.result["queries"]
        if not database_exists(admin, p["db"], queries):
            if not p["create"]:
                self.fail("the database does not exist (create is false)")
            return False
        conn = connect(db_params(p, p["db"]), application_name=APP_NAME)
        try:
            found = count_tables(conn, queries)
        finally:
            conn.close()
        if found:
            self.fail("the database is not empty (%d table(s), for example %s): this module restores only into a "
                      "new or empty database" % (len(found), found[0][0]))
        return True

    def run(self):
        p, r = self.p, self.result
        dump, tables = self.read_dump()
        tools = resolve_tools(p["pg_bindir"], p["pg_restore_bin"], p["psql_bin"])
        try:
            decompress = dump["compression"] if dump["format"] != "directory" else "none"
            plan = restore_plan(dump["path"], dump["format"], dump["compression"], conninfo(p, p["db"])[0], jobs=p["jobs"],
                                no_owner=p["no_owner"], tools=tools, inflate=not tools.get(decompress, True))
        except (RestoreError, PgConnectError) as exc:
            self.fail(str(exc))
        r["command"] = plan_summary(plan)
        try:
            admin = connect(admin_params(p), application_name=APP_NAME, autocommit=True)
        except PgConnectError as exc:
            self.fail("cannot connect to the server: %s" % exc)
        try:
            self.restore(admin, dump, tables)
        finally:
            admin.close()

    def restore(self, admin, dump, tables):
        p, r = self.p, self.result
        created = False
        try:
            exists = self.check_target(admin)
            r["created"] = not exists
            if self.module.check_mode:
                r["changed"] = True
                r["msg"] = "would %srestore %s (%s) into %s with %s" % (
                    "create the database and " if not exists else "", dump["path"], self.described(), p["db"], r["command"])
                return
            if not exists:
                create_database(admin, p["db"], p["owner"], r["queries"])
                created = True
                r["changed"] = True
            got = restore_into(p, p["db"], dump["path"], dump["format"], dump["compression"], tables, jobs=p["jobs"],
                               no_owner=p["no_owner"], tools=resolve_tools(p["pg_bindir"], p["pg_restore_bin"], p["psql_bin"]),
                               queries=r["queries"])
        except RestoreError as exc:
            self.give_up(admin, created, str(exc))
        except PgConnectError as exc:
            self.give_up(admin, created, "cannot connect to the server: %s" % exc)
        except PG_ERRORS as exc:
            self.give_up(admin, created, str(exc).strip())
        r["changed"] = True
        r.update((k, got[k]) for k in ("tables", "rows", "missing", "seconds", "table_rows", "command", "skipped_extensions"))
        r["msg"] = "restored %s (%s) into %s with %s: %d tables, %d rows in %.1fs" % (
            dump["path"], self.described(), p["db"], got["command"], got["tables"], got["rows"], got["seconds"])
        if got["skipped_extensions"]:
            r["msg"] += ("; extension(s) this login may not create were left out (install them as a superuser or ask the "
                         "provider): %s" % ", ".join(got["skipped_extensions"]))
        if got["missing"]:
            r["msg"] += "; missing table(s) of the dump: %s" % ", ".join(got["missing"][:10])
            if p["fail_on_missing"]:
                self.fail("tables of the dump missing after the restore: %s" % ", ".join(got["missing"][:10]))

    def give_up(self, admin, created, message):
        if created:
            try:
                drop_database(admin, self.p["db"], self.result["queries"])
                message += " (the database it created was dropped again)"
                self.result["created"] = False
            except PG_ERRORS as exc:
                message += " (and the database it created could not be dropped: %s)" % str(exc).strip()
        else:
            self.result["changed"] = self.result["changed"] or not self.module.check_mode
        self.fail(message)

    def described(self):
        r = self.result
        return r["format"] if r["compression"] in (None, "none") or r["format"] == "directory" else "%s, %s" % (
            r["format"], r["compression"])


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    job = Job(module)
    if not HAS_PSYCOPG2:
        job.fail(missing_required_lib("psycopg2"))
    if module.params["jobs"] < 1:
        job.fail("Checking the options: jobs must be at least 1")
    job.run()
    module.exit_json(**job.result)


if __name__ == "__main__":
    main()
