# SPDX-License-Identifier: GPL-3.0-or-later
"""After converge: the good release runs again, the proxy is up, the record is there, diagnose --check changes nothing."""

import json
import os
import re
import subprocess
import urllib.request

import pytest

PROJECT = "sretgtmol"
GOOD = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", "sre-target-web:good"],
                      capture_output=True, text=True, check=True).stdout.strip()


def _inspect(service):
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=" + PROJECT,
                          "--filter", "label=com.docker.compose.service=" + service],
                         capture_output=True, text=True, check=True).stdout.split()
    assert len(ids) == 1, ids
    return json.loads(subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True, check=True).stdout)[0]


def test_web_runs_the_good_release_again(host):
    web = _inspect("web")
    assert web["State"]["Status"] == "running"
    assert web["Image"] == GOOD
    assert host.socket("tcp://127.0.0.1:18080").is_listening


def test_health_answers_with_the_good_release():
    with urllib.request.urlopen("http://127.0.0.1:18080/health", timeout=5) as resp:
        assert resp.status == 200
        assert json.load(resp)["release"] == "good"


def test_proxy_is_running_again():
    assert _inspect("proxy")["State"]["Status"] == "running"


def test_release_record_names_the_good_release(host):
    state = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "state", "releases", "web.json")
    record = json.loads(host.file(state).content_string)
    assert record["release"]["id"] == GOOD and record["kind"] == "compose"


@pytest.mark.parametrize("playbook", ["app_down_diagnose.yml", "deploy_failure_diagnose.yml"])
def test_diagnose_under_check_changes_nothing(playbook):
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(project, "build/collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    out = subprocess.run(["ansible-playbook", "-i", os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]), "--check",
                          os.path.join(project, "playbooks", playbook)], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stdout[-2000:]
    assert re.findall(r"compose-host\s+: ok=\d+\s+changed=(\d+)", out.stdout) == ["0"], out.stdout[-2000:]
