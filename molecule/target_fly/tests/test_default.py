# SPDX-License-Identifier: GPL-3.0-or-later
"""After converge: the fake Fly app runs the recorded good ImageRef again on started machines with passing
checks, the bad release stays in the history as failed, and diagnose under --check changes nothing."""

import json
import os
import re
import subprocess

import pytest

APP = "hotdash-production"
BAD = "registry.fly.io/hotdash-production:deployment-bad-0042"
EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
FLYCTL = os.path.join(PROJECT, "lab", "fake-flyctl", "flyctl")
ENV = dict(os.environ, FAKE_FLY_STATE=os.path.join(EPHEMERAL, "fakefly", "state.json"))


def flyctl(*args):
    out = subprocess.run([FLYCTL, *args, "--app", APP, "--json"], capture_output=True, text=True, env=ENV,
                         check=True)
    assert "FAKE" in out.stderr
    return json.loads(out.stdout)


def ref_of(machine):
    ref = machine["image_ref"]
    return "%s/%s:%s@%s" % (ref["registry"], ref["repository"], ref["tag"], ref["digest"])


def record(host):
    return json.loads(host.file(os.path.join(EPHEMERAL, "state", "releases", APP + ".json")).content_string)


def test_record_names_the_good_release(host):
    rec = record(host)
    assert rec["kind"] == "fly" and rec["app"] == APP
    assert "bad" not in rec["release"]["id"] and rec["release"]["id"].startswith("registry.fly.io/" + APP + ":")


def test_machines_run_the_recorded_image_with_passing_checks(host):
    good = record(host)["release"]["id"]
    machines = flyctl("status")["Machines"]
    assert len(machines) == 2
    for machine in machines:
        assert machine["state"] == "started"
        assert ref_of(machine) == good
        assert [c["status"] for c in machine["checks"]] == ["passing"]


def test_releases_show_the_failed_deploy_then_the_rollback(host):
    good = record(host)["release"]["id"]
    rows = flyctl("releases", "--image")
    # newest first: the rollback (the recorded ref, digest included), the failed bad deploy, the original v3
    assert [(r["Version"], r["Status"]) for r in rows[:3]] == [(5, "complete"), (4, "failed"), (3, "complete")]
    assert rows[0]["ImageRef"] == good and rows[1]["ImageRef"] == BAD
    assert good.startswith(rows[2]["ImageRef"] + "@sha256:")
    assert [r["ImageRef"] for r in rows if "bad" in r["ImageRef"]] == [BAD]


@pytest.mark.parametrize("playbook", ["app_down_diagnose.yml", "deploy_failure_diagnose.yml"])
def test_diagnose_under_check_changes_nothing(playbook):
    before = open(ENV["FAKE_FLY_STATE"], encoding="utf-8").read()
    env = dict(ENV, ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, "build/collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", SRE_INCIDENT_DIR=os.path.join(EPHEMERAL, "incidents"))
    out = subprocess.run(["ansible-playbook", "-i", os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]), "--check",
                          os.path.join(PROJECT, "playbooks", playbook)], capture_output=True, text=True, env=env,
                         check=False)
    assert out.returncode == 0, out.stdout[-2000:]
    assert re.findall(r"lab-fly\s+: ok=\d+\s+changed=(\d+)", out.stdout) == ["0"], out.stdout[-2000:]
    after = open(ENV["FAKE_FLY_STATE"], encoding="utf-8").read()
    assert json.loads(after)["apps"][APP]["machines"] == json.loads(before)["apps"][APP]["machines"]
