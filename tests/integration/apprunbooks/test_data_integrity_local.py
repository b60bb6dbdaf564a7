# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/data_integrity_*.yml on localhost against a throwaway cluster (no lab needed)."""

from __future__ import annotations

import json

from app_support import app_db, playbook, seed_chained_orphans  # noqa: F401  pylint: disable=unused-import

RELATIONS = [{"child": "items", "column": "category_id", "parent": "categories", "parent_column": "id"}]


def item_ids(pg_cluster, db):
    return pg_cluster.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM items", dbname=db).strip()


def test_orphans_found_saved_deleted_only_when_confirmed_and_once(playbook, pg_cluster, app_db, tmp_path):
    pg_cluster.psql(
        "INSERT INTO menus (id, name) VALUES (1, 'lunch');"
        "INSERT INTO categories (id, menu_id, name) VALUES (1, 1, 'mains');"
        "INSERT INTO items (id, category_id, name, price_cents) VALUES (1, 1, 'soup', 500), (2, 1, 'stew', 900);"
        "ALTER TABLE items DISABLE TRIGGER ALL;"
        "INSERT INTO items (id, category_id, name, price_cents) VALUES (4, 404, 'lost one', 200), (5, 404, 'lost two', 300);"
        "ALTER TABLE items ENABLE TRIGGER ALL;", dbname=app_db)
    save_dir = tmp_path / "saved"
    variables = {"sre_db_name": app_db, "data_integrity_relations": RELATIONS, "data_integrity_save_dir": str(save_dir)}

    rc, changed, out = playbook("data_integrity_diagnose", variables, check=True)
    assert rc == 0 and changed == 0, out
    assert "items.category_id -> categories.id: 2" in " ".join(out.split()), out

    rc, changed, out = playbook("data_integrity_remediate", dict(variables, sre_confirm="yes"), check=True)
    assert rc == 0 and changed == 0 and item_ids(pg_cluster, app_db) == "1,2,4,5", out
    rc, changed, out = playbook("data_integrity_remediate", variables)  # not confirmed
    assert rc == 0 and changed == 0 and item_ids(pg_cluster, app_db) == "1,2,4,5", out
    assert not save_dir.exists()

    rc, changed, out = playbook("data_integrity_remediate", dict(variables, sre_confirm="yes"))
    assert rc == 0 and changed > 0 and item_ids(pg_cluster, app_db) == "1,2", out
    assert "ansible-playbook playbooks/db_restore.yml -l localhost" in " ".join(out.split()), out
    saved = list(save_dir.glob("*.json"))
    assert len(saved) == 1, saved
    rows = [row for rel in json.loads(saved[0].read_text())["relations"] for row in rel["rows"]]
    assert sorted(row["id"] for row in rows) == [4, 5]
    assert pg_cluster.psql("SHOW default_transaction_read_only", dbname=app_db).strip() == "off"  # writes restored

    rc, changed, out = playbook("data_integrity_remediate", dict(variables, sre_confirm="yes"))
    assert rc == 0 and changed == 0 and len(list(save_dir.glob("*.json"))) == 1, out

    # the way back: the rows the remediate deleted go back from its file (plan first, then confirmed, then once)
    rc, changed, out = playbook("data_integrity_rollback", variables)
    text = " ".join(out.split())
    assert rc == 0 and changed == 0 and item_ids(pg_cluster, app_db) == "1,2", out
    assert "put back 2 rows saved in %s (items: 2)" % saved[0] in text and "Not confirmed" in text, text
    rc, changed, out = playbook("data_integrity_rollback", dict(variables, sre_confirm="yes"), check=True)
    assert rc == 0 and changed == 0 and item_ids(pg_cluster, app_db) == "1,2", out
    rc, changed, out = playbook("data_integrity_rollback", dict(variables, sre_confirm="yes"))
    assert rc == 0 and changed == 1 and item_ids(pg_cluster, app_db) == "1,2,4,5", out
    assert "Put back 2 rows from %s (0 were there already); orphans now: 2" % saved[0] in " ".join(out.split()), out
    rc, changed, out = playbook("data_integrity_rollback", dict(variables, sre_confirm="yes"))
    assert rc == 0 and changed == 0 and item_ids(pg_cluster, app_db) == "1,2,4,5", out
    missing = str(tmp_path / "nope.json")
    rc, changed, out = playbook("data_integrity_rollback", dict(variables, sre_confirm="yes",
                                                                data_integrity_restore_from=missing))
    assert rc != 0 and changed == 0 and "Reading the file to put back" in out and "Traceback" not in out, out


CHAINED = [{"child": "categories", "column": "menu_id", "parent": "menus", "parent_column": "id"},
           {"child": "items", "column": "category_id", "parent": "categories", "parent_column": "id"}]


def chained_orphans(pg_cluster, db):
    """Category 2 points at a missing menu and item 3 sits under it (a foreign key still holds item 3 to
    category 2); items 4 and 5 point at a missing category."""
    seed_chained_orphans(pg_cluster, db)


def rows_of(pg_cluster, db, table):
    return json.loads(pg_cluster.psql("SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM %s t" % table, dbname=db))


def test_saved_json_holds_exactly_the_deleted_rows_of_chained_orphans(playbook, pg_cluster, app_db, tmp_path):
    """One pg_orphans transaction: what is counted is planned, what is deleted is exactly what was saved,
    rows orphaned by a delete in the same run (item 3 under the orphan category) included."""
    chained_orphans(pg_cluster, app_db)
    before = {t: rows_of(pg_cluster, app_db, t) for t in ("categories", "items")}
    save_dir = tmp_path / "saved"
    variables = {"sre_db_name": app_db, "data_integrity_relations": CHAINED, "data_integrity_save_dir": str(save_dir)}

    rc, changed, out = playbook("data_integrity_remediate", dict(variables, sre_confirm="yes"), check=True)
    flat = " ".join(out.split())
    assert rc == 0 and changed == 0 and not save_dir.exists(), out
    assert "Plan (data_integrity remediate):" in flat and "stop writes (readonly), save 3 orphan rows" in flat, out
    assert "(categories.menu_id: 1, items.category_id: 2; rows orphaned by those deletes" in flat, out
    assert {t: rows_of(pg_cluster, app_db, t) for t in before} == before

    rc, changed, out = playbook("data_integrity_remediate", dict(variables, sre_confirm="yes"))
    flat = " ".join(out.split())
    assert rc == 0 and changed > 0, out
    assert "Deleted 4 orphan rows (categories.menu_id: 1, items.category_id: 3)" in flat, out
    saved = list(save_dir.glob("*.json"))
    assert len(saved) == 1 and oct(saved[0].stat().st_mode & 0o777) == "0o600", saved
    doc = json.loads(saved[0].read_text())
    assert doc["kind"] == "sre.runbooks.pg_orphans" and doc["database"] == app_db and doc["row_count"] == 4
    saved_rows = {}
    for rel in doc["relations"]:
        saved_rows.setdefault(rel["child"], []).extend(rel["rows"])
    for table in ("categories", "items"):
        after = rows_of(pg_cluster, app_db, table)
        deleted = [row for row in before[table] if row not in after]
        assert sorted(saved_rows[table], key=lambda r: r["id"]) == deleted, table  # same rows, same values
    assert [r["id"] for r in rows_of(pg_cluster, app_db, "items")] == [1, 2]
    assert pg_cluster.psql("SHOW default_transaction_read_only", dbname=app_db).strip() == "off"

    rc, changed, out = playbook("data_integrity_remediate", dict(variables, sre_confirm="yes"))
    assert rc == 0 and changed == 0 and "No orphan rows" in out and len(list(save_dir.glob("*.json"))) == 1, out


def test_a_refused_delete_deletes_nothing_and_restores_writes(playbook, pg_cluster, app_db, tmp_path):
    """Only the categories pair: item 3's foreign key refuses category 2's delete. Nothing at all may be
    deleted (the item orphans counted by other pairs neither), and writes come back."""
    chained_orphans(pg_cluster, app_db)
    variables = {"sre_db_name": app_db, "data_integrity_relations": CHAINED[:1] + [
        {"child": "sessions", "column": "user_id", "parent": "users", "parent_column": "id"}],
        "data_integrity_save_dir": str(tmp_path / "saved"), "sre_confirm": "yes"}
    rc, dummy, out = playbook("data_integrity_remediate", variables)
    assert rc != 0 and "items_category_id_fkey" in out and "NOT deleted" in out, out
    assert item_ids(pg_cluster, app_db) == "1,2,3,4,5"
    assert pg_cluster.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM categories", dbname=app_db).strip() == "1,2"
    assert pg_cluster.psql("SHOW default_transaction_read_only", dbname=app_db).strip() == "off"


def test_a_database_already_read_only_stays_so(playbook, pg_cluster, app_db, tmp_path):
    """An operator put the database in read-only mode (the read_only runbook) before data_integrity ran: the orphans
    are still deleted (the delete's own transaction is read-write), and writes are not let in again behind the
    operator's back."""
    chained_orphans(pg_cluster, app_db)
    pg_cluster.psql("ALTER DATABASE %s SET default_transaction_read_only = on" % app_db)
    variables = {"sre_db_name": app_db, "data_integrity_relations": CHAINED,
                 "data_integrity_save_dir": str(tmp_path / "saved"), "sre_confirm": "yes"}
    rc, changed, out = playbook("data_integrity_remediate", variables)
    assert rc == 0 and changed > 0 and item_ids(pg_cluster, app_db) == "1,2", out
    assert pg_cluster.psql("SHOW default_transaction_read_only", dbname=app_db).strip() == "on"
