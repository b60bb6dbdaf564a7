# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: orphan rows (child rows whose parent is gone) for pg_orphans.

Identifiers are validated by the collection's one rule (_identifiers: plain or double-quoted names, optionally
schema.table) and composed with psycopg2.sql, never by string formatting. Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

try:
    from psycopg2 import sql as pgsql
except ImportError:
    pgsql = None

from ansible_collections.sre.runbooks.plugins.module_utils._identifiers import IdentifierError, split_identifier


def split_table(name):
    """'items' -> ('items',), 'shop.items' -> ('shop', 'items'), '"Category"' -> ('Category',); ValueError
    (IdentifierError) for anything else."""
    try:
        return split_identifier(name if isinstance(name, str) else str(name), 2)
    except IdentifierError as exc:
        raise IdentifierError("invalid table name: %s" % exc)


def check_column(name):
    """The column's name, unquoted ('"menuId"' -> 'menuId'); ValueError (IdentifierError) for anything else."""
    try:
        return split_identifier(name if isinstance(name, str) else str(name), 1)[0]
    except IdentifierError as exc:
        raise IdentifierError("invalid column name: %s" % exc)


def normalize_relations(relations):
    """Validate the relations option; return [{child, column, parent, parent_column}] with defaults."""
    out = []
    for index, rel in enumerate(relations or []):
        if not isinstance(rel, dict):
            raise ValueError("relations[%d] must be a dict with child, column, parent (and parent_column)" % index)
        unknown = sorted(set(rel) - {"child", "column", "parent", "parent_column"})
        if unknown:
            raise ValueError("relations[%d]: unknown keys %s" % (index, ", ".join(unknown)))
        for key in ("child", "column", "parent"):
            if not rel.get(key):
                raise ValueError("relations[%d]: %s is required" % (index, key))
        split_table(rel["child"])
        split_table(rel["parent"])
        # columns are kept unquoted ("menuId" -> menuId) for psycopg2.sql.Identifier and the catalog check
        out.append({"child": str(rel["child"]), "column": check_column(rel["column"]), "parent": str(rel["parent"]),
                    "parent_column": check_column(rel.get("parent_column") or "id")})
    return out


def quoted_name(name):
    """The regclass text of a validated table name ('"shop"."items"'), for to_regclass()."""
    return ".".join('"%s"' % part for part in split_table(name))


def _orphan_where(rel, excluding=False):
    """Orphan predicate of one relation; with excluding, parent rows whose ctid is in the next array
    parameter count as gone (they are about to be deleted as orphans themselves)."""
    text = "c.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{pcol} = c.{col}%s)" % (
        " AND NOT (p.ctid = ANY(%s::tid[]))" if excluding else "")
    return pgsql.SQL(text).format(
        col=pgsql.Identifier(rel["column"]), parent=pgsql.Identifier(*split_table(rel["parent"])),
        pcol=pgsql.Identifier(rel["parent_column"]))


def count_sql(rel):
    """count, and a sample of the dangling values (the child column), of the orphans of one relation."""
    return pgsql.SQL(
        "SELECT count(*), (array_agg(DISTINCT c.{col}::text))[1:%s] FROM {child} c WHERE {where}").format(
        col=pgsql.Identifier(rel["column"]), child=pgsql.Identifier(*split_table(rel["child"])),
        where=_orphan_where(rel))


def lock_rows_sql(rel):
    """The orphan rows of one relation, locked: (ctid text, row as JSON text). Parameter: parent ctids
    already chosen for deletion (those parents count as gone)."""
    return pgsql.SQL(
        "SELECT c.ctid::text, row_to_json(c)::text FROM {child} c WHERE {where} ORDER BY c.ctid FOR UPDATE OF c").format(
        child=pgsql.Identifier(*split_table(rel["child"])), where=_orphan_where(rel, excluding=True))


def delete_sql(rel):
    """Delete exactly the locked rows (by ctid), and only while they are still orphans.
    Parameters: the rows' ctids, the parent ctids chosen for deletion."""
    return pgsql.SQL("DELETE FROM {child} c WHERE c.ctid = ANY(%s::tid[]) AND {where}").format(
        child=pgsql.Identifier(*split_table(rel["child"])), where=_orphan_where(rel, excluding=True))


def restore_sql(rel, columns):
    """Put saved rows back into the child table, as they were (identity values kept, rows already there skipped by
    the table's key). Only the given columns are written (the table's own, not generated). Parameter: the rows as a
    JSON array (row_to_json of each, as saved)."""
    child = pgsql.Identifier(*split_table(rel["child"]))
    cols = pgsql.SQL(", ").join(pgsql.Identifier(c) for c in columns)
    return pgsql.SQL("INSERT INTO {child} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM "
                     "json_populate_recordset(NULL::{child}, %s::json) ON CONFLICT DO NOTHING").format(child=child, cols=cols)


def unique_key_sql():
    """Whether the table (parameter: its regclass text) has a primary key or a unique index."""
    return "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass(%s) AND indisunique)"


def insertable_columns_sql():
    """The columns an INSERT may write (not dropped, not generated), in table order (parameter: regclass text)."""
    return ("SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
            "AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum")


def saved_relations(doc, database, relations):
    """[(relation, rows)] of a document saved by a delete, checked: it is one, of this database, and names only
    relations of the given ones (the tables the inventory names). Raises ValueError saying what is wrong."""
    if not isinstance(doc, dict) or doc.get("kind") != "sre.runbooks.pg_orphans":
        raise ValueError("it is not a file of rows saved by sre.runbooks.pg_orphans")
    if doc.get("database") != database:
        raise ValueError("it holds rows of database %s, not of %s" % (doc.get("database"), database))
    allowed = dict(((r["child"], r["column"], r["parent"], r["parent_column"]), r) for r in relations)
    out = []
    for index, entry in enumerate(doc.get("relations") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("rows"), list):
            raise ValueError("relations[%d] has no list of rows" % index)
        key = (entry.get("child"), entry.get("column"), entry.get("parent"), entry.get("parent_column"))
        if key not in allowed:
            raise ValueError("relations[%d] (%s.%s -> %s.%s) is not one of the relations option" % ((index,) + key))
        out.append((allowed[key], entry["rows"]))
    return out


def columns_sql():
    return ("SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
            "AND NOT a.attisdropped")


def saved_document(database, saved_at, passes):
    """The JSON document saved before a delete: every row to be deleted, by relation."""
    relations = []
    for rel, rows in passes:
        relations.append(dict(rel, rows=[json.loads(row) for row in rows]))
    return {"kind": "sre.runbooks.pg_orphans", "database": database, "saved_at": saved_at,
            "row_count": sum(len(r["rows"]) for r in relations), "relations": relations}


def write_temp(path, text, mode=0o600):
    """Write text to a fsynced temporary file beside path (for atomic_move); return its name."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".partial", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def fsync_dir(path):
    """Make a rename in the directory of path durable."""
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
