# SPDX-License-Identifier: GPL-3.0-or-later
# sre-lane: local (no lab: the jobs run on this machine; "docker" is only a collection name here)
"""AWX job templates the way AWX runs them, on this machine alone (no lab): a fixture job through ansible-runner,
every diagnose template on a bare localhost, the apply playbook (syntax and the data it would send) and the EE
definition. The same templates against the lab twins: test_awx_jobs.py."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from awx_support import BIN, DIAGNOSE, GENERATED, REPO, local_inventory, run_job, survey_defaults
from playbook_runner import run_playbook

FIXTURE = REPO / "tests" / "integration" / "incident" / "fixtures" / "sample_diagnose.yml"


def test_fixture_job_through_ansible_runner(tmp_path, collections_path):
    extravars = {"awx_job_id": 4711, "awx_user_name": "alice", "awx_job_template_name": "sample diagnose",
                 "sre_db_password": "not-used-here", "sre_db_name": "appdb"}
    runner, records = run_job(tmp_path, FIXTURE, extravars, local_inventory(tmp_path))
    assert runner.status == "successful", runner.stdout.read()
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["operator"]["user"] == "alice" and record["operator"]["awx_job_id"] == 4711
    assert record["check_mode"] is True and record["severity"] == "P1"


def test_apply_playbook_syntax_and_data(tmp_path, collections_path):
    # inventory=None: ansible.cfg's, as AWX's project sync would see it (the play runs on localhost)
    apply = {"inventory": None, "incident_dir": tmp_path / "incidents"}
    proc = run_playbook(REPO / "awx" / "apply.yml", args=["--syntax-check"], **apply)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dump = tmp_path / "awx.json"
    proc = run_playbook(REPO / "awx" / "apply.yml", tmp_path=tmp_path, extra_vars={"sre_awx_dump": str(dump)}, **apply)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sent = json.loads(dump.read_text())
    assert sent["job_templates"] == GENERATED
    workflows = yaml.safe_load((REPO / "awx" / "generated" / "workflow_job_templates.yml").read_text())
    assert sent["workflows"] == workflows["sre_awx_workflows"]
    assert not (tmp_path / "incidents").exists(), "the apply playbook is tooling: no incident record"


def test_execution_environment_builds_a_context(tmp_path):
    builder = BIN / "ansible-builder"
    if not builder.exists():
        pytest.fail("ansible-builder is not installed in the test virtualenv (pip install ansible-builder)")
    context = tmp_path / "context"
    proc = subprocess.run([str(builder), "create", "--file", "execution-environment.yml", "--context", str(context),
                           "--output-filename", "Containerfile"], capture_output=True, text=True, cwd=str(REPO), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (context / "Containerfile").read_text()
    assert "ARG EE_BASE_IMAGE=\"quay.io/centos/centos:stream9\"" in containerfile
    assert "ansible-galaxy collection install" in containerfile
    assert "postgresql-client [platform:dpkg]" in (context / "_build" / "bindep.txt").read_text()
    assert "psycopg2-binary" in (context / "_build" / "requirements.txt").read_text()
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert {c["name"] for c in galaxy["collections"]} >= {"community.postgresql", "community.docker"}


PRESENT = [t for t in DIAGNOSE if (REPO / t["playbook"]).exists()]


@pytest.mark.parametrize("template", PRESENT, ids=[t["name"].split()[1] for t in PRESENT])
def test_diagnose_template_on_localhost_reports_without_crashing(template, tmp_path, collections_path):
    """Without the lab: a bare localhost has no app; diagnose must still finish and leave a record."""
    runner, records = run_job(tmp_path, REPO / template["playbook"], survey_defaults(template), local_inventory(tmp_path))
    output = runner.stdout.read()
    assert runner.status == "successful", output[-4000:]
    assert "Traceback" not in output
    assert records, "no incident record:\n" + output[-4000:]
    record = json.loads(records[-1].read_text())
    assert record["check_mode"] is True and record["counts"]["actions"] == 0
