# SPDX-License-Identifier: GPL-3.0-or-later
"""The Alertmanager rulebook for real: ansible-rulebook (Java 17), our event source on loopback,
an alert storm that must trigger one run, then a second alert as a sentinel."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
FIXTURE = REPO / "tests" / "integration" / "incident" / "fixtures" / "sample_diagnose.yml"
sys.path.insert(0, str(REPO / "extensions" / "eda" / "plugins" / "event_source"))
import alertmanager  # noqa: E402  pylint: disable=wrong-import-position


def test_events_from_payload():
    payload = {"alerts": [{"status": "firing", "labels": {"alertname": "AppDown", "instance": "web1:9100"}},
                          {"status": "firing", "labels": {"alertname": "AppDown", "instance": "[::1]:9100"}},
                          {"status": "resolved", "labels": {"alertname": "X"}}, "junk"]}
    events = alertmanager.events_from(payload, "alerts", {"skip_original_data": True})
    assert [e["meta"]["hosts"] for e in events] == [["web1"], ["::1"], []]
    assert all("payload" not in e for e in events)
    assert alertmanager.events_from({"alerts": "nope"}, "alerts", {}) == []


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(port, alertname, fingerprint):
    body = json.dumps({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "fingerprint": fingerprint,
        "labels": {"alertname": alertname, "instance": "localhost:9100"}}]}).encode()
    request = urllib.request.Request("http://127.0.0.1:%d/alerts" % port, data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def _wait(predicate, proc, deadline_s=120):
    """Poll until predicate() holds; a deadline only to end a hung run, not a speed assertion."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return predicate()
        time.sleep(0.5)
    return predicate()


@pytest.mark.slow
def test_alert_storm_runs_diagnose_once(tmp_path, collections_path):
    rulebook_cmd = BIN / "ansible-rulebook"
    java = shutil.which("java")
    if not rulebook_cmd.exists() or java is None:
        pytest.fail("ansible-rulebook (pip) and Java 17 are needed for this test")
    port = _free_port()
    rulebook = yaml.safe_load((REPO / "extensions" / "eda" / "rulebooks" / "alertmanager.yml").read_text())
    rulebook[0]["sources"][0]["sre.runbooks.alertmanager"]["port"] = port
    for rule in rulebook[0]["rules"]:
        for action in rule["actions"]:
            action["run_playbook"]["name"] = str(FIXTURE)
            # which rule started the run (the record keeps the extra vars)
            action["run_playbook"]["extra_vars"]["rule_under_test"] = rule["name"]
    (tmp_path / "rulebook.yml").write_text(yaml.safe_dump(rulebook))
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    incidents = tmp_path / "incidents"
    env = dict(os.environ, SRE_INCIDENT_DIR=str(incidents), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(collections_path),
               # ansible.cfg's lab vault id is relative to the repository; ansible-rulebook runs the
               # playbook from a copy of the project elsewhere: name the file by its absolute path.
               ANSIBLE_VAULT_IDENTITY_LIST="lab@%s" % (REPO / "inventories" / "lab" / ".vault-pass"),
               JAVA_HOME=str(Path(os.path.realpath(java)).parents[1]),
               PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
    log = open(tmp_path / "rulebook.log", "w")
    proc = subprocess.Popen([str(rulebook_cmd), "--rulebook", str(tmp_path / "rulebook.yml"),
                             "-i", str(tmp_path / "hosts.yml"), "-v"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(tmp_path))
    try:
        up = _wait(lambda: _port_open(port), proc, 90)
        assert up, (tmp_path / "rulebook.log").read_text()[-3000:]
        for _alert in range(3):  # the storm: one incident, alerting three times
            assert _post(port, "PostgresTooManyConnections", "fp-storm") == 202

        def records(fp):
            return [p for p in incidents.glob("*.json") if p.name.endswith("-%s.json" % fp)] if incidents.is_dir() else []

        assert _wait(lambda: records("fp-storm"), proc), (tmp_path / "rulebook.log").read_text()[-3000:]
        assert _post(port, "HostHighMemory", "fp-sentinel") == 202
        assert _wait(lambda: records("fp-sentinel"), proc), (tmp_path / "rulebook.log").read_text()[-3000:]
        assert len(records("fp-storm")) == 1, "the alert storm triggered more than one run"
        record = json.loads(records("fp-storm")[0].read_text())
        assert record["parameters"]["sre_alert"] == "PostgresTooManyConnections"
        assert record["parameters"]["rule_under_test"] == "db_connections: diagnose"
        # an alert no runbook names (a rule a user added to Prometheus) starts the triage
        assert _post(port, "DiskAlmostFull", "fp-unnamed") == 202
        assert _wait(lambda: records("fp-unnamed"), proc), (tmp_path / "rulebook.log").read_text()[-3000:]
        unnamed = json.loads(records("fp-unnamed")[0].read_text())
        assert unnamed["parameters"]["rule_under_test"] == "triage: diagnose"
        assert unnamed["parameters"]["sre_alert"] == "DiskAlmostFull" and "sre_confirm" not in unnamed["parameters"]
        assert record["hosts"] == ["localhost"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _port_open(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
