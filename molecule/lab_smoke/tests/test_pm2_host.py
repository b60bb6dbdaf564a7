# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's pm2 host (cookcam-api under pm2, database by URL on the systemd host) as booted."""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("pm2")

APP = "/srv/cookcam-api"


def test_boot_finished_without_failed_units(host):
    assert host.run("systemctl is-system-running --wait").stdout.strip() == "running"
    assert host.check_output("systemctl --failed --no-legend --plain") == ""


def test_role_comes_from_the_image_not_the_hostname(host):
    assert host.file("/etc/sre-lab/pm2").exists
    assert "pm2" not in host.check_output("hostname")


def test_pm2_unit_runs_and_the_systemd_role_does_not(host):
    assert host.service("pm2-cookcam").is_running
    for unit in ("postgresql@15-main", "saasresto", "caddy"):
        assert not host.service(unit).is_running, unit


def test_pm2_process_online(host):
    procs = json.loads(host.check_output("PM2_HOME=/root/.pm2 pm2 jlist"))
    app = [p for p in procs if p["name"] == "cookcam-api"]
    assert len(app) == 1
    assert app[0]["pm2_env"]["status"] == "online"
    assert app[0]["pm2_env"]["pm_cwd"] == f"{APP}/current"


def test_app_port_and_health_over_the_network_database(host):
    assert host.socket("tcp://0.0.0.0:3000").is_listening or host.socket("tcp://:::3000").is_listening
    health = json.loads(host.check_output("curl -fsS -m 5 http://127.0.0.1:3000/health"))
    assert health["status"] == "ok" and health["db"] == "ok"
    assert "@sre-lab-systemd:5432/" in host.file(f"{APP}/shared/.env").content_string


def test_release_layout(host):
    assert host.file(f"{APP}/current").linked_to == f"{APP}/releases/20260102000000Z"
    assert host.file(f"{APP}/candidates/20260103000000Z/BAD").exists
    assert host.file(f"{APP}/ecosystem.config.js").exists
