# SPDX-License-Identifier: GPL-3.0-or-later
"""Restarting the database through the target interface (issue 14, 000 "Restart PostgreSQL", 003 "restart db"), on
the VPS twin: db_connections remediate with db_connections_restart_db plans it with the sessions' fate, changes
nothing unconfirmed, and confirmed restarts the postgresql unit (a new postmaster start time), waits until it
accepts connections, and leaves sme_booking healthy. (app_down starting a stopped database service is drilled:
molecule/drill_app_down_ferreteria_db.)"""

from __future__ import annotations

import re
import subprocess

from playbook_runner import LAB_INVENTORY, lab_marks, run_playbook

pytestmark = lab_marks()


def postmaster_start():
    return subprocess.run(["docker", "exec", "sre-lab-systemd", "runuser", "-u", "postgres", "--", "psql", "-Atc",
                           "SELECT pg_postmaster_start_time()"], capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip()


def test_db_connections_restarts_the_database_service(tmp_path):
    before = postmaster_start()
    extra = {"db_connections_restart_db": True, "db_connections_terminate": ["idle_in_transaction"]}
    res = run_playbook("db_connections_remediate", tmp_path=tmp_path, inventory=LAB_INVENTORY, limit="lab-sme",
                       extra_vars=extra, timeout=600)
    out = " ".join(res.output.split())
    assert res.rc == 0 and res.changed("lab-sme") == 0 and "Not confirmed: nothing is changed" in out, res.output
    assert re.search(r"restart the database service postgresql \(systemd\): the \d+ sessions still open then \(.*\) end,"
                     r" their open transactions roll back", out), out
    assert postmaster_start() == before

    res = run_playbook("db_connections_remediate", tmp_path=tmp_path, inventory=LAB_INVENTORY, limit="lab-sme",
                       extra_vars=dict(extra, sre_confirm="yes", target_cooldown_min_interval_s=0), timeout=600)
    assert res.rc == 0 and res.changed("lab-sme") > 0, res.output
    assert postmaster_start() != before
    health = subprocess.run(["docker", "exec", "sre-lab-systemd", "curl", "-fsS", "-m", "5",
                             "http://127.0.0.1:3001/api/health"], capture_output=True, text=True, timeout=60, check=False)
    assert health.returncode == 0, health.stdout + health.stderr


def test_restart_db_needs_the_service_on_the_host(tmp_path):
    res = run_playbook("db_connections_remediate", tmp_path=tmp_path, inventory=LAB_INVENTORY, limit="lab-pm2",
                       extra_vars={"db_connections_restart_db": True, "sre_confirm": "yes"}, timeout=600)
    out = " ".join(res.output.split())
    assert res.rc != 0 and res.changed("lab-pm2") == 0 and "Traceback" not in out, res.output
    assert "restarting the database (db_connections_restart_db) needs its service on this host" in out, out
