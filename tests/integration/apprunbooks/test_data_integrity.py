# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/data_integrity_*.yml against the running lab (lab-systemd), on a test-only pair without FK."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CONTAINER = "sre-lab-systemd"
SAVE_DIR = "/tmp/sre-runbooks-di-test"
VARS = {"data_integrity_relations": [{"child": "di_child", "column": "parent_id", "parent": "di_parent",
                                      "parent_column": "id"}], "data_integrity_save_dir": SAVE_DIR}

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        subprocess.run(["docker", "inspect", CONTAINER], capture_output=True, check=False).returncode != 0,
        reason="docker inspect %s failed: the lab is not running (lab/up.sh)" % CONTAINER),
]


def psql(sql):
    return subprocess.run(["docker", "exec", CONTAINER, "runuser", "-u", "postgres", "--", "psql", "-d", "saasresto",
                           "-Atc", sql], capture_output=True, text=True, check=True).stdout.strip()


def playbook(tmp_path, name, extra=None, check=False, verbosity=1, varfile=None):
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/%s.yml" % name, "-l", "lab-systemd",
           "-e", json.dumps(extra or {})]
    cmd += ["-e", "@%s" % varfile] if varfile else []
    cmd += ["-" + "v" * verbosity] if verbosity else []
    cmd += ["--check"] if check else []
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", SRE_INCIDENT_DIR=str(tmp_path / "incidents"))
    proc = subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    recap = re.search(r"lab-systemd\s+: ok=\d+\s+changed=(\d+)", out)
    return proc.returncode, int(recap.group(1)) if recap else None, out


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
    assert rc != 0 and "must match" in out, out
