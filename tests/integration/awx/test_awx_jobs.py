# SPDX-License-Identifier: GPL-3.0-or-later
"""Every diagnose job template the way AWX runs it (ansible-runner, a private data directory, survey answers in
env/extravars) against the lab twins, at -vvvv with the canaries. The templates on this machine alone, the apply
playbook and the EE definition: test_awx_local.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from awx_support import DIAGNOSE, REPO, run_job, survey_defaults
from canary_support import LabSampler, lab_canaries, leaks_in, runner_events_text


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


@pytest.mark.docker
@pytest.mark.parametrize("template", DIAGNOSE, ids=[t["name"].split()[1] for t in DIAGNOSE])
def test_diagnose_template_runs_against_the_lab(template, tmp_path, collections_path):
    """Every diagnose job template against every lab twin its runbook applies to (issue 12: nothing but the lab
    inventory and the survey's defaults, --check, changed=0 and failed=0 on every host, no finding that says a
    feature the twin has is not configured or not found), the AWX way (ansible-runner, survey answers, job events),
    at -vvvv with the canaries (issue 11: the lab's own secrets are in no job event, in no output, in no record and
    in no process list of the control node or of a lab host while the job runs). One job over all its twins, as
    the template's `-l lab` would."""
    if not lab_containers():
        pytest.skip("lab not running: `docker ps` shows no sre-lab-* containers (make lab-up)")
    playbook = REPO / template["playbook"]
    assert playbook.exists(), "%s is in the catalog but missing" % template["playbook"]
    runbook = template["playbook"].rsplit("/", 1)[-1][:-len("_diagnose.yml")]
    hosts = set(APPLIES.get(runbook) or EVERY_TWIN)
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
    unconfigured = [f for f in record.get("findings") or [] if NOT_CONFIGURED.search(own_words(f))]
    assert not unconfigured, unconfigured
    events = runner_events_text(tmp_path / "pdd")
    assert events.count('"event": "runner_on_ok"') > 5, "no job events to check"
    leaks = (leaks_in(stdout, canaries, "the job output") + leaks_in(events, canaries, "the job events")
             + leaks_in("".join(r.read_text() for r in records), canaries, "the incident records") + sampler.leaks())
    assert not leaks, leaks
