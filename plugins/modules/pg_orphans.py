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
  - With O(state=absent), deletes the orphans in one transaction. The orphan rows are locked
    (C(SELECT ... FOR UPDATE)), written as JSON to O(save_path) (fsynced, atomically renamed) and only then
    deleted by their physical row id while they are still orphans; the deleted count must equal the saved
    count or everything is rolled back. Relations are handled in the given order, and passes repeat until no
    orphans are left, so rows orphaned by an earlier delete in the same run (items of an orphan category) are
    saved and deleted too.
  - Table and column names must be plain identifiers (optionally C(schema.table)); they are checked against
    the catalog and quoted with C(psycopg2.sql), never formatted into SQL.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description:
      - In check mode the orphans are counted and the result says whether a delete would happen; nothing is
        written or deleted.
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
      - V(present) only reports the orphans; V(absent) deletes them after saving them to O(save_path).
    type: str
    choices: [present, absent]
    default: present
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
passes:
  description: Delete passes run (a pass deletes what earlier passes orphaned).
  returned: always
  type: int
findings:
  description: One finding per relation with orphans.
  returned: always
  type: list
  elements: dict
  sample: [{severity: warning, code: orphans, message: "items.category_id: 2 rows reference no categories.id"}]
queries:
  description: The SQL statements run (identifiers only, no values).
  returned: always
  type: list
  elements: str
"""

import datetime
import json
import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._common import Findings
from ansible_collections.sre.runbooks.plugins.module_utils._orphans import (
    columns_sql, count_sql, delete_sql, fsync_dir, lock_rows_sql, normalize_relations, quoted_name,
    saved_document, write_temp,
)
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import (
    HAS_PSYCOPG2, PgConnectError, connect, postgres_argument_spec,
)

try:
    import psycopg2
except ImportError:
    psycopg2 = None


def argument_spec():
    spec = postgres_argument_spec()
    spec.update(
        relations=dict(type="list", elements="dict", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        save_path=dict(type="path"),
        sample_size=dict(type="int", default=10),
        read_write=dict(type="bool", default=True),
        lock_timeout=dict(type="int", default=10),
    )
    return spec


class Orphans(object):
    def __init__(self, module, conn, relations):
        self.module = module
        self.conn = conn
        self.relations = relations
        self.queries = []

    def _run(self, cur, query, args=None):
        self.queries.append(query.as_string(cur) if hasattr(query, "as_string") else query)
        cur.execute(query, args)

    def check_catalog(self, cur):
        for rel in self.relations:
            for table, column in ((rel["child"], rel["column"]), (rel["parent"], rel["parent_column"])):
                self._run(cur, columns_sql(), (quoted_name(table),))
                columns = [row[0] for row in cur.fetchall()]
                if not columns:
                    self.module.fail_json(msg="checking orphans of %s: table %s does not exist" % (rel["child"], table))
                if column not in columns:
                    self.module.fail_json(msg="checking orphans of %s: table %s has no column %s" % (
                        rel["child"], table, column))

    def count(self, cur, sample_size):
        out = []
        for rel in self.relations:
            self._run(cur, count_sql(rel), (sample_size,))
            count, sample = cur.fetchone()
            out.append(dict(rel, orphans=int(count), sample=list(sample or []), deleted=0))
        return out

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
                self._run(cur, lock_rows_sql(rel), (chosen.get(rel["parent"], []),))
                rows = cur.fetchall()
                if rows:
                    found.append((rel, rows, list(chosen.get(rel["parent"], []))))
                    chosen.setdefault(rel["child"], []).extend(row[0] for row in rows)
            if not found:
                return deleted, passes
            passes += 1
            saved.extend((rel, [row[1] for row in rows]) for rel, rows, _gone in found)
            stamp = datetime.datetime.now(datetime.timezone.utc).isoformat()
            text = json.dumps(saved_document(database, stamp, saved), indent=1, sort_keys=True) + "\n"
            tmp = write_temp(save_path, text)
            self.module.atomic_move(tmp, save_path)
            os.chmod(save_path, 0o600)
            fsync_dir(save_path)
            for rel, rows, gone in reversed(found):
                self._run(cur, delete_sql(rel), ([row[0] for row in rows], gone))
                if cur.rowcount != len(rows):
                    raise RuntimeError("%s: %d orphan rows were saved and locked but %d were deleted" % (
                        rel["child"], len(rows), cur.rowcount))
                key = (rel["child"], rel["column"], rel["parent"], rel["parent_column"])
                deleted[key] = deleted.get(key, 0) + cur.rowcount
        raise RuntimeError("orphans were still found after %d delete passes (a reference cycle?)" % passes)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("state", "absent", ("save_path",))])
    p = module.params
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"))
    try:
        relations = normalize_relations(p["relations"])
    except ValueError as exc:
        module.fail_json(msg="checking the relations option: %s" % exc)
    if not relations:
        module.fail_json(msg="checking the relations option: at least one relation is needed")
    if p["sample_size"] < 0 or p["lock_timeout"] < 0:
        module.fail_json(msg="checking the options: sample_size and lock_timeout must not be negative")
    save_path = p["save_path"]
    if p["state"] == "absent":
        if os.path.lexists(save_path):
            module.fail_json(msg="saving the orphans: %s already exists, refusing to overwrite it" % save_path)
        if not os.path.isdir(os.path.dirname(os.path.abspath(save_path))):
            module.fail_json(msg="saving the orphans: directory %s does not exist" % os.path.dirname(save_path))

    try:
        conn = connect(p, application_name="sre.runbooks.pg_orphans")
    except PgConnectError as exc:
        module.fail_json(msg="connecting to PostgreSQL: %s" % exc, error_category=exc.category)

    worker = Orphans(module, conn, relations)
    result = dict(changed=False, relations=[], total_orphans=0, deleted=0, saved_path=None, passes=0,
                  findings=[], queries=worker.queries)
    try:
        with conn.cursor() as cur:
            worker.check_catalog(cur)
            result["relations"] = worker.count(cur, p["sample_size"])
        conn.rollback()
        result["total_orphans"] = sum(r["orphans"] for r in result["relations"])
        findings = Findings()
        for rel in result["relations"]:
            if rel["orphans"]:
                findings.add("warning", "orphans", "%s.%s: %d rows reference no %s.%s" % (
                    rel["child"], rel["column"], rel["orphans"], rel["parent"], rel["parent_column"]))
        result["findings"] = findings.as_list()

        if p["state"] == "absent" and result["total_orphans"] and not module.check_mode:
            with conn.cursor() as cur:
                if p["read_write"]:
                    worker._run(cur, "SET TRANSACTION READ WRITE")
                worker._run(cur, "SELECT set_config('lock_timeout', %s, true)", ("%ds" % p["lock_timeout"],))
                cur.fetchall()
                deleted, result["passes"] = worker.delete(cur, save_path, conn.get_dsn_parameters().get("dbname"))
            conn.commit()
            result["saved_path"] = save_path
            for rel in result["relations"]:
                rel["deleted"] = deleted.get((rel["child"], rel["column"], rel["parent"], rel["parent_column"]), 0)
            result["deleted"] = sum(deleted.values())
            result["changed"] = result["deleted"] > 0
        elif p["state"] == "absent" and result["total_orphans"]:
            result["changed"] = True
    except (psycopg2.Error, RuntimeError, OSError) as exc:
        conn.rollback()
        saved = (" (the rows listed in %s were NOT deleted: rolled back)" % save_path
                 if save_path and os.path.exists(save_path) else "")
        module.fail_json(msg="%s orphans: %s%s" % ("deleting" if p["state"] == "absent" else "counting",
                                                   str(exc).strip(), saved), queries=worker.queries)
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
