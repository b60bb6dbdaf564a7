# SPDX-License-Identifier: GPL-3.0-or-later
"""After converge: cookcam-api runs under pm2 on the recorded release, listens and answers /health."""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("pm2")

APP = "/srv/cookcam-api"
GOOD = "20260102000000Z"
BAD = "20260103000000Z"


def recorded_release(host):
    record = json.loads(host.file("/var/lib/sre-runbooks/releases/cookcam-api.json").content_string)
    return record["release"]["id"]


def test_the_recorded_release_is_the_one_before_the_bad_deploy(host):
    assert recorded_release(host) == GOOD


def test_pm2_runs_cookcam_api_online_on_the_recorded_release(host):
    procs = json.loads(host.check_output("PM2_HOME=/root/.pm2 pm2 jlist"))
    app = [p for p in procs if p["name"] == "cookcam-api"]
    assert len(app) == 1
    assert app[0]["pm2_env"]["status"] == "online"
    assert app[0]["pm2_env"]["pm_cwd"] == f"{APP}/current"
    assert host.file(f"{APP}/current").linked_to == f"{APP}/releases/{recorded_release(host)}"
    # the process itself runs in the recorded release, not in the bad one it crashed from
    assert host.check_output("readlink /proc/%s/cwd", str(app[0]["pid"])) == f"{APP}/releases/{recorded_release(host)}"


def test_port_listens(host):
    assert host.socket("tcp://0.0.0.0:3000").is_listening or host.socket("tcp://:::3000").is_listening


def test_health_answers_200_with_the_database_and_the_recorded_release(host):
    out = host.run("curl -sS -m 5 -o /tmp/health.json -w '%{http_code}' http://127.0.0.1:3000/health")
    assert out.stdout == "200"
    health = json.loads(host.file("/tmp/health.json").content_string)
    assert health["status"] == "ok" and health["db"] == "ok"
    assert health["release"] == recorded_release(host)


def test_bad_release_is_kept_for_analysis(host):
    assert host.file(f"{APP}/releases/{BAD}/BAD").exists
