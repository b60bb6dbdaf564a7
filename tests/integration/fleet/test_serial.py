# SPDX-License-Identifier: GPL-3.0-or-later
"""Playbooks that restart, roll back or deploy go one host at a time and stop at the first failure
(sre_serial, sre_max_fail_percentage), so a bad remediation cannot take down a whole group at once."""

from __future__ import annotations

import sys

import pytest
import yaml

from playbook_runner import REPO, run_playbook

# Every playbook that can restart, stop, roll back or deploy an app (or the database) on many hosts.
FLEET_CHANGING = ["app_down_remediate", "data_integrity_remediate", "data_integrity_rollback", "db_connections_remediate",
                  "deploy", "deploy_failure_rollback", "error_rate_remediate", "high_resource_remediate",
                  "read_only_remediate", "read_only_rollback", "secrets_remediate", "tls_cert_remediate"]


@pytest.mark.parametrize("name", FLEET_CHANGING)
def test_changing_playbooks_go_one_host_at_a_time(name):
    plays = yaml.safe_load((REPO / "playbooks" / (name + ".yml")).read_text())
    for play in plays:
        assert play.get("serial") == "{{ sre_serial | default(1) }}", name
        assert play.get("max_fail_percentage") == "{{ sre_max_fail_percentage | default(0) }}", name


def inventory(tmp_path, hosts):
    path = tmp_path / "fleet.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {h: {"ansible_connection": "local",
                                                          "ansible_python_interpreter": sys.executable}
                                                      for h in hosts}}}))
    return path


# A database nobody listens on: db_connections remediate stops on the first host with the reason.
UNREACHABLE = {"sre_db_host": "127.0.0.1", "sre_db_port": 9, "sre_db_user": "app", "sre_db_name": "app",
               "sre_confirm": "yes"}


def test_the_first_failure_stops_the_group(tmp_path):
    hosts = ["web1", "web2", "web3"]
    res = run_playbook("db_connections_remediate", tmp_path=tmp_path, inventory=str(inventory(tmp_path, hosts)),
                       extra_vars=UNREACHABLE)
    assert res.rc != 0, res.output
    assert set(res.recap) == {"web1"}, res.output
    assert res.failed("web1") == 1
    assert "web2" not in res.output and "web3" not in res.output


def test_a_wider_batch_and_tolerance_when_asked(tmp_path):
    hosts = ["web1", "web2", "web3"]
    res = run_playbook("db_connections_remediate", tmp_path=tmp_path, inventory=str(inventory(tmp_path, hosts)),
                       extra_vars=dict(UNREACHABLE, sre_serial=3, sre_max_fail_percentage=100))
    assert res.rc != 0, res.output
    assert set(res.recap) == set(hosts), res.output
    assert all(res.failed(h) == 1 for h in hosts), res.output
