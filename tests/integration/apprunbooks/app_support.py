# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the app runbooks (data_integrity, secrets, high_resource) on localhost.

Imported by the test modules (`from app_support import ...`): a conftest.py here would shadow tests/conftest.py.

``app_db`` is a fresh database on the session's throwaway cluster with the lab app's schema
(tests/integration/apprunbooks/generic_schema.sql); ``playbook`` runs ``playbooks/<name>.yml`` against localhost through
tests/playbook_runner.py and returns (rc, changed, output), asserting on every run that the cluster
password never shows in the output. ``lab_playbook``, ``lab_psql`` and ``lab_marks`` are the same for
the tests against the running lab (test_login.py, test_data_integrity.py, test_secrets.py,
test_high_resource_lab.py).
"""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest

from playbook_runner import LAB_CONTAINER, LAB_INVENTORY, lab_marks, run_playbook  # noqa: F401 pylint: disable=unused-import
from playbook_runner import incident_text as incidents_written

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "tests" / "integration" / "apprunbooks" / "generic_schema.sql"
_COUNTER = itertools.count()


@pytest.fixture
def app_db(pg_cluster):
    """A new database with the lab app's tables, dropped afterwards."""
    name = "apprb_%d_%d" % (os.getpid(), next(_COUNTER))
    pg_cluster.psql("CREATE DATABASE %s" % name)
    pg_cluster.psql(SCHEMA.read_text(), dbname=name)
    yield name
    pg_cluster.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


@pytest.fixture
def playbook(pg_cluster, tmp_path, collections_path):
    """run(name, variables=None, check=False, diff=False, verbosity=1, env=None) -> (rc, changed, output)."""

    def run(name, variables=None, check=False, diff=False, verbosity=1, env=None):
        merged = {
            "sre_db_host": pg_cluster.host, "sre_db_port": pg_cluster.port, "sre_db_user": pg_cluster.user,
            "sre_db_password": pg_cluster.password, "sre_state_dir": str(tmp_path / "state"),
        }
        merged.update(variables or {})
        result = run_playbook(name, tmp_path=tmp_path, target="localhost", extra_vars=merged, check=check, diff=diff,
                              verbosity=verbosity, env=env, secrets=[pg_cluster.password])
        return result.rc, result.changed("localhost"), result.output

    return run


@pytest.fixture
def incident_text(tmp_path):
    """Everything the incident record callback wrote during the test (empty when it wrote nothing)."""

    def read():
        return incidents_written(tmp_path / "incidents")

    return read


# ---- the running lab (lab/up.sh): lab-systemd's saasresto database, lab-fly's FAKE flyctl -------------


def lab_psql(sql):
    """sql on lab-systemd's saasresto database (psql -At as postgres); stdout stripped."""
    return subprocess.run(["docker", "exec", LAB_CONTAINER, "runuser", "-u", "postgres", "--", "psql", "-d", "saasresto",
                           "-Atc", sql], capture_output=True, text=True, check=True).stdout.strip()


def lab_playbook(tmp_path, name, extra=None, check=False, verbosity=1, varfile=None, host="lab-systemd"):
    """playbooks/<name>.yml on one lab host (-l host), extra vars then varfile (a secret vars file) as -e @files;
    the FAKE flyctl keeps its state in tmp_path/fly. Returns (rc, changed, output)."""
    result = run_playbook(name, tmp_path=tmp_path, inventory=LAB_INVENTORY, limit=host, extra_vars=extra,
                          var_files=[varfile] if varfile else [], check=check, verbosity=verbosity,
                          env={"FAKE_FLY_STATE": str(tmp_path / "fly" / "state.json")})
    return result.rc, result.changed(host), result.output


def seed_chained_orphans(pg_cluster, db):
    """Menu 1 with category 1 (2 items); category 2 points at a missing menu and item 3 sits under it
    (a foreign key still holds item 3 to category 2); items 4 and 5 point at a missing category.
    FK triggers are disabled while the orphans go in."""
    pg_cluster.psql(
        "INSERT INTO menus (id, name) VALUES (1, 'lunch');"
        "INSERT INTO categories (id, menu_id, name) VALUES (1, 1, 'mains');"
        "INSERT INTO items (id, category_id, name, price_cents) VALUES (1, 1, 'soup', 500), (2, 1, 'stew', 900);"
        "ALTER TABLE categories DISABLE TRIGGER ALL; ALTER TABLE items DISABLE TRIGGER ALL;"
        "INSERT INTO categories (id, menu_id, name) VALUES (2, 99, 'ghost');"
        "INSERT INTO items (id, category_id, name, price_cents) VALUES (3, 2, 'ghost item', 100),"
        " (4, 404, 'lost one', 200), (5, 404, 'lost two', 300);"
        "ALTER TABLE categories ENABLE TRIGGER ALL; ALTER TABLE items ENABLE TRIGGER ALL;", dbname=db)
