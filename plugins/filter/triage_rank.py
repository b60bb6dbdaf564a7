# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: triage_rank
short_description: Rank the findings of several runbooks' diagnoses and name the cause and the next command
version_added: 0.9.0
description:
  - Reads, from a host's variables, the findings every diagnose of the listed runbooks left behind (the
    C(<runbook>_findings) facts and the C(findings) of the results registered as C(<runbook>_...)), attributes each
    to the runbook whose name prefixes the variable, and ranks them as causes.
  - "A cause ranks by what it explains: a root cause (a bad release, a missing secret, a saturated pool, an expired
    certificate, orphan rows...) before the state of the process it explains (stopped, crash loop), before what users
    see (health check failing, error rate). Severity counts within each of these tiers, and a warning-level root
    cause still ranks before a critical process state or symptom: that is what a person reading the evidence would
    fix first. While the app is down or failing, only the root causes that can explain that rank first; the others
    (expired sessions piling up, a stale backup) rank after the symptom."
  - Findings that only say some evidence could not be read (a log not readable, no source configured) are never a
    cause; they are listed as gaps.
  - A finding names the runbook that fixes it where that is another runbook than the one that found it (app_down
    finding C(oom_kills) is high_resource's, a stopped app found by deploy_failure is app_down's; error_rate names
    its likely cause's runbook in C(next_runbook)). A finding two diagnoses report counts once, for the first.
author:
  - sre.runbooks contributors (@sre-runbooks)
options:
  _input:
    description: The host's variables (C(hostvars[inventory_hostname])).
    type: dict
    required: true
  runbooks:
    description: The runbooks whose diagnoses ran, in the order they ran.
    type: list
    elements: str
    required: true
  host:
    description: The inventory name the next command limits to.
    type: str
    required: true
  failed:
    description: The runbooks whose diagnose failed, as C({runbook, message}).
    type: list
    elements: dict
    default: []
  top:
    description: How many causes to return.
    type: int
    default: 5
"""

EXAMPLES = r"""
- name: Rank the causes
  ansible.builtin.set_fact:
    triage: "{{ hostvars[inventory_hostname] | sre.runbooks.triage_rank(['app_down', 'secrets'], inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: The ranking.
  type: dict
  contains:
    top:
      description: The top cause (C({runbook, code, severity, message, found_by, next})), or null when no runbook found
        a warning or worse.
      type: dict
    causes:
      description: The causes, best first (at most O(top)).
      type: list
      elements: dict
    gaps:
      description: Evidence that could not be read, as C({runbook, code, message}).
      type: list
      elements: dict
    next_command:
      description: The command to run next, or an empty string when nothing is wrong.
      type: str
    per_runbook:
      description: For each runbook in the order run, C({runbook, worst, codes}) (worst is ok, warning, critical or
        failed).
      type: list
      elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible_collections.sre.runbooks.plugins.plugin_utils._incident import (
    FINDING_RANK as SEVERITY, PROCESS_CODES, SYMPTOM_CODES as RECORD_SYMPTOM_CODES)

# Evidence that could not be read: never a cause.
GAP_CODES = frozenset((
    "source_unavailable", "no_sources", "queries_not_read", "kernel_log_not_readable", "limited_visibility",
    "log_unreadable", "log_missing", "log_empty", "log_unrecognised", "error_log_unreadable", "unreadable",
    "unparsable", "no_requests", "schedule_file_unreadable", "pg_stat_statements_missing",
    "pg_stat_statements_unreadable", "env_file_not_configured", "smtp_not_configured", "smtp_check_failed",
    "no_release_record", "diagnose_failed",
))
# What users see: the incident record's symptoms (plugin_utils/_incident.py), and those of the runbooks the record
# does not rank (error rate, slow requests, mail and auth errors in the logs). Its process states are the same.
SYMPTOM_CODES = RECORD_SYMPTOM_CODES | frozenset((
    "app_unhealthy", "error_rate_over_threshold", "slow_requests", "related_down", "mail_log_errors", "auth_errors",
    "rate_delayed",
))
# Codes one runbook finds and another fixes.
CODE_RUNBOOK = {
    "oom_kills": "high_resource", "memory_exhausted": "high_resource", "memory_heavy_process": "high_resource",
    "memory_heavy_query": "high_resource", "memory_limit": "high_resource", "release_unhealthy": "deploy_failure", "secrets_missing": "secrets",
    "secrets_empty": "secrets", "saturated": "db_connections", "saturation": "db_connections",
    "idle_in_transaction": "db_connections", "lock_waits": "db_connections", "database_read_only": "read_only",
    "writes_stopped_leftover": "data_integrity", "orphans": "data_integrity", "disk_full": "app_down",
    "proxy_down": "app_down", "db_service_down": "app_down", "chain_invalid": "tls_cert",
    "hostname_mismatch": "tls_cert",
}
# Root causes that explain an app that is down, failing or slow: while anything users see (a symptom) is wrong or
# the process is down (DOWN_CODES), these rank first and the other root causes (expired sessions, a stale
# backup, mail that cannot be sent, failed jobs: real, but not why the app is down) rank after the symptom.
EXPLAINS_OUTAGE = frozenset((
    "release_unhealthy", "secrets_missing", "secrets_empty", "oom_kills", "memory_exhausted", "memory_heavy_process",
    "memory_heavy_query", "memory_limit", "saturated", "saturation", "idle_in_transaction", "lock_waits", "long_running",
    "database_read_only", "disk_full", "proxy_down", "db_service_down", "expired", "chain_invalid",
    "hostname_mismatch", "orphans", "seq_scans", "top_statement", "likely_cause",
    # webhooks that fail are answered with errors: they explain an error rate (runbook 001, Stripe webhooks)
    "failed_jobs_over_threshold", "failed_jobs_over_limit",
))
# What says the app is down or failing for its users now: a process that is down, a health check, a port, an
# error rate. Errors in a log window and restarts of an app that answers now are symptoms, not an outage.
OUTAGE_CODES = frozenset((
    "app_stopped", "app_failed", "app_crash_loop", "app_missing", "app_stopping", "health_failed",
    "instance_unhealthy", "app_unhealthy", "unreachable", "db_unreachable", "port_closed",
    "error_rate_over_threshold", "slow_requests",
))
# Root causes inferred from the health of the release alone ("the running release does not answer"): any root cause
# with its own evidence (a missing secret, an OOM kill) explains the same outage better and ranks before them.
INFERRED_CODES = frozenset(("release_unhealthy",))
# An app that is only stopped is started first: what the logs of the window suggest (error_rate's likely cause, from
# errors before it stopped) does not explain a clean stop.
STOPPED_EXPLAINS_NOT = frozenset(("likely_cause",))
# What a release that does not start makes the process do.
CRASH_CODES = frozenset(("app_failed", "app_crash_loop", "app_restarts"))
# Root causes a bad release can make itself (more memory, a slow query, a leak the error rate points at, webhooks it
# fails): with a deploy in the last hour and errors since, the deploy ranks before them (roll back first). The
# others (a missing secret, a full disk, a stopped database, an expired certificate...) stay first: a deploy does
# not fix them.
DEPLOY_CONSEQUENCES = frozenset((
    "oom_kills", "memory_exhausted", "memory_heavy_process", "memory_heavy_query", "memory_limit", "seq_scans",
    "top_statement", "long_running", "lock_waits", "likely_cause", "failed_jobs_over_threshold",
    "failed_jobs_over_limit",
))
# The phase that changes things, per runbook (remediate unless named here).
PHASE = {"deploy_failure": "rollback"}
TIER_NAMES = ("root cause", "process state", "symptom")


def _tier(code):
    return 2 if code in SYMPTOM_CODES else 1 if code in PROCESS_CODES else 0


def _runbook_of(name, runbooks):
    """The runbook whose name prefixes a variable name (the longest: data_integrity before data)."""
    best = None
    for runbook in runbooks:
        if name.startswith(runbook + "_") and (best is None or len(runbook) > len(best)):
            best = runbook
    return best


def _findings_in(value):
    """The findings lists a variable holds: a list of findings (a <runbook>_findings fact), or a registered result
    with findings (or a loop of them)."""
    out = []
    if isinstance(value, list):
        if value and all(isinstance(item, dict) and "code" in item and "severity" in item for item in value):
            out.extend(value)
    elif isinstance(value, dict):
        if isinstance(value.get("findings"), list):
            out.extend(item for item in value["findings"] if isinstance(item, dict))
        for item in value.get("results", []) if isinstance(value.get("results"), list) else []:
            if isinstance(item, dict) and isinstance(item.get("findings"), list):
                out.extend(f for f in item["findings"] if isinstance(f, dict))
    return out


def _next_runbooks(value):
    """error_rate's next_runbook: [{runbook, ...}] (a registered result or the fact)."""
    if isinstance(value, dict):
        value = value.get("next_runbook")
    if isinstance(value, list):
        return [to_text(item.get("runbook")) for item in value if isinstance(item, dict) and item.get("runbook")]
    return []


def command_for(runbook, host, phase=None):
    phase = phase or PHASE.get(runbook, "remediate")
    return "ansible-playbook playbooks/%s_%s.yml -l %s -e sre_confirm=yes" % (runbook, phase, host)


def rank(host_vars, runbooks, host, failed=None, top=5):
    if not isinstance(runbooks, (list, tuple)) or not all(isinstance(r, str) for r in runbooks):
        raise AnsibleFilterError("triage_rank: runbooks must be a list of runbook names")
    runbooks = list(runbooks)
    seen = set()
    found = []
    hints = []
    owners = {}
    for name in host_vars.keys():
        owner = _runbook_of(name, runbooks) if isinstance(name, str) else None
        if owner:
            owners.setdefault(owner, []).append(name)
    # in the order the runbooks ran: a finding two diagnoses report (the app's state, read by app_down and by
    # deploy_failure through the target role) counts once, for the first
    names = [(owner, name) for owner in runbooks for name in sorted(owners.get(owner, []))]
    for owner, name in names:
        try:
            value = host_vars[name]
        except Exception:  # a role default that does not template outside its role: not a result
            continue
        if owner == "error_rate" and name in ("error_rate_next_runbook", "error_rate_diagnosis"):
            hints.extend(r for r in _next_runbooks(value) if r not in hints)
        for finding in _findings_in(value):
            severity = to_text(finding.get("severity", "info")).lower()
            code = to_text(finding.get("code", ""))
            message = to_text(finding.get("message", ""))
            key = (code, message)
            if key in seen:
                continue
            seen.add(key)
            entry = {"runbook": owner, "code": code, "message": message,
                     "severity": severity if severity in SEVERITY else "info"}
            if code in INFERRED_CODES and finding.get("recent") is True:
                # deploy_failure: the running release went live within deploy_failure_recent_s
                entry["recent_deploy"] = True
            if isinstance(finding.get("runbook"), str) and finding["runbook"]:
                # error_rate's likely_cause names the runbook its evidence points at
                entry["names"] = to_text(finding["runbook"])
            found.append(entry)
    failures = []
    for item in failed or []:
        if isinstance(item, dict) and item.get("runbook"):
            failures.append({"runbook": to_text(item["runbook"]), "code": "diagnose_failed",
                             "message": to_text(item.get("message", ""))[:300]})
    per_runbook = []
    for runbook in runbooks:
        mine = [f for f in found if f["runbook"] == runbook]
        worst = max([SEVERITY[f["severity"]] for f in mine] or [0])
        per_runbook.append({"runbook": runbook, "codes": [f["code"] for f in mine],
                            "worst": "failed" if any(x["runbook"] == runbook for x in failures)
                            else ("ok", "warning", "critical")[worst]})
    gaps = [{"runbook": f["runbook"], "code": f["code"], "message": f["message"]}
            for f in found if f["code"] in GAP_CODES and SEVERITY[f["severity"]] >= 1] + failures
    candidates = [f for f in found if SEVERITY[f["severity"]] >= 1 and f["code"] not in GAP_CODES]
    order = {runbook: index for index, runbook in enumerate(runbooks)}
    outage = any(c["code"] in OUTAGE_CODES for c in candidates)

    codes = {c["code"] for c in candidates}
    # A release that does not start crashes, fails or restarts; an app that is only stopped (inactive, no crash)
    # was stopped: starting it is the fix, and "the release is unhealthy" only says it does not answer.
    stopped_cleanly = "app_stopped" in codes and not codes & CRASH_CODES
    # "A deploy in the last hour and errors since -> deploy": the unhealthy release went live recently and either
    # logged errors since (deploy_failure's log_errors) or crashes. Then it is no longer only inferred from health:
    # it ranks with the root causes (after those a deploy cannot have made), and a stop after it is its doing (a
    # release that fails at start is stopped: Fly stops the machine).
    recent_bad = any(c.get("recent_deploy") for c in candidates) and bool(
        codes & CRASH_CODES or any(c["runbook"] == "deploy_failure" and c["code"] == "log_errors" for c in candidates))

    def group(finding):
        tier = _tier(finding["code"])
        if tier > 0:
            return tier
        if finding["code"] in INFERRED_CODES:
            if recent_bad and finding.get("recent_deploy"):
                return 0.2
            return 3 if stopped_cleanly else 0.5
        if recent_bad and finding["code"] in DEPLOY_CONSEQUENCES:
            return 0.3
        if finding["code"] in STOPPED_EXPLAINS_NOT and stopped_cleanly and not recent_bad:
            return 3
        return 0 if not outage or finding["code"] in EXPLAINS_OUTAGE else 3

    ranked = sorted(enumerate(candidates),
                    key=lambda pair: (group(pair[1]), -SEVERITY[pair[1]["severity"]],
                                      order.get(pair[1]["runbook"], len(order)), pair[0]))
    causes = []
    for dummy, finding in ranked:
        fixer = finding.pop("names", None) or CODE_RUNBOOK.get(
            finding["code"], "app_down" if _tier(finding["code"]) == 1 else finding["runbook"])
        if finding["runbook"] == "error_rate" and finding["code"] == "error_rate_over_threshold" and hints:
            fixer = hints[0]
        cause = dict(finding, found_by=finding["runbook"], runbook=fixer, tier=TIER_NAMES[_tier(finding["code"])],
                     next=command_for(fixer, host))
        causes.append(cause)
    head = causes[0] if causes else None
    return {"top": head, "causes": causes[:max(int(top), 1)], "gaps": gaps,
            "next_command": head["next"] if head else "", "per_runbook": per_runbook}


def triage_rank(host_vars, runbooks, host, failed=None, top=5):
    if not hasattr(host_vars, "keys"):
        raise AnsibleFilterError("triage_rank: the input must be the host's variables (hostvars[inventory_hostname])")
    return rank(host_vars, runbooks, host, failed, top)


class FilterModule(object):
    def filters(self):
        return {"triage_rank": triage_rank}
