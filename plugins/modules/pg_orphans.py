#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_orphans
short_description: Find, save and delete orphan rows (child rows whose parent row is gone) in PostgreSQL
version_added: 0.1.0
description:
  - For each configured parent/child pair, counts the child rows whose reference column is not null and
    matches no row of the parent table (orphans), with a sample of the dangling values.
  - With O(state=restored), puts the rows a delete saved (O(restore_from)) back, in one transaction (a way back when
    the orphans should not have gone). Rows already there are skipped; with a superuser login the foreign keys are
    not checked (C(session_replication_role=replica)), as the rows were orphans when they were saved.
  - With O(state=absent), deletes the orphans in one transaction. The orphan rows are locked
    (C(SELECT ... FOR UPDATE)), written as JSON to O(save_path) (fsynced, atomically renamed) and only then
    deleted by their physical row id while they are still orphans; the deleted count must equal the saved
    count or everything is rolled back. Relations are handled in the given order, and passes repeat until no
    orphans are left, so rows orphaned by an earlier delete in the same run (items of an orphan category) are
    saved and deleted too.
  - Table and column names must be plain identifiers (optionally C(schema.table)); they are checked against
    the catalog and quoted with C(psycopg2.sql), never formatted into SQL.
  - An unreachable server fails the task (nothing can be counted); the failure carries every return key, with
    RV(error_category) and RV(error) saying why.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description:
      - In check mode the orphans are counted and the result says whether a delete would happen; nothing is
        written or deleted. With O(state=restored) the rows are inserted and rolled back, so RV(restored) is
        what a run would put back.
  diff_mode:
    support: none
    description:
      - No diff is returned; RV(relations) and RV(deleted) say what changed.
options:
  relations:
    description:
      - Parent/child pairs to check, in the order orphans are deleted (upstream pairs first).
      - Each is a dict with C(child) (table), C(column) (the child's reference column), C(parent) (table) and
        C(parent_column) (default C(id)).
    type: list
    elements: dict
    required: true
  state:
    description:
      - V(present) only reports the orphans; V(absent) deletes them after saving them to O(save_path); V(restored)
        puts the rows saved in O(restore_from) back.
    type: str
    choices: [present, absent, restored]
    default: present
  restore_from:
    description:
      - With O(state=restored), the JSON file a delete saved (O(save_path) of that run). It must be of this
        database, and every relation in it one of O(relations). Required with O(state=restored).
    type: path
  save_path:
    description:
      - JSON file the orphan rows are written to before they are deleted. Required with O(state=absent).
      - Must not exist; its directory must. Written with mode C(0600).
    type: path
  sample_size:
    description:
      - Dangling values shown per relation.
    type: int
    default: 10
  read_write:
    description:
      - Start the delete transaction with C(SET TRANSACTION READ WRITE), so orphans can be deleted from a
        database whose writes were stopped with C(default_transaction_read_only).
    type: bool
    default: true
  lock_timeout:
    description:
      - Seconds to wait for row locks before giving up (C(lock_timeout)); 0 waits forever.
    type: int
    default: 10
extends_documentation_fragment:
  - sre.runbooks.postgres
notes:
  - Rows referenced by a foreign key of another table cannot be deleted while referenced; the module then
    rolls back and names the constraint. Add the referencing pair before it in O(relations).
"""

EXAMPLES = r"""
- name: Count orphan categories and items
  sre.runbooks.pg_orphans:
    login_host: 127.0.0.1
    login_user: app
    login_password: "{{ vault_db_password }}"
    login_db: saasresto
    relations:
      - {child: categories, column: menu_id, parent: menus}
      - {child: items, column: category_id, parent: categories}
  register: orphans

- name: Put back the rows a delete saved (the way back)
  sre.runbooks.pg_orphans:
    dsn: "{{ vault_database_url }}"
    relations:
      - {child: items, column: category_id, parent: categories, parent_column: id}
    state: restored
    restore_from: /var/lib/sre-runbooks/orphans-20250101T000000Z.json

- name: Save the orphans to a file, then delete them
  sre.runbooks.pg_orphans:
    dsn: "{{ vault_database_url }}"
    relations:
      - {child: items, column: category_id, parent: categories, parent_column: id}
    state: absent
    save_path: /var/lib/sre-runbooks/orphans-20250101T000000Z.json
"""

RETURN = r"""
relations:
  description: One entry per relation, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    child:
      description: Child table.
      type: str
    column:
      description: Child reference column.
      type: str
    parent:
      description: Parent table.
      type: str
    parent_column:
      description: Parent key column.
      type: str
    orphans:
      description: Orphan rows found before any delete.
      type: int
    sample:
      description: Some of the dangling values (as text).
      type: list
      elements: str
    deleted:
      description: Rows deleted (0 in check mode or with O(state=present)).
      type: int
    restored:
      description: Rows put back into the child table (only with O(state=restored)).
      type: int
  sample:
    - {child: items, column: category_id, parent: categories, parent_column: id, orphans: 2, sample: ["404"], deleted: 2}
total_orphans:
  description: Orphan rows over all relations, before any delete.
  returned: always
  type: int
deleted:
  description: Rows deleted over all relations.
  returned: always
  type: int
saved_path:
  description: The file the deleted rows were saved to, or null when nothing was saved.
  returned: always
  type: str
restored:
  description: Rows put back over all relations (O(state=restored); in check mode, the rows a run would put back).
  returned: always
  type: int
already_present:
  description: Saved rows that were already in their table and were skipped (O(state=restored)).
  returned: always
  type: int
passes:
  description: Delete passes run (a pass deletes what earlier passes orphaned).
  returned: always
  type: int
findings:
  description:
    - One finding per relation with orphans; C(unreachable) (or C(saturated)) when the server cannot be reached.
  returned: always
  type: list
  elements: dict
  sample: [{severity: warning, code: orphans, message: "items.category_id: 2 rows reference no categories.id"}]
queries:
  description: The SQL statements run (identifiers only, no values).
  returned: always
  type: list
  elements: str
status:
  description:
    - V(ok), V(warning) (orphans found), V(critical) (the server refuses new connections) or V(unreachable).
  returned: always
  type: str
error_category:
  description:
    - Why the server was unreachable, V(dns), V(refused), V(timeout), V(auth), V(ssl), V(too_many_connections) or
      V(other); null when reachable.
  returned: always
  type: str
error:
  description: The connection error (never with the password); null when reachable.
  returned: always
  type: str
"""

import datetime
import json
import os

from ansible_collections.sre.runbooks.plugins.module_utils._orphans import (
    columns_sql, count_sql, delete_sql, fsync_dir, insertable_columns_sql, lock_rows_sql, normalize_relations,
    quoted_name, restore_sql, saved_document, saved_relations, unique_key_sql, write_temp,
)
from ansible_collections.sre.runbooks.plugins.module_utils._pgmodule import PgJob, PgJobError, PgModule


def argument_spec():
    """The options of the module; PgModule merges them with postgres_argument_spec() (the connection)."""
    return dict(
        relations=dict(type="list", elements="dict", required=True),
        state=dict(type="str", choices=["present", "absent", "restored"], default="present"),
        save_path=dict(type="path"),
        restore_from=dict(type="path"),
        sample_size=dict(type="int", default=10),
        read_write=dict(type="bool", default=True),
        lock_timeout=dict(type="int", default=10),
    )


def empty_result():
    return dict(relations=[], total_orphans=0, deleted=0, saved_path=None, restored=0, already_present=0, passes=0,
                status="ok", findings=[], queries=[], error_category=None, error=None)


def _key(rel):
    return (rel["child"], rel["column"], rel["parent"], rel["parent_column"])


class Orphans(PgJob):
    """Count the orphans of every relation; with state=absent save them, then delete them, in one transaction."""

    application_name = "sre.runbooks.pg_orphans"
    autocommit = False
    unreachable_fails = True  # nothing to count without the database: a failed task, as before

    def __init__(self, pg, relations, restore_doc=None):
        super(Orphans, self).__init__(pg)
        self.relations = relations
        self.deleting = self.params["state"] == "absent"
        self.restoring = self.params["state"] == "restored"
        self.restore_doc = restore_doc
        self.what = ("Deleting orphans" if self.deleting else
                     "Putting back the rows saved in %s" % self.params["restore_from"] if self.restoring else "Counting orphans")

    def steps(self):
        res = self.result
        self.check_catalog()
        if self.restoring:
            self.conn.rollback()  # SET TRANSACTION READ WRITE must come first in its transaction (a read-only database)
        restored = self.restore_all() if self.restoring else {}
        res["relations"] = self.count(self.params["sample_size"])  # after a restore: the orphans are back
        self.conn.rollback()
        for rel in res["relations"] if self.restoring else []:
            rel["restored"] = restored.get(_key(rel), 0)
        res["total_orphans"] = sum(r["orphans"] for r in res["relations"])
        for rel in res["relations"]:
            if rel["orphans"]:
                self.findings.add("warning", "orphans", "%s.%s: %d rows reference no %s.%s" % (
                    rel["child"], rel["column"], rel["orphans"], rel["parent"], rel["parent_column"]))
        if self.deleting and res["total_orphans"] and not self.check_mode:
            self.delete_all()

    def changed(self):
        if self.restoring:
            return self.result["restored"] > 0
        if not self.deleting:
            return False
        if self.check_mode:
            return self.result["total_orphans"] > 0
        return self.result["deleted"] > 0

    def failure_message(self, exc):
        if self.restoring:
            # the server's DETAIL ("Failing row contains (...)") would print a saved row, secrets and all: only the
            # primary message and the constraint are said
            diag = getattr(exc, "diag", None)
            if diag is not None and getattr(diag, "message_primary", None):
                said = diag.message_primary + (" (constraint %s)" % diag.constraint_name if diag.constraint_name else "")
                text = "%s: %s" % (self.what, said)
            else:
                text = super(Orphans, self).failure_message(exc)
            hint = (" (nothing was put back: rolled back; the rows were orphans when they were saved, so a foreign key"
                    " refuses them unless the login is a superuser)" if "foreign key" in text else
                    " (nothing was put back: rolled back)")
            return text + hint
        save_path = self.params["save_path"]
        saved = (" (the rows listed in %s were NOT deleted: rolled back)" % save_path
                 if save_path and os.path.exists(save_path) else "")
        return super(Orphans, self).failure_message(exc) + saved

    def check_catalog(self):
        for index, rel in enumerate(self.relations):
            for table, column in ((rel["child"], rel["column"]), (rel["parent"], rel["parent_column"])):
                columns = [row[0] for row in self.sql(columns_sql(), (quoted_name(table),))]
                if not columns:
                    raise PgJobError("relations[%d]: table %s does not exist" % (index, table),
                                     what="Checking the relations option")
                if column not in columns:
                    raise PgJobError("relations[%d]: table %s has no column %s" % (index, table, column),
                                     what="Checking the relations option")

    def restore_all(self):
        """Insert the saved rows back, parents first (the order they were saved in), in one transaction; in check
        mode the transaction is rolled back, so the counts are what a run would put back."""
        p, res = self.params, self.result
        try:
            saved = saved_relations(self.restore_doc, self.conn.get_dsn_parameters().get("dbname"), self.relations)
        except ValueError as exc:
            raise PgJobError("%s: %s" % (p["restore_from"], exc), what="Checking the file to put back")
        restored, present = {}, {}
        with self.conn.cursor() as cur:
            if p["read_write"]:
                self.sql("SET TRANSACTION READ WRITE", cursor=cur)
            self.sql("SELECT set_config('lock_timeout', %s, true)", ("%ds" % p["lock_timeout"],), cursor=cur)
            if self.sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", cursor=cur)[0][0]:
                self.sql("SET LOCAL session_replication_role = replica", cursor=cur)
            for rel, rows in saved:
                if not rows:
                    continue
                if not self.sql(unique_key_sql(), (quoted_name(rel["child"]),), cursor=cur)[0][0]:
                    raise PgJobError("table %s has no primary or unique key, so rows already there cannot be told from "
                                     "saved ones: put them back by hand from %s" % (rel["child"], p["restore_from"]),
                                     what="Checking the tables to put back")
                columns = [row[0] for row in self.sql(insertable_columns_sql(), (quoted_name(rel["child"]),), cursor=cur)]
                self.sql(restore_sql(rel, columns), (json.dumps(rows),), cursor=cur)
                restored[_key(rel)] = restored.get(_key(rel), 0) + cur.rowcount
                present[_key(rel)] = present.get(_key(rel), 0) + len(rows) - cur.rowcount
        if self.check_mode:
            self.conn.rollback()
        else:
            self.conn.commit()
        res["restored"] = sum(restored.values())
        res["already_present"] = sum(present.values())
        return restored

    def count(self, sample_size):
        out = []
        for rel in self.relations:
            count, sample = self.sql(count_sql(rel), (sample_size,))[0]
            out.append(dict(rel, orphans=int(count), sample=list(sample or []), deleted=0))
        return out

    def delete_all(self):
        p, res = self.params, self.result
        with self.conn.cursor() as cur:
            if p["read_write"]:
                self.sql("SET TRANSACTION READ WRITE", cursor=cur)
            self.sql("SELECT set_config('lock_timeout', %s, true)", ("%ds" % p["lock_timeout"],), cursor=cur)
            deleted, res["passes"] = self.delete(cur, p["save_path"], self.conn.get_dsn_parameters().get("dbname"))
        self.conn.commit()
        res["saved_path"] = p["save_path"]
        for rel in res["relations"]:
            rel["deleted"] = deleted.get(_key(rel), 0)
        res["deleted"] = sum(deleted.values())

    def save(self, save_path, document):
        """Write the document to save_path: a fsynced temporary file, atomically renamed, mode 0600."""
        text = json.dumps(document, indent=1, sort_keys=True) + "\n"
        try:
            tmp = write_temp(save_path, text)
            self.pg.module.atomic_move(tmp, save_path)
            os.chmod(save_path, 0o600)
            fsync_dir(save_path)
        except OSError as exc:
            raise PgJobError("saving the orphans to %s: %s" % (save_path, exc.strerror or exc))

    def delete(self, cur, save_path, database):
        """Lock every orphan (parents first, so rows under an orphan parent are orphans too), save them all,
        then delete children first. Passes repeat until nothing is left. Returns (deleted per relation, passes)."""
        saved = []
        deleted = {}
        passes = 0
        while passes <= len(self.relations):
            chosen = {}  # table -> ctids chosen for deletion in this pass
            found = []
            for rel in self.relations:
                rows = self.sql(lock_rows_sql(rel), (chosen.get(rel["parent"], []),), cursor=cur)
                if rows:
                    found.append((rel, rows, list(chosen.get(rel["parent"], []))))
                    chosen.setdefault(rel["child"], []).extend(row[0] for row in rows)
            if not found:
                return deleted, passes
            passes += 1
            saved.extend((rel, [row[1] for row in rows]) for rel, rows, _gone in found)
            stamp = datetime.datetime.now(datetime.timezone.utc).isoformat()
            self.save(save_path, saved_document(database, stamp, saved))
            for rel, rows, gone in reversed(found):
                self.sql(delete_sql(rel), ([row[0] for row in rows], gone), cursor=cur)
                if cur.rowcount != len(rows):
                    raise PgJobError("%s: %d orphan rows were saved and locked but %d were deleted" % (
                        rel["child"], len(rows), cur.rowcount))
                deleted[_key(rel)] = deleted.get(_key(rel), 0) + cur.rowcount
        raise PgJobError("orphans were still found after %d delete passes (a reference cycle?)" % passes)


def main():
    pg = PgModule(argument_spec(), empty_result, record_values=False, supports_check_mode=True,
                  required_if=[("state", "absent", ("save_path",)), ("state", "restored", ("restore_from",))])
    p = pg.params
    try:
        relations = normalize_relations(p["relations"])
    except ValueError as exc:
        pg.fail("Checking the relations option: %s" % exc)
    if not relations:
        pg.fail("Checking the relations option: at least one relation is needed")
    if p["sample_size"] < 0 or p["lock_timeout"] < 0:
        pg.fail("Checking the options: sample_size and lock_timeout must not be negative")
    save_path = p["save_path"]
    if p["state"] == "absent":
        if os.path.lexists(save_path):
            pg.fail("Saving the orphans: %s already exists, refusing to overwrite it" % save_path)
        if not os.path.isdir(os.path.dirname(os.path.abspath(save_path))):
            pg.fail("Saving the orphans: directory %s does not exist" % os.path.dirname(save_path))
    restore_doc = None
    if p["state"] == "restored":
        try:
            with open(p["restore_from"]) as handle:
                restore_doc = json.load(handle)
        except (IOError, OSError) as exc:
            pg.fail("Reading the file to put back: %s: %s" % (p["restore_from"], exc.strerror or exc))
        except ValueError as exc:
            pg.fail("Reading the file to put back: %s is not JSON (%s)" % (p["restore_from"], exc))
    pg.run(Orphans(pg, relations, restore_doc))


if __name__ == "__main__":
    main()
