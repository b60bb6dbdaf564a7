# SPDX-License-Identifier: GPL-3.0-or-later
"""sre.runbooks.pg_orphans against a throwaway database with the lab app's schema."""

from __future__ import annotations

import json
import os

import pytest

from app_support import app_db, seed_chained_orphans  # noqa: F401  pylint: disable=unused-import

RELATIONS = [{"child": "categories", "column": "menu_id", "parent": "menus"},
             {"child": "items", "column": "category_id", "parent": "categories", "parent_column": "id"}]


@pytest.fixture
def orphan_db(pg_cluster, app_db):
    """Menu 1 with category 1 (2 items); category 2 points at a missing menu (orphan) and has 1 item;
    items 4 and 5 point at a missing category. FK triggers are disabled while the orphans go in."""
    seed_chained_orphans(pg_cluster, app_db)
    return app_db


def ids(pg_cluster, db, table):
    return pg_cluster.psql("SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM %s" % table, dbname=db).strip()


def test_counts_saves_and_deletes_in_passes(module_runner, pg_cluster, orphan_db, tmp_path):
    args = dict(pg_cluster.login_args(orphan_db), relations=RELATIONS)
    found = module_runner("pg_orphans", args)
    assert found["rc"] == 0 and not found["changed"], found
    assert [r["orphans"] for r in found["relations"]] == [1, 2] and found["total_orphans"] == 3
    assert found["relations"][1]["sample"] == ["404"]
    assert pg_cluster.password not in found["raw"]

    save = tmp_path / "orphans.json"
    planned = module_runner("pg_orphans", dict(args, state="absent", save_path=str(save)), check_mode=True)
    assert planned["rc"] == 0 and planned["changed"] and planned["deleted"] == 0 and not save.exists(), planned
    assert ids(pg_cluster, orphan_db, "items") == "1,2,3,4,5"

    done = module_runner("pg_orphans", dict(args, state="absent", save_path=str(save)))
    assert done["rc"] == 0 and done["changed"] and done["deleted"] == 4 and done["passes"] == 1, done
    assert ids(pg_cluster, orphan_db, "categories") == "1" and ids(pg_cluster, orphan_db, "items") == "1,2"
    doc = json.loads(save.read_text())
    assert oct(os.stat(save).st_mode & 0o777) == "0o600"
    saved = sorted((r["child"], row["id"]) for r in doc["relations"] for row in r["rows"])
    assert saved == [("categories", 2), ("items", 3), ("items", 4), ("items", 5)] and doc["row_count"] == 4
    assert {"id": 4, "category_id": 404, "name": "lost one", "price_cents": 200} in [
        row for r in doc["relations"] for row in r["rows"]]

    again = module_runner("pg_orphans", dict(args, state="absent", save_path=str(tmp_path / "second.json")))
    assert again["rc"] == 0 and not again["changed"] and again["total_orphans"] == 0, again
    assert not (tmp_path / "second.json").exists()


def test_refuses_bad_identifiers_and_unknown_tables(module_runner, pg_cluster, orphan_db):
    base = pg_cluster.login_args(orphan_db)
    evil = {"child": 'items"; DROP TABLE items; --', "column": "category_id", "parent": "categories"}
    bad = module_runner("pg_orphans", dict(base, relations=[evil]))
    assert bad["rc"] == 1 and "invalid table name" in bad["msg"] and "Traceback" not in bad["raw"], bad
    missing = module_runner("pg_orphans", dict(base, relations=[{"child": "items", "column": "nope", "parent": "categories"}]))
    assert missing["rc"] == 1 and "has no column nope" in missing["msg"], missing
    assert ids(pg_cluster, orphan_db, "items") == "1,2,3,4,5"


def test_delete_rolls_back_when_a_row_is_still_referenced(module_runner, pg_cluster, orphan_db, tmp_path):
    # Only the categories pair: deleting category 2 is blocked by item 3's enabled foreign key.
    save = tmp_path / "o.json"
    res = module_runner("pg_orphans", dict(pg_cluster.login_args(orphan_db), relations=RELATIONS[:1], state="absent",
                                           save_path=str(save)))
    assert res["rc"] == 1 and "NOT deleted" in res["msg"] and "items_category_id_fkey" in res["msg"], res
    assert ids(pg_cluster, orphan_db, "categories") == "1,2"


def test_deletes_from_a_read_only_database(module_runner, pg_cluster, orphan_db, tmp_path):
    pg_cluster.psql("ALTER DATABASE %s SET default_transaction_read_only = on" % orphan_db)
    res = module_runner("pg_orphans", dict(pg_cluster.login_args(orphan_db), relations=RELATIONS, state="absent",
                                           save_path=str(tmp_path / "o.json")))
    assert res["rc"] == 0 and res["deleted"] == 4, res


def test_restored_puts_the_saved_rows_back(module_runner, pg_cluster, orphan_db, tmp_path):
    """The way back of a delete: the saved rows go back as they were (foreign keys not checked for a superuser:
    they were orphans), check mode only counts, a second run skips what is there, a file of another database or
    naming a relation not in the option is refused, and a missing file is one clear message."""
    args = dict(pg_cluster.login_args(orphan_db), relations=RELATIONS)
    save = tmp_path / "orphans.json"
    done = module_runner("pg_orphans", dict(args, state="absent", save_path=str(save)))
    assert done["rc"] == 0 and done["deleted"] == 4, done

    planned = module_runner("pg_orphans", dict(args, state="restored", restore_from=str(save)), check_mode=True)
    assert planned["rc"] == 0 and planned["changed"] and planned["restored"] == 4, planned
    assert ids(pg_cluster, orphan_db, "items") == "1,2"  # rolled back

    back = module_runner("pg_orphans", dict(args, state="restored", restore_from=str(save)))
    assert back["rc"] == 0 and back["changed"] and (back["restored"], back["already_present"]) == (4, 0), back
    assert [r["restored"] for r in back["relations"]] == [1, 3] and back["total_orphans"] == 3, back
    assert ids(pg_cluster, orphan_db, "categories") == "1,2" and ids(pg_cluster, orphan_db, "items") == "1,2,3,4,5"
    assert pg_cluster.psql("SELECT name || ':' || price_cents FROM items WHERE id = 4", dbname=orphan_db).strip() \
        == "lost one:200"
    assert all("lost one" not in q for q in back["queries"])  # the rows' values are never in the result

    again = module_runner("pg_orphans", dict(args, state="restored", restore_from=str(save)))
    assert again["rc"] == 0 and not again["changed"] and (again["restored"], again["already_present"]) == (0, 4)

    other = tmp_path / "other.json"
    other.write_text(json.dumps(dict(json.loads(save.read_text()), database="elsewhere")))
    refused = module_runner("pg_orphans", dict(args, state="restored", restore_from=str(other)))
    assert refused["rc"] == 1 and "holds rows of database elsewhere, not of %s" % orphan_db in refused["msg"], refused
    narrow = module_runner("pg_orphans", dict(args, relations=RELATIONS[:1], state="restored", restore_from=str(save)))
    assert narrow["rc"] == 1 and "is not one of the relations option" in narrow["msg"], narrow
    missing = module_runner("pg_orphans", dict(args, state="restored", restore_from=str(tmp_path / "nope.json")))
    assert missing["rc"] == 1 and "Reading the file to put back" in missing["msg"] and "Traceback" not in missing["raw"]


def test_restored_into_a_read_only_database(module_runner, pg_cluster, orphan_db, tmp_path):
    """The way back is needed most while writes are stopped: the restore starts its own read-write transaction."""
    args = dict(pg_cluster.login_args(orphan_db), relations=RELATIONS)
    save = tmp_path / "orphans.json"
    assert module_runner("pg_orphans", dict(args, state="absent", save_path=str(save)))["deleted"] == 4
    pg_cluster.psql("ALTER DATABASE %s SET default_transaction_read_only = on" % orphan_db)
    back = module_runner("pg_orphans", dict(args, state="restored", restore_from=str(save)))
    assert back["rc"] == 0 and back["restored"] == 4, back
    assert ids(pg_cluster, orphan_db, "items") == "1,2,3,4,5"


def test_a_refused_restore_says_why_without_the_rows(module_runner, pg_cluster, orphan_db, tmp_path):
    """A row the table refuses (here a NOT NULL column) rolls everything back; the message names the constraint but
    never prints the row (the server's DETAIL would), and a table with no key to tell rows apart is refused."""
    args = dict(pg_cluster.login_args(orphan_db), relations=RELATIONS)
    doc = {"kind": "sre.runbooks.pg_orphans", "database": orphan_db, "saved_at": "2026-12-01T00:00:00Z", "row_count": 2,
           "relations": [dict(RELATIONS[1], parent_column="id", rows=[
               {"id": 76, "category_id": 1, "name": "fine", "price_cents": 1},
               {"id": 77, "category_id": 1, "name": None, "price_cents": 424242}])]}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    res = module_runner("pg_orphans", dict(args, state="restored", restore_from=str(bad)))
    assert res["rc"] == 1 and "not-null constraint" in res["msg"] and "nothing was put back" in res["msg"], res
    assert "424242" not in res["raw"] and "Traceback" not in res["raw"]
    assert ids(pg_cluster, orphan_db, "items") == "1,2,3,4,5"

    pg_cluster.psql("CREATE TABLE nokey (category_id bigint, name text)", dbname=orphan_db)
    nokey = {"child": "nokey", "column": "category_id", "parent": "categories", "parent_column": "id"}
    doc = dict(doc, relations=[dict(nokey, rows=[{"category_id": 404, "name": "x"}])])
    bad.write_text(json.dumps(doc))
    res = module_runner("pg_orphans", dict(args, relations=[nokey], state="restored", restore_from=str(bad)))
    assert res["rc"] == 1 and "table nokey has no primary or unique key" in res["msg"], res
