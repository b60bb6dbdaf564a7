# SPDX-License-Identifier: GPL-3.0-or-later
"""AWX job templates the way AWX runs them: ansible-runner, a private data directory, survey answers in
env/extravars. Plus the apply playbook (syntax and the data it would send) and the EE definition."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from canary_support import LabSampler, lab_canaries, leaks_in, runner_events_text, runner_job
from playbook_runner import run_playbook

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
GENERATED = yaml.safe_load((REPO / "awx" / "generated" / "job_templates.yml").read_text())["sre_awx_job_templates"]
FIXTURE = REPO / "tests" / "integration" / "incident" / "fixtures" / "sample_diagnose.yml"


def survey_defaults(template):
    """What AWX puts in extra vars when every question keeps its default."""
    answers = {}
    for question in template["survey_spec"]["spec"]:
        if question.get("default") not in (None, ""):
            answers[question["variable"]] = question["default"]
    return answers


def lab_containers():
    if shutil.which("docker") is None:
        return []
    proc = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True, check=False)
    return [name for name in proc.stdout.split() if name.startswith("sre-lab-")]


def run_job(tmp_path, playbook, extravars, inventory, check=True, extra_env=None, limit=None, verbosity=0):
    """Run like AWX (canary_support.runner_job: private_data_dir/env/{extravars,envvars,cmdline}, project = the
    repository); returns the runner and the incident records (JSON files)."""
    runner, dummy, dummy = runner_job(tmp_path, playbook, extravars, limit=limit, verbosity=verbosity, check=check,
                                      inventory=inventory, extra_env=extra_env)
    return runner, sorted((tmp_path / "incidents").glob("*.json"))


def local_inventory(tmp_path):
    path = tmp_path / "hosts.ini"
    (tmp_path / "backups").mkdir(exist_ok=True)
    path.write_text("[all]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n"
                    "[all:vars]\nsre_target_kind=compose\nsre_compose_project=sre-test-no-such-project\nsre_app_name=web\nsre_app_port=1\n"
                    "sre_backup_dir=%s\nsre_db_host=127.0.0.1\nsre_db_port=1\nsre_db_name=appdb\n"
                    % (sys.executable, tmp_path / "backups"))
    return path


def test_fixture_job_through_ansible_runner(tmp_path, collections_path):
    extravars = {"awx_job_id": 4711, "awx_user_name": "alice", "awx_job_template_name": "sample diagnose",
                 "sre_db_password": "not-used-here", "sre_db_name": "appdb"}
    runner, records = run_job(tmp_path, FIXTURE, extravars, local_inventory(tmp_path))
    assert runner.status == "successful", runner.stdout.read()
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["operator"]["user"] == "alice" and record["operator"]["awx_job_id"] == 4711
    assert record["check_mode"] is True and record["severity"] == "P1"


DIAGNOSE = [t for t in GENERATED if t["job_type"] == "check"]
# the lab twins each runbook applies to (molecule/_drills/drills.yml): a job template's limit, as in AWX
APPLIES = yaml.safe_load((REPO / "molecule" / "_drills" / "drills.yml").read_text())["applies"]


@pytest.mark.docker
@pytest.mark.parametrize("template", DIAGNOSE, ids=[t["name"].split()[1] for t in DIAGNOSE])
def test_diagnose_template_runs_against_the_lab(template, tmp_path, collections_path):
    if not lab_containers():
        pytest.skip("lab not running: `docker ps` shows no sre-lab-* containers (make lab-up)")
    playbook = REPO / template["playbook"]
    assert playbook.exists(), "%s is in the catalog but missing" % template["playbook"]
    runbook = template["playbook"].rsplit("/", 1)[-1][:-len("_diagnose.yml")]
    # one twin per template, the next one in turn, so the templates together meet every target kind: every
    # diagnose on every twin it applies to is test_twins_diagnose's; here it is the AWX shape (survey answers,
    # ansible-runner, job events) and the canaries at -vvvv
    hosts = sorted(APPLIES.get(runbook, []))
    limit = hosts[DIAGNOSE.index(template) % len(hosts)] if hosts else None
    # the canary part of issue 11: at -vvvv, the lab's own secrets are in no job event (what AWX keeps), in no
    # output, in no record and in no process list of the control node or of a lab host while the job runs
    canaries = lab_canaries()
    with LabSampler(canaries) as sampler:
        runner, records = run_job(tmp_path, playbook, survey_defaults(template), REPO / "inventories" / "lab",
                                  limit=limit, verbosity=4)
    stdout = runner.stdout.read()
    assert runner.status == "successful", stdout[-4000:]
    assert records, "no incident record"
    record = json.loads(records[-1].read_text())
    assert record["check_mode"] is True and record["counts"]["actions"] == 0
    events = runner_events_text(tmp_path / "pdd")
    assert events.count('"event": "runner_on_ok"') > 5, "no job events to check"
    leaks = (leaks_in(stdout, canaries, "the job output") + leaks_in(events, canaries, "the job events")
             + leaks_in("".join(r.read_text() for r in records), canaries, "the incident records") + sampler.leaks())
    assert not leaks, leaks


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
