# SPDX-License-Identifier: GPL-3.0-or-later
"""Every diagnose job template the way AWX runs it (ansible-runner, a private data directory, survey answers in
env/extravars) against the lab twins, at -vvvv with the canaries. The templates on this machine alone, the apply
playbook and the EE definition: test_awx_local.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from awx_support import DIAGNOSE, REPO, run_job, survey_defaults
from canary_support import LabSampler, lab_canaries, leaks_in, runner_events_text


def require_lab():
    """Skip when no lab runs (by hand). Deliberate: make test sets SRE_LAB_REQUIRED=1, and tests/conftest.py then fails
    the session on any skip, so in CI a missing lab is a failure, never a pass."""
    if not lab_containers():
        pytest.skip("lab not running: `docker ps` shows no sre-lab-* containers (make lab-up)")


def lab_containers():
    if shutil.which("docker") is None:
        return []
    proc = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True, check=False)
    return [name for name in proc.stdout.split() if name.startswith("sre-lab-")]


# the lab twins each runbook applies to (molecule/_drills/drills.yml `applies`, the one list)
APPLIES = yaml.safe_load((REPO / "molecule" / "_drills" / "drills.yml").read_text())["applies"]
# a runbook with no fault to drill (read_only: a mode of the database) runs on every twin
EVERY_TWIN = sorted({host for hosts in APPLIES.values() for host in hosts})
# findings that mean "you did not tell me about this app" rather than a state of the app
NOT_CONFIGURED = re.compile(r"not configured|is not set|does not exist|not found|no such (file|table|column)"
                            r"|unknown (table|column)|nothing to (check|diagnose)", re.I)


def own_words(finding):
    """A finding's own words: the app's log lines it quotes are the app's, not the runbook's (an earlier drill's
    "required secret JWT_SECRET is not set" in the journal says nothing about the inventory)."""
    if str(finding.get("code", "")).endswith("_errors"):
        return str(finding.get("code"))
    message = str(finding.get("message", "")).split(" last: ", 1)[0]
    return json.dumps(dict(finding, message=message))


def assert_configured_and_no_leak(record, records, stdout, tmp_path, canaries, sampler, min_events):
    """No finding says a feature the twin has is not configured; the job has events; the lab's secrets are in no
    output, job event, record or process list."""
    unconfigured = [f for f in record.get("findings") or [] if NOT_CONFIGURED.search(own_words(f))]
    assert not unconfigured, unconfigured
    events = runner_events_text(tmp_path / "pdd")
    assert events.count('"event": "runner_on_ok"') > min_events, "no job events to check"
    leaks = (leaks_in(stdout, canaries, "the job output") + leaks_in(events, canaries, "the job events")
             + leaks_in("".join(r.read_text() for r in records), canaries, "the incident records") + sampler.leaks())
    assert not leaks, leaks


def template_runbook(template):
    return template["playbook"].rsplit("/", 1)[-1][:-len("_diagnose.yml")]


# The triage job (test_triage_names_the_fault_of_each_twin) runs, the AWX way at -vvvv with the canaries, the diagnose
# of every runbook each twin lists in sre_runbooks (= drills.yml applies, tests/unit/test_drills.py), over all five
# twins: those diagnoses are not run a second time here, one template each. The others (read_only: a mode of the
# database, on every twin) are.
TRIAGED = {runbook for app in ("saasresto", "sme_booking", "cookcam", "ferreteria", "hotdash")
           for runbook in yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / ("%s.yml" % app)).read_text())
           ["sre_runbooks"]}
LAB_DIAGNOSE = [t for t in DIAGNOSE if t["playbook"] != "playbooks/triage.yml" and template_runbook(t) not in TRIAGED]


@pytest.mark.docker
@pytest.mark.parametrize("template", LAB_DIAGNOSE, ids=[t["name"].split()[1] for t in LAB_DIAGNOSE])
def test_diagnose_template_runs_against_the_lab(template, tmp_path, collections_path):
    """Every diagnose job template against every lab twin its runbook applies to (issue 12: nothing but the lab
    inventory and the survey's defaults, --check, changed=0 and failed=0 on every host, no finding that says a
    feature the twin has is not configured or not found), the AWX way (ansible-runner, survey answers, job events),
    at -vvvv with the canaries (issue 11: the lab's own secrets are in no job event, in no output, in no record and
    in no process list of the control node or of a lab host while the job runs). One job over all its twins, as
    the template's `-l lab` would."""
    require_lab()
    playbook = REPO / template["playbook"]
    assert playbook.exists(), "%s is in the catalog but missing" % template["playbook"]
    hosts = set(APPLIES.get(template_runbook(template)) or EVERY_TWIN)
    canaries = lab_canaries()
    with LabSampler(canaries) as sampler:
        runner, records = run_job(tmp_path, playbook, survey_defaults(template), REPO / "inventories" / "lab",
                                  limit=",".join(sorted(hosts)), verbosity=4,
                                  extra_env={"FAKE_FLY_STATE": str(tmp_path / "fly" / "state.json")})
    stdout = runner.stdout.read()
    assert runner.status == "successful", stdout[-4000:]
    stats = runner.stats or {}
    ran = set(stats.get("ok", {})) | set(stats.get("failures", {})) | set(stats.get("dark", {}))
    assert ran == hosts, (sorted(ran), stdout[-4000:])
    assert {h: (stats.get("changed", {}).get(h, 0), stats.get("failures", {}).get(h, 0)) for h in hosts} == \
        {h: (0, 0) for h in hosts}, stdout[-4000:]
    assert records, "no incident record"
    record = json.loads(records[-1].read_text())
    assert record["check_mode"] is True and record["counts"]["actions"] == 0
    assert_configured_and_no_leak(record, records, stdout, tmp_path, canaries, sampler, min_events=5)


DRILLS = yaml.safe_load((REPO / "molecule" / "_drills" / "drills.yml").read_text())["drills"]
# one fault per twin, all at once, from drills.yml (the same inject and heal as the drills); faults whose heal is
# cheap (a start, a DELETE, a FAKE flag), five runbooks' causes
TRIAGE_FAULTS = {"lab-systemd": "drill_app_down_saasresto", "lab-sme": "drill_data_integrity_sme_booking",
                 "lab-pm2": "drill_failed_jobs_cookcam", "lab-compose": "drill_app_down_ferreteria_db",
                 "lab-fly": "drill_high_resource_hotdash"}
# where a drill's shell runs: the twin's container (the lab inventory's docker connection), else this machine
LAB_HOSTS = {host: spec for group in yaml.safe_load((REPO / "inventories" / "lab" / "hosts.yml").read_text())
             ["all"]["children"]["lab"]["children"].values() for host, spec in group["hosts"].items()}
CONTAINER = {host: spec["ansible_host"] for host, spec in LAB_HOSTS.items()
             if spec.get("ansible_connection") == "community.docker.docker"}


def drill_shell(twin, text, env):
    """A drill's shell snippet where the drill runs it: in the twin's container, or on this machine."""
    argv = (["docker", "exec", "-i", CONTAINER[twin], "bash", "-c", text] if twin in CONTAINER
            else ["bash", "-c", text])
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=120, cwd=str(REPO))


@pytest.mark.docker
def test_triage_names_the_fault_of_each_twin(tmp_path, collections_path):
    """Issue 14's triage, the AWX way (its job template, survey defaults, -vvvv, the canaries): with a different fault
    injected on each of the five twins at once (drills.yml's own inject), one triage job over the lab names, for
    every twin, the drill's runbook as the top cause and its next command, in the output and in the incident
    record; --check, changed=0 and failed=0 on every host; no secret anywhere."""
    require_lab()
    (template,) = [t for t in DIAGNOSE if t["playbook"] == "playbooks/triage.yml"]
    assert TRIAGED == set(APPLIES) and LAB_DIAGNOSE, "every runbook a twin applies to is diagnosed by the triage job"
    fly_state = tmp_path / "fly" / "state.json"
    env = dict(os.environ, SRE_LAB_ROOT=str(REPO / "lab"), SRE_COMPOSE_PROJECT_DIR=str(REPO / "lab" / "compose"),
               FAKE_FLY_STATE=str(fly_state))
    canaries = lab_canaries()
    try:
        for twin, drill in TRIAGE_FAULTS.items():
            drill_shell(twin, DRILLS[drill]["heal"], env)
            proc = drill_shell(twin, DRILLS[drill]["inject"], env)
            assert proc.returncode == 0, (drill, proc.stdout + proc.stderr)
            assert drill_shell(twin, DRILLS[drill]["present"], env).returncode == 0, "%s: no fault after inject" % drill
        with LabSampler(canaries) as sampler:
            runner, records = run_job(tmp_path, REPO / template["playbook"], survey_defaults(template),
                                      REPO / "inventories" / "lab", limit=",".join(sorted(TRIAGE_FAULTS)), verbosity=4,
                                      extra_env={"FAKE_FLY_STATE": str(fly_state)})
        stdout = runner.stdout.read()
    finally:
        for twin, drill in TRIAGE_FAULTS.items():
            drill_shell(twin, DRILLS[drill]["heal"], env)
    assert runner.status == "successful", stdout[-4000:]
    stats = runner.stats or {}
    ran = set(stats.get("ok", {})) | set(stats.get("failures", {})) | set(stats.get("dark", {}))
    assert ran == set(TRIAGE_FAULTS), (sorted(ran), stdout[-4000:])
    assert {h: (stats.get("changed", {}).get(h, 0), stats.get("failures", {}).get(h, 0)) for h in TRIAGE_FAULTS} == \
        {h: (0, 0) for h in TRIAGE_FAULTS}, stdout[-4000:]
    assert records, "no incident record"
    record = json.loads(records[-1].read_text())
    assert record["runbook"] == "triage" and record["check_mode"] is True and record["counts"]["actions"] == 0
    tops = {twin: (record["triage"][twin]["top_cause"] or {}).get("runbook") for twin in TRIAGE_FAULTS}
    assert tops == {twin: DRILLS[drill]["runbook"] for twin, drill in TRIAGE_FAULTS.items()}, \
        {twin: record["triage"][twin]["causes"][:3] for twin in TRIAGE_FAULTS}
    for twin, drill in TRIAGE_FAULTS.items():
        phase = "rollback" if DRILLS[drill]["runbook"] == "deploy_failure" else "remediate"
        command = "ansible-playbook playbooks/%s_%s.yml -l %s -e sre_confirm=yes" % (DRILLS[drill]["runbook"], phase, twin)
        assert record["triage"][twin]["next_command"] == command and record["causes"][twin]["next"] == command
        assert record["causes"][twin]["runbook"] == DRILLS[drill]["runbook"]
        assert "Next: " + command in stdout, twin
    # the drill's own code is the evidence the triage ranks first for the runbooks whose diagnose names it
    assert record["triage"]["lab-sme"]["top_cause"]["code"] == DRILLS["drill_data_integrity_sme_booking"]["diagnose_code"]
    # every diagnose of every twin ran and none failed, but on the twin whose database the fault stopped: there
    # the database diagnoses stop with their one message (start the db service), kept as gaps, and the rest ran
    for twin in TRIAGE_FAULTS:
        diagnosed = record["triage"][twin]["per_runbook"]
        assert {p["runbook"] for p in diagnosed} == {r for r, twins in APPLIES.items() if twin in twins}, twin
        failed = {p["runbook"] for p in diagnosed if p["worst"] == "failed"}
        gaps = {g["runbook"]: g["message"] for g in record["triage"][twin]["gaps"] if g["code"] == "diagnose_failed"}
        assert failed == set(gaps), (twin, gaps)
        if twin == "lab-compose":
            assert failed <= {"db_connections", "slow_queries", "backup", "data_integrity", "high_resource"}, gaps
            assert all("docker compose up -d db" in m for m in gaps.values()), gaps
        else:
            assert not failed, (twin, gaps)
    assert_configured_and_no_leak(record, records, stdout, tmp_path, canaries, sampler, min_events=100)
