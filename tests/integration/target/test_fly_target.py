# SPDX-License-Identifier: GPL-3.0-or-later
"""The fly kind of sre.runbooks.target on localhost with the FAKE flyctl (lab/fake-flyctl; Fly.io is not
reachable from here): the API token reaches flyctl (the fake refuses any other, FAKE_FLY_REQUIRE_TOKEN_SHA256)
but never shows in the output at -vvvv, in the incident record or in a file left behind; and the logs
entry point keeps only the entries of the time window, like the other kinds."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from playbook_runner import run_playbook

REPO = Path(__file__).resolve().parents[3]
FLYCTL = REPO / "lab" / "fake-flyctl" / "flyctl"
APP = "hotdash-production"
CANARY = "FlyV1 fm2_CANARY-9d4c2e7a-not-a-real-token"
GOOD = "registry.fly.io/hotdash-production:deployment-01GOODIMAGE7"

ENTRY_POINTS = """
- hosts: localhost
  gather_facts: false
  tasks:
    - {name: Status, ansible.builtin.include_role: {name: sre.runbooks.target, tasks_from: status}}
    - {name: Logs, ansible.builtin.include_role: {name: sre.runbooks.target, tasks_from: logs}}
    - {name: Stop, ansible.builtin.include_role: {name: sre.runbooks.target, tasks_from: stop}}
    - {name: Start, ansible.builtin.include_role: {name: sre.runbooks.target, tasks_from: start}}
    - {name: Restart, ansible.builtin.include_role: {name: sre.runbooks.target, tasks_from: restart}}
    - name: Deploy
      ansible.builtin.include_role: {name: sre.runbooks.target, tasks_from: deploy}
      vars: {target_deploy_release: "%s"}
    - {name: Roll back, ansible.builtin.include_role: {name: sre.runbooks.target, tasks_from: rollback}}
    - name: Keep what the target saw
      ansible.builtin.copy:
        dest: "{{ out_file }}"
        content: "{{ {'status': target_status, 'logs': target_logs} | to_json }}"
        mode: "0600"
""" % GOOD


@pytest.fixture
def fly_run(tmp_path, collections_path):
    """run(playbook, variables, token=CANARY, require=CANARY, verbosity=4) -> (rc, changed, output)."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()

    def run(playbook, variables=None, token=CANARY, require=CANARY, verbosity=4, check=False):
        merged = {"sre_target_kind": "fly", "sre_app_name": APP, "sre_fly_app": APP, "sre_flyctl": str(FLYCTL),
                  "sre_proxy_kind": "none", "sre_fly_api_token": token, "sre_confirm": "yes",
                  "target_state_dir": str(tmp_path / "state"), "target_health_retries": 1,
                  "target_health_delay": 0}
        merged.update(variables or {})
        r = run_playbook(playbook, tmp_path=tmp_path, target="localhost", extra_vars=merged, verbosity=verbosity,
                         check=check, timeout=600,
                         env={"FAKE_FLY_STATE": str(tmp_path / "fly" / "state.json"), "TMPDIR": str(tmpdir),
                              "FAKE_FLY_REQUIRE_TOKEN_SHA256": hashlib.sha256(require.encode()).hexdigest(),
                              "FLY_API_TOKEN": None, "FLY_ACCESS_TOKEN": None, "FLY_CONFIG_DIR": None,
                              "FAKE_FLY_FAULT": None})
        return r.rc, r.changed(), r.output

    return run


def left_behind(root):
    """Every file under root (outside the vars file) that holds the canary."""
    return [str(p) for p in Path(root).rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]


def test_the_token_reaches_flyctl_and_never_shows_at_vvvv(fly_run, tmp_path):
    book = tmp_path / "entry_points.yml"
    book.write_text(ENTRY_POINTS)
    runs = [fly_run(REPO / "playbooks" / "app_down_diagnose.yml", check=True),
            fly_run(REPO / "playbooks" / "deploy_failure_diagnose.yml", check=True),
            fly_run(book, {"out_file": str(tmp_path / "seen.json")})]
    for rc, dummy, out in runs:
        assert CANARY not in out and "CANARY" not in out, "the Fly API token shows in the output"
        assert rc == 0, out[-6000:]
        assert "EXEC" in out and "FLY_CONFIG_DIR=" in out  # really -vvvv, and flyctl got its config dir
    assert runs[0][1] == 0 and runs[1][1] == 0  # diagnose: the token file does not count as a change
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["status"]["running"] and seen["status"]["release"]["image_ref"].startswith(GOOD.split(":", maxsplit=1)[0])
    assert left_behind(tmp_path / "incidents") == [] and left_behind(tmp_path / "fly") == []
    assert list((tmp_path / "tmp").glob("*sre-flyctl*")) == []  # every private config removed


def test_without_the_token_the_fake_refuses_so_the_proof_is_not_vacuous(fly_run):
    rc, dummy, out = fly_run(REPO / "playbooks" / "app_down_diagnose.yml", token="", verbosity=1, check=True)
    assert rc != 0 and "No access token available" in out, out[-3000:]
    rc, dummy, out = fly_run(REPO / "playbooks" / "app_down_diagnose.yml", token="FlyV1 fm2_wrong", verbosity=1,
                             check=True)
    assert rc != 0 and "You must be authenticated" in out and "fm2_wrong" not in out, out[-3000:]


LOGS = """
- hosts: localhost
  gather_facts: false
  tasks:
    - {name: Logs, ansible.builtin.include_role: {name: sre.runbooks.target, tasks_from: logs}}
    - {name: Keep them, ansible.builtin.copy: {dest: "{{ out_file }}", content: "{{ target_logs | to_json }}", mode: "0600"}}
"""


def test_logs_keep_only_the_window(fly_run, tmp_path):
    book = tmp_path / "logs.yml"
    book.write_text(LOGS)
    state = tmp_path / "fly" / "state.json"
    env = dict(os.environ, FAKE_FLY_STATE=str(state))
    env.pop("FAKE_FLY_REQUIRE_TOKEN_SHA256", None)
    subprocess.run([str(FLYCTL), "status", "--json", "-a", APP], env=env, capture_output=True, check=True)
    old = json.loads(state.read_text())  # the fake's app starts with log lines from days ago
    old_lines = old["apps"][APP]["logs"] if "apps" in old else None
    before = time.time()
    subprocess.run([str(FLYCTL), "fake-fault", "crash", "-a", APP], env=env, capture_output=True, check=True)

    def logs(variables):
        out_file = tmp_path / "logs.json"
        rc, changed, out = fly_run(book, dict(variables, out_file=str(out_file)), verbosity=1)
        assert rc == 0 and changed == 1, out[-3000:]  # changed: only the copy of the result
        return json.loads(out_file.read_text())

    recent = logs({"target_logs_since": str(int(before) - 1)})
    everything = logs({"target_logs_since": "0"})
    default_window = logs({})  # target_logs_since_s: the last hour
    assert recent["since_epoch"] == int(before) - 1
    assert 0 < recent["scanned"] < everything["scanned"], (recent, everything)
    assert all("ECONNREFUSED" in line or "refused connection" in line or "exited" in line
               for line in recent["lines"]), recent["lines"]
    assert recent["error_count"] > 0 and any("ECONNREFUSED" in e for e in recent["errors"])
    assert default_window["scanned"] == recent["scanned"]
    stamps = [line.split()[0] for line in everything["lines"]]
    assert min(stamps) < time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before - 3600))  # older lines exist
    if old_lines is not None:
        assert everything["scanned"] >= len(old_lines)


def test_secrets_and_high_resource_hand_flyctl_the_token_the_same_way(fly_run, tmp_path):
    value = "fly-secret-Value-5e1d0c"
    runs = [fly_run(REPO / "playbooks" / "secrets_remediate.yml",
                    {"secrets_required": ["SRE_T_FLY"], "secrets_values": {"SRE_T_FLY": value}}),
            fly_run(REPO / "playbooks" / "high_resource_remediate.yml", {"high_resource_fly_memory_mb": 2048})]
    for rc, changed, out in runs:
        assert CANARY not in out and "CANARY" not in out and value not in out
        assert rc == 0 and changed >= 1, out[-6000:]
        assert "FLY_CONFIG_DIR=" in out and "--access-token" not in out
    assert "Set SRE_T_FLY in Fly app hotdash-production" in " ".join(runs[0][2].split())
    state = (tmp_path / "fly" / "state.json").read_text()
    assert '"memory_mb": 2048' in state and "SRE_T_FLY" in state and value not in state
    assert list((tmp_path / "tmp").glob("*sre-flyctl*")) == []


def fly_state(tmp_path):
    return json.loads((tmp_path / "fly" / "state.json").read_text())


def machines(state):
    return [(m["id"], m["state"], m["image_ref"]) for m in state["apps"][APP]["machines"]]


@pytest.mark.parametrize("answer", [None, "no"])
def test_unconfirmed_changing_playbooks_show_the_plan_and_change_nothing(fly_run, tmp_path, answer):
    """app_down remediate (a crashed app), deploy.yml and deploy_failure rollback with sre_confirm unset or no:
    the guard prints the plan, changed=0, the fake Fly app is exactly as before."""
    env = dict(os.environ, FAKE_FLY_STATE=str(tmp_path / "fly" / "state.json"))
    env.pop("FAKE_FLY_REQUIRE_TOKEN_SHA256", None)
    subprocess.run([str(FLYCTL), "fake-fault", "crash", "-a", APP], env=env, capture_output=True, check=True)
    before = fly_state(tmp_path)
    confirm = {"sre_confirm": answer}  # None: null, as an unset survey answer
    runs = {
        "app_down": fly_run(REPO / "playbooks" / "app_down_remediate.yml", confirm, verbosity=1),
        "deploy": fly_run(REPO / "playbooks" / "deploy.yml", dict(confirm, sre_deploy_release=GOOD), verbosity=1),
        "rollback": fly_run(REPO / "playbooks" / "deploy_failure_rollback.yml",
                            dict(confirm, deploy_failure_rollback_to=GOOD, deploy_failure_rollback_when_healthy=True),
                            verbosity=1),
    }
    plans = {"app_down": "Plan (app_down remediate):", "deploy": "Plan (deploy fly %s):" % APP,
             "rollback": "Plan (deploy_failure rollback):"}
    for name, (rc, changed, out) in runs.items():
        flat = " ".join(out.split())
        assert rc == 0 and changed == 0, (name, out[-4000:])
        assert plans[name] in flat and "Not confirmed: nothing is changed." in flat, (name, out[-4000:])
    assert "restart fly %s" % APP in " ".join(runs["app_down"][2].split())
    assert "deploy %s to fly %s" % (GOOD, APP) in " ".join(runs["deploy"][2].split())
    after = fly_state(tmp_path)
    assert machines(after) == machines(before)
    assert len(after["apps"][APP]["releases"]) == len(before["apps"][APP]["releases"])
    assert not (tmp_path / "state" / "releases").exists()  # deploy recorded nothing


def test_an_answer_that_is_not_yes_or_no_is_an_error(fly_run):
    rc, dummy, out = fly_run(REPO / "playbooks" / "app_down_remediate.yml", {"sre_confirm": "maybe"}, verbosity=1)
    assert rc != 0 and "is not an answer" in out, out[-3000:]
