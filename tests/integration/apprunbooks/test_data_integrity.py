# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/data_integrity_*.yml against the running lab (lab-systemd), on a test-only pair without FK."""

from __future__ import annotations

import json
import subprocess

import pytest

from app_support import LAB_CONTAINER as CONTAINER, lab_marks
from app_support import lab_playbook as playbook, lab_psql as psql

SAVE_DIR = "/tmp/sre-runbooks-di-test"
VARS = {"data_integrity_relations": [{"child": "di_child", "column": "parent_id", "parent": "di_parent",
                                      "parent_column": "id"}], "data_integrity_save_dir": SAVE_DIR}

pytestmark = lab_marks(CONTAINER)


@pytest.fixture
def orphans():
    """di_parent(1, 2) and di_child with two orphans (parent 7 and 8) and a NULL; dropped afterwards."""
    psql("DROP TABLE IF EXISTS di_child, di_parent;"
         "CREATE TABLE di_parent (id int PRIMARY KEY); CREATE TABLE di_child (id int PRIMARY KEY, parent_id int, note text);"
         "INSERT INTO di_parent VALUES (1), (2);"
         "INSERT INTO di_child VALUES (1, 1, 'ok'), (2, 2, 'ok'), (3, 7, 'orphan-a'), (4, 8, 'orphan-b'), (5, NULL, 'null')")
    yield
    psql("DROP TABLE IF EXISTS di_child, di_parent; ALTER DATABASE saasresto RESET default_transaction_read_only")
    subprocess.run(["docker", "exec", CONTAINER, "rm", "-rf", SAVE_DIR], check=False)


def children():
    return psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM di_child")


def read_only_setting():
    return psql("SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                "WHERE d.datname = 'saasresto' AND array_to_string(s.setconfig, ',') LIKE '%read_only%'")


def test_diagnose_counts_the_orphans(tmp_path, orphans):
    rc, changed, out = playbook(tmp_path, "data_integrity_diagnose", VARS, check=True)
    assert rc == 0 and changed == 0, out
    assert "di_child.parent_id -> di_parent.id: 2" in out and "2 orphan rows in di_child.parent_id" in out, out


def test_remediate_saves_then_deletes_only_with_confirm(tmp_path, orphans):
    rc, changed, out = playbook(tmp_path, "data_integrity_remediate", dict(VARS, sre_confirm="yes"), check=True)
    assert rc == 0 and changed == 0 and children() == "1,2,3,4,5", out
    rc, changed, out = playbook(tmp_path, "data_integrity_remediate", VARS)
    assert rc == 0 and changed == 0 and "Not confirmed" in out and children() == "1,2,3,4,5", out

    rc, changed, out = playbook(tmp_path, "data_integrity_remediate", dict(VARS, sre_confirm="yes"))
    assert rc == 0 and changed > 0 and "Deleted 2 orphan rows" in out, out
    assert "playbooks/db_restore.yml -l lab-systemd -e sre_confirm=yes" in out
    assert children() == "1,2,5"
    assert read_only_setting() == "0"
    saved = subprocess.run(["docker", "exec", CONTAINER, "sh", "-c", "cat %s/*.json" % SAVE_DIR],
                           capture_output=True, text=True, check=True).stdout
    rows = json.loads(saved)["relations"][0]["rows"]
    assert sorted((r["id"], r["parent_id"], r["note"]) for r in rows) == [(3, 7, "orphan-a"), (4, 8, "orphan-b")]

    rc, changed, out = playbook(tmp_path, "data_integrity_remediate", dict(VARS, sre_confirm="yes"))
    assert rc == 0 and changed == 0 and "No orphan rows" in out, out
    assert read_only_setting() == "0"


def test_bad_relation_name_is_refused(tmp_path):
    bad = {"data_integrity_relations": [{"child": "x; DROP TABLE users", "column": "a", "parent": "b",
                                         "parent_column": "id"}]}
    rc, dummy, out = playbook(tmp_path, "data_integrity_diagnose", bad)
    assert rc != 0 and "is not an identifier" in out and "DROP TABLE users' is not" in out, out
