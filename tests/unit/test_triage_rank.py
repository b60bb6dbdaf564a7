# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The triage ranking (sre.runbooks.triage_rank): findings attributed to the runbook that prefixes the variable,
root causes before process state before symptoms, evidence gaps never a cause, the next command."""

from __future__ import annotations

import sys

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.sre.runbooks.plugins.filter.triage_rank import FilterModule  # noqa: E402

RANK = FilterModule().filters()["triage_rank"]
ALL = ["app_down", "deploy_failure", "secrets", "high_resource", "db_connections", "error_rate", "tls_cert",
       "data_integrity", "backup"]


def f(severity, code, message="m"):
    return {"severity": severity, "code": code, "message": message}


class Exploding(dict):
    """A host's variables where one role default does not template outside its role."""

    def __getitem__(self, key):
        if key == "app_down_port":
            raise RuntimeError("'sre_app_port' is undefined")
        return dict.__getitem__(self, key)


def test_a_missing_secret_outranks_the_crash_loop_it_causes_and_the_failing_health():
    hv = Exploding({
        "app_down_findings": [f("critical", "app_crash_loop", "restarting"), f("critical", "health_failed", "503")],
        "app_down_port": 3000,
        "secrets_findings": [f("critical", "secrets_missing", "SESSION_SECRET is not set")],
        "backup_newest": {"changed": False, "findings": []},
        "target_status": {"findings": [f("critical", "app_stopped")]},  # the target role is no runbook
        "inventory_hostname": "lab-fly",
    })
    r = RANK(hv, ALL, "lab-fly")
    assert r["top"]["runbook"] == "secrets" and r["top"]["code"] == "secrets_missing"
    assert r["top"]["tier"] == "root cause" and r["top"]["found_by"] == "secrets"
    assert r["next_command"] == "ansible-playbook playbooks/secrets_remediate.yml -l lab-fly -e sre_confirm=yes"
    assert [c["code"] for c in r["causes"]] == ["secrets_missing", "app_crash_loop", "health_failed"]
    per = {p["runbook"]: p for p in r["per_runbook"]}
    assert per["app_down"]["worst"] == "critical" and per["backup"]["worst"] == "ok"
    assert [p["runbook"] for p in r["per_runbook"]] == ALL


def test_a_code_found_by_one_runbook_names_the_runbook_that_fixes_it():
    r = RANK({"app_down_findings": [f("warning", "oom_kills"), f("critical", "app_stopped")]}, ALL, "h")
    assert r["top"]["runbook"] == "high_resource" and r["top"]["found_by"] == "app_down"
    r = RANK({"deploy_failure_findings": [f("critical", "release_unhealthy")]}, ALL, "h")
    assert r["next_command"] == "ansible-playbook playbooks/deploy_failure_rollback.yml -l h -e sre_confirm=yes"


def test_error_rate_hands_its_symptom_to_the_runbook_of_its_likely_cause():
    hv = {"error_rate_diagnosis": {"findings": [f("warning", "error_rate_over_threshold")],
                                   "next_runbook": [{"runbook": "db_connections", "reason": "pool"}]},
          "error_rate_next_runbook": [{"runbook": "db_connections", "reason": "pool"}]}
    r = RANK(hv, ALL, "h")
    assert r["top"]["runbook"] == "db_connections" and r["top"]["found_by"] == "error_rate"
    assert r["top"]["tier"] == "symptom"


def test_gaps_are_never_a_cause_and_a_failed_diagnose_is_a_gap():
    hv = {"error_rate_findings": [f("warning", "no_sources"), f("warning", "source_unavailable")],
          "db_connections_triage": {"findings": [f("info", "idle_sessions")]}}
    r = RANK(hv, ALL, "h", [{"runbook": "tls_cert", "message": "boom"}])
    assert r["top"] is None and r["causes"] == [] and r["next_command"] == ""
    assert [g["code"] for g in r["gaps"]] == ["no_sources", "source_unavailable", "diagnose_failed"]
    per = {p["runbook"]: p for p in r["per_runbook"]}
    assert per["tls_cert"]["worst"] == "failed" and per["db_connections"]["codes"] == ["idle_sessions"]


def test_within_a_tier_severity_then_the_runbook_order_decide_and_duplicates_count_once():
    hv = {"backup_schedule_state": {"findings": [f("warning", "last_run_failed")]},
          "tls_cert_check": {"results": [{"findings": [f("critical", "chain_invalid", "x")]},
                                         {"findings": [f("critical", "chain_invalid", "x")]}]},
          "data_integrity_findings": [f("warning", "orphans", "3 rows")],
          "data_integrity_orphans": {"findings": [f("warning", "orphans", "3 rows")]}}
    r = RANK(hv, ALL, "h", top=2)
    assert [c["runbook"] for c in r["causes"]] == ["tls_cert", "data_integrity"]
    assert {p["runbook"]: p for p in r["per_runbook"]}["data_integrity"]["codes"] == ["orphans"]


def test_while_the_app_is_down_a_chronic_root_cause_ranks_after_the_outage():
    hv = {"login_findings": [f("warning", "expired_sessions", "500 of 1500 sessions have expired")],
          "app_down_findings": [f("critical", "app_stopped", "saasresto is inactive")]}
    r = RANK(hv, ALL + ["login"], "lab-systemd")
    assert [c["code"] for c in r["causes"]] == ["app_stopped", "expired_sessions"]
    assert r["next_command"] == "ansible-playbook playbooks/app_down_remediate.yml -l lab-systemd -e sre_confirm=yes"
    # with nothing down, the chronic one is the cause
    r = RANK({"login_findings": hv["login_findings"]}, ALL + ["login"], "lab-systemd")
    assert r["top"]["code"] == "expired_sessions" and r["top"]["runbook"] == "login"


def test_bad_input_is_one_message():
    with pytest.raises(AnsibleFilterError, match="host's variables"):
        RANK("nope", ALL, "h")
    with pytest.raises(AnsibleFilterError, match="list of runbook names"):
        RANK({}, "app_down", "h")


def test_an_app_stopped_cleanly_is_app_down_and_a_crashing_release_is_deploy_failure():
    stopped = {"app_down_findings": [f("critical", "app_stopped"), f("critical", "health_failed")],
               "deploy_failure_findings": [f("critical", "app_stopped"), f("critical", "release_unhealthy")]}
    assert RANK(stopped, ALL, "h")["top"]["runbook"] == "app_down"
    crashing = {"app_down_findings": [f("critical", "app_crash_loop"), f("critical", "health_failed")],
                "deploy_failure_findings": [f("critical", "app_crash_loop"), f("critical", "release_unhealthy")]}
    assert RANK(crashing, ALL, "h")["top"]["runbook"] == "deploy_failure"
    running_unhealthy = {"deploy_failure_findings": [f("critical", "release_unhealthy"), f("critical", "health_failed")]}
    assert RANK(running_unhealthy, ALL, "h")["top"]["runbook"] == "deploy_failure"


def test_restarts_of_an_app_that_answers_are_no_outage():
    hv = {"login_findings": [f("warning", "expired_sessions")], "app_down_findings": [f("warning", "app_restarts")]}
    r = RANK(hv, ALL + ["login"], "h")
    assert [c["code"] for c in r["causes"]] == ["expired_sessions", "app_restarts"]


def test_a_cause_with_its_own_evidence_beats_a_release_that_only_does_not_answer():
    hv = {"deploy_failure_findings": [f("critical", "app_crash_loop"), f("critical", "release_unhealthy")],
          "secrets_findings": [f("critical", "secrets_missing", "JWT_SECRET is not set")]}
    assert RANK(hv, ALL, "h")["top"]["runbook"] == "secrets"


def test_errors_in_a_log_window_are_no_outage():
    hv = {"app_down_findings": [f("warning", "log_errors", "29 error lines")],
          "backup_newest": {"findings": [f("critical", "truncated", "the newest backup is truncated")]}}
    assert RANK(hv, ALL, "h")["top"]["runbook"] == "backup"


def test_error_rates_likely_cause_names_the_runbook_and_beats_an_unanswering_release():
    hv = {"deploy_failure_findings": [f("critical", "release_unhealthy")],
          "app_down_findings": [f("critical", "health_failed")],
          "error_rate_diagnosis": {"findings": [
              f("critical", "error_rate_over_threshold"),
              dict(f("warning", "likely_cause", "likely cause: pool exhausted (too many connections)"),
                   runbook="db_connections")]}}
    r = RANK(hv, ALL, "h")
    assert (r["top"]["runbook"], r["top"]["code"], r["top"]["found_by"]) == ("db_connections", "likely_cause", "error_rate")
    assert "names" not in r["top"]


def test_an_app_stopped_cleanly_is_started_first_whatever_the_logs_of_the_window_suggest():
    hv = {"app_down_findings": [f("critical", "app_stopped"), f("critical", "health_failed")],
          "error_rate_diagnosis": {"findings": [dict(f("warning", "likely_cause"), runbook="db_connections")]}}
    assert RANK(hv, ALL, "h")["top"]["runbook"] == "app_down"


def test_failing_webhooks_explain_the_error_rate_they_make():
    hv = {"error_rate_diagnosis": {"findings": [f("critical", "error_rate_over_threshold", "20 % of 5 requests failed")]},
          "failed_jobs_findings": [f("warning", "failed_jobs_over_threshold", "8 failed rows in the last 1h")]}
    assert RANK(hv, ALL + ["failed_jobs"], "h")["top"]["runbook"] == "failed_jobs"


def test_a_deploy_in_the_last_hour_with_errors_since_is_the_cause_even_of_a_stop():
    # FAKE Fly: a release that crashes at start leaves the machine stopped (no crash code), with errors since
    recent = dict(f("critical", "release_unhealthy", "release bad1 is unhealthy since the deploy (deployed 2 min ago)"),
                  recent=True)
    old = dict(recent, recent=False, message="release good is unhealthy since the deploy (deployed 3000 min ago)")
    errors = f("warning", "log_errors", "4 error lines since the deploy, last: Error: boom")
    stopped = {"app_down_findings": [f("critical", "app_stopped"), f("critical", "instance_unhealthy")],
               "deploy_failure_findings": [f("critical", "app_stopped"), recent, errors]}
    r = RANK(stopped, ALL, "h")
    assert (r["top"]["runbook"], r["top"]["code"]) == ("deploy_failure", "release_unhealthy")
    assert r["next_command"] == "ansible-playbook playbooks/deploy_failure_rollback.yml -l h -e sre_confirm=yes"
    # an old release that stopped is started; a recent one with no errors since and no crash is only a stop
    assert RANK(dict(stopped, deploy_failure_findings=[f("critical", "app_stopped"), old, errors]), ALL,
                "h")["top"]["runbook"] == "app_down"
    assert RANK(dict(stopped, deploy_failure_findings=[f("critical", "app_stopped"), recent]), ALL,
                "h")["top"]["runbook"] == "app_down"
    # what a bad release can make (OOM kills) ranks after it; what it cannot (a missing secret) still before it
    oom = dict(stopped, high_resource_findings=[f("critical", "oom_kills")])
    assert [c["code"] for c in RANK(oom, ALL, "h")["causes"][:2]] == ["release_unhealthy", "oom_kills"]
    secret = dict(stopped, secrets_findings=[f("critical", "secrets_missing", "SESSION_SECRET is not set")])
    assert RANK(secret, ALL, "h")["top"]["runbook"] == "secrets"
    # without a recent deploy the OOM kills explain the outage first, as before
    assert RANK(dict(oom, deploy_failure_findings=[f("critical", "app_crash_loop"), old, errors]), ALL,
                "h")["top"]["code"] == "oom_kills"
