# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/data_integrity_*.yml on localhost against a throwaway cluster (no lab needed)."""

from __future__ import annotations

import json

from app_support import app_db, pg_can_reach_tmp, playbook  # noqa: F401  pylint: disable=unused-import

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
