# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the app runbooks (data_integrity, secrets, high_resource) on localhost.

Imported by the test modules (`from app_support import ...`): a conftest.py here would shadow tests/conftest.py.

``app_db`` is a fresh database on the session's throwaway cluster with the lab app's schema
(lab/app/schema.sql); ``playbook`` runs ``playbooks/<name>.yml`` with ansible-playbook against
localhost and returns (rc, changed, output), asserting on every run that the cluster password
never shows in the output.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "lab" / "app" / "schema.sql"
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
    """run(name, variables, check=False, diff=False, verbosity=1, env=None) -> (rc, changed, output)."""

    def run(name, variables=None, check=False, diff=False, verbosity=1, env=None):
        merged = {
            "sre_db_host": pg_cluster.host, "sre_db_port": pg_cluster.port, "sre_db_user": pg_cluster.user,
            "sre_db_password": pg_cluster.password, "sre_state_dir": str(tmp_path / "state"),
            "ansible_python_interpreter": sys.executable,
        }
        merged.update(variables or {})
        varfile = tmp_path / ("vars-%d.json" % next(_COUNTER))
        varfile.write_text(json.dumps(merged))
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", "target=localhost", "-e", "@%s" % varfile, "playbooks/%s.yml" % name]
        cmd += ["-" + "v" * verbosity] if verbosity else []
        cmd += ["--check"] if check else []
        cmd += ["--diff"] if diff else []
        run_env = dict(os.environ, ANSIBLE_NOCOLOR="1", SRE_INCIDENT_DIR=str(tmp_path / "incidents"))
        run_env.update(env or {})
        proc = subprocess.run(cmd, cwd=str(REPO), env=run_env, capture_output=True, text=True, timeout=300, check=False)
        out = proc.stdout + proc.stderr
        varfile.unlink()
        assert pg_cluster.password not in out
        recap = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)", out)
        return proc.returncode, int(recap.group(2)) if recap else None, out

    return run


@pytest.fixture
def incident_text(tmp_path):
    """Everything the incident record callback wrote during the test (empty when it wrote nothing)."""

    def read():
        root = tmp_path / "incidents"
        if not root.exists():
            return ""
        return "".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file())

    return read


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
