# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's pm2 host as booted: the cookcam-api twin under pm2 from its git checkout, nginx with rate
limits in front, its database by URL (a non-superuser role) on the systemd host."""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("pm2")

APP = "/opt/cookcam-api"


def test_boot_finished_without_failed_units(host):
    assert host.run("systemctl is-system-running --wait").stdout.strip() == "running"
    assert host.check_output("systemctl --failed --no-legend --plain") == ""


def test_role_comes_from_the_image_not_the_hostname(host):
    assert host.file("/etc/sre-lab/pm2").exists
    assert "pm2" not in host.check_output("hostname")


def test_pm2_unit_runs_and_the_systemd_role_does_not(host):
    assert host.service("pm2-cookcam").is_running
    for unit in ("postgresql@15-main", "saasresto", "sme-booking-app", "caddy"):
        assert not host.service(unit).is_running, unit
    assert host.service("nginx").is_running


def test_pm2_process_online(host):
    procs = json.loads(host.check_output("PM2_HOME=/root/.pm2 pm2 jlist"))
    app = [p for p in procs if p["name"] == "cookcam-api"]
    assert len(app) == 1
    assert app[0]["pm2_env"]["status"] == "online"
    assert app[0]["pm2_env"]["pm_cwd"] == APP


def test_app_port_and_health_over_the_network_database(host):
    assert host.socket("tcp://0.0.0.0:3000").is_listening or host.socket("tcp://:::3000").is_listening
    health = json.loads(host.check_output("curl -fsS -m 5 http://127.0.0.1:3000/health"))
    assert health["status"] == "ok" and health["db"] == "ok"
    env = host.file(f"{APP}/.env").content_string
    assert "postgresql://cookcam:" in env and "@sre-lab-systemd:5432/cookcam" in env


def test_git_checkout_with_the_production_ecosystem(host):
    assert host.check_output(f"git -C {APP} describe --tags --exact-match") == "deploy-20260102"
    assert host.file(f"{APP}/ecosystem.production.config.js").exists
    assert "candidate/bad" in host.check_output("git -C /srv/git/cookcam-api.git branch --list")


def test_nginx_rate_limits_in_front(host):
    conf = host.file("/etc/nginx/sites-enabled/cookcam-api.conf").content_string
    assert "limit_req_zone" in conf and "limit_req zone=api" in conf
    health = json.loads(host.check_output("curl -fsS -m 5 http://127.0.0.1:80/health"))
    assert health["status"] == "ok"
    # a burst over the zone's rate is refused with 429 and logged in nginx's error log
    codes = host.run("for i in $(seq 1 40); do curl -s -o /dev/null -w '%{http_code} ' http://127.0.0.1/health; done").stdout
    assert "429" in codes.split()
    assert "limiting requests" in host.file("/var/log/nginx/error.log").content_string
