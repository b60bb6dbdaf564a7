# SPDX-License-Identifier: GPL-3.0-or-later
"""Nothing changes without confirmation (issue 11): every changing playbook, run against the whole lab with
sre_confirm=no, shows its plan and reports changed=0 on every host; with the apps broken first, an
unconfirmed app_down remediate leaves them broken."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest
import yaml

from canary_support import LabSampler, lab_canaries, leaks_in
from playbook_runner import LAB_INVENTORY, REPO, lab_marks, run_playbook

LAB = REPO / "lab"
pytestmark = lab_marks()
HOSTS = {"lab-systemd", "lab-sme", "lab-pm2", "lab-compose", "lab-fly"}

# Every playbook that changes something, with the answers that give it something to do on the lab
# (so the plan has steps), and the hosts it applies to there.
CHANGING = {
    "app_down_remediate": ({}, HOSTS),
    "backup_remediate": ({}, {"lab-systemd"}),
    "data_integrity_remediate": ({}, {"lab-systemd"}),
    "data_integrity_rollback": ({}, {"lab-systemd"}),
    "db_connections_remediate": ({"db_connections_idle_after": "0s", "db_connections_restart_app": True},
                                 {"lab-systemd"}),
    "db_restore": ({}, {"lab-systemd"}),
    "db_restore_retention": ({"db_restore_retention_days": 0}, {"lab-systemd"}),
    "db_restore_swap_back": ({}, {"lab-systemd"}),
    "deploy": ({"target_deploy_release": "HEAD"}, HOSTS - {"lab-compose"}),
    "email_remediate": ({"email_to": "ops@ferreteria.test"}, {"lab-compose"}),
    "error_rate_remediate": ({"error_rate_handover": "db_connections", "db_connections_idle_after": "0s"},
                             {"lab-systemd", "lab-sme"}),
    "failed_jobs_remediate": ({}, {"lab-pm2"}),
    "deploy_failure_rollback": ({"deploy_failure_rollback_when_healthy": True}, HOSTS),
    "high_resource_remediate": ({"high_resource_restart": True, "high_resource_swap_mb": 64}, HOSTS),
    "high_resource_rollback": ({}, HOSTS),
    "login_remediate": ({"login_delete_expired_sessions": True}, {"lab-systemd"}),
    "rate_limit_remediate": ({"rate_limit_zone": "api", "rate_limit_rate": "20r/s"}, {"lab-pm2"}),
    "rate_limit_rollback": ({}, {"lab-pm2"}),
    "read_only_remediate": ({"read_only_terminate_writers": True}, {"lab-systemd", "lab-sme"}),
    "read_only_rollback": ({}, {"lab-systemd"}),
    "secrets_remediate": ({}, HOSTS),
    "secrets_rollback": ({}, HOSTS - {"lab-fly"}),
    "slow_queries_remediate": ({}, {"lab-systemd"}),
    "tls_cert_remediate": ({"tls_cert_renew_days": 100000}, HOSTS),
}


# Refused when there is nothing of its own to undo (no restore recorded): the refusal changes nothing either.
REFUSES_WHEN_NOTHING_TO_DO = {"db_restore_swap_back": "Nothing was changed"}
# Refused on a host where there is nothing to undo (no backup of the env file: no remediate changed it yet), else
# planned: which one depends on what earlier tests left in the lab; either way nothing changes.
MAY_HAVE_NOTHING_TO_DO = {"secrets_rollback": "nothing was changed"}
# Nothing recorded to undo on a host (no remediate changed anything there): says so and changes nothing, rc 0.
NOTHING_RECORDED = {"high_resource_rollback": "Nothing to roll back", "rate_limit_rollback": "Nothing to roll back"}


def web_image():
    """The compose web image the lab runs (a release compose's deploy accepts)."""
    out = subprocess.run([str(LAB / "build.sh"), "--print-env"], capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.split() if "=" in line)["SRE_LAB_WEB_IMAGE"].strip("'\"")


def test_every_changing_playbook_is_listed():
    # read-only: the playbooks whose job template runs in check mode (every *_diagnose, and the triage)
    generated = yaml.safe_load((REPO / "awx" / "generated" / "job_templates.yml").read_text())["sre_awx_job_templates"]
    read_only = {Path(t["playbook"]).stem for t in generated if t["job_type"] == "check"}
    assert {"triage", "app_down_diagnose"} <= read_only
    on_disk = {p.stem for p in (REPO / "playbooks").glob("*.yml")} - read_only
    assert on_disk == set(CHANGING)
    assert all(CHANGING[name][1] == HOSTS for name in UNANSWERED)


def lab(*args):
    proc = subprocess.run([str(LAB / args[0]), *args[1:]], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def health():
    """PART -> HEALTH from lab/status.sh."""
    rows = [line.split() for line in lab("status.sh").splitlines()[1:] if line.strip()]
    return {row[0]: row[-1] for row in rows}


# Every changing playbook is run answered "no" (at -vvvv, with the canaries). Unanswered (the inventory's own
# sre_confirm: false) it goes through the same guard (one role, one parse of sre_confirm: tests/unit; the "no" runs
# show every playbook reaches it), so that case runs once, where it meets every target kind at once: a remediate that
# applies to all five twins (a rollback over the five, the second case until the test budget ran out, took 30 s of
# the lab lane and proved no more: its "no" run above reaches the same guard).
UNANSWERED = ("app_down_remediate",)
CASES = ([(name, "no") for name in sorted(CHANGING)] + [(name, None) for name in UNANSWERED])


@pytest.mark.parametrize(("name", "answer"), CASES, ids=["%s-%s" % (answer, name) for name, answer in CASES])
def test_unconfirmed_changes_nothing_and_shows_the_plan(tmp_path, name, answer):
    variables, hosts = CHANGING[name]
    extra = dict(variables)
    if answer is not None:
        extra["sre_confirm"] = answer
    # answered "no": also the canary part of issue 11 for every changing playbook, at -vvvv (the lab's own
    # secrets in no output, no record, no process list of the control node or of a lab host)
    canaries = lab_canaries() if answer == "no" else {}
    with LabSampler(canaries) if canaries else contextlib.nullcontext() as sampler:
        res = run_playbook(name, tmp_path=tmp_path, inventory=LAB_INVENTORY, extra_vars=extra,
                           limit=",".join(sorted(hosts)), timeout=600, verbosity=4 if canaries else 0)
    if canaries:
        leaks = (leaks_in(res.output, canaries, "the output") + leaks_in(res.incident_text(), canaries, "the records")
                 + sampler.leaks())
        assert not leaks, leaks
    if name in MAY_HAVE_NOTHING_TO_DO and res.rc != 0:
        # one host at a time (serial 1): the first refusal ends the play, the hosts after it never start
        assert MAY_HAVE_NOTHING_TO_DO[name] in " ".join(res.output.split()).lower(), res.output
        assert res.recap and set(res.recap) <= hosts and all(res.changed(h) == 0 for h in res.recap), res.output
        return
    assert set(res.recap) == hosts, res.output
    assert {h: res.changed(h) for h in hosts} == {h: 0 for h in hosts}, res.output
    if name in NOTHING_RECORDED and NOTHING_RECORDED[name] in res.output and "Plan (" not in res.output:
        assert res.rc == 0, res.output
        return
    if name in REFUSES_WHEN_NOTHING_TO_DO:
        assert res.rc != 0 and REFUSES_WHEN_NOTHING_TO_DO[name] in res.output, res.output
        return
    assert res.rc == 0, res.output
    assert "Plan (" in res.output and "Not confirmed: nothing is changed" in res.output, res.output


def test_unconfirmed_compose_deploy_changes_nothing(tmp_path):
    res = run_playbook("deploy", tmp_path=tmp_path, inventory=LAB_INVENTORY, limit="lab-compose", timeout=600,
                       extra_vars={"sre_confirm": "no", "target_deploy_release": web_image()})
    assert res.rc == 0 and res.changed("lab-compose") == 0, res.output
    assert "Plan (" in res.output and "Not confirmed: nothing is changed" in res.output, res.output


def test_broken_apps_stay_broken_without_confirmation(tmp_path):
    before = health()
    assert before["saasresto"] == before["cookcam-api"] == before["ferreteria/web"] == "healthy", before
    try:
        lab("break.sh", "stop-app")
        lab("break.sh", "stop-pm2")
        lab("break.sh", "stop-compose-web")
        res = run_playbook("app_down_remediate", tmp_path=tmp_path, inventory=LAB_INVENTORY,
                           extra_vars={"sre_confirm": "no"}, limit="lab-systemd,lab-pm2,lab-compose", timeout=600)
        assert {h: res.changed(h) for h in res.recap} == {"lab-systemd": 0, "lab-pm2": 0, "lab-compose": 0}, res.output
        assert res.output.count("Not confirmed: nothing is changed") == 3, res.output
        after = health()
        assert after["saasresto"] == after["cookcam-api"] == after["ferreteria/web"] == "DOWN", after
    finally:
        lab("break.sh", "heal")
        lab("up.sh")


def test_a_bad_answer_is_refused_before_anything(tmp_path):
    res = run_playbook("app_down_remediate", tmp_path=tmp_path, inventory=LAB_INVENTORY,
                       extra_vars={"sre_confirm": "maybe"}, limit="lab-fly", timeout=600)
    assert res.rc != 0 and res.changed("lab-fly") == 0, res.output
    assert "'maybe' is not an answer: use yes or no" in res.output, res.output
