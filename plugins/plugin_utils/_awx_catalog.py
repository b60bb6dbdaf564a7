# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the runbook catalog (awx/catalog.yml) as AWX and EDA data.

One source, three outputs: job templates with survey specs, workflow job templates
(diagnose -> approval -> remediate -> verify, failure -> rollback or a post-failure diagnose), and the
Alertmanager rulebook for ansible-rulebook. Plus a checker for AWX's survey_spec rules. Not a public API.
"""

from __future__ import annotations

SURVEY_TYPES = ("text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect")
CHECK_PHASES = ("diagnose",)
TEMPLATE_PREFIX = "sre.runbooks"
APPROVAL_TIMEOUT = 3600
EDA_THROTTLE = "10 minutes"

CONFIRM_QUESTION = {
    "variable": "sre_confirm", "type": "multiplechoice", "required": True, "choices": ["no", "yes"], "default": "no",
    "question": "Apply the destructive steps? (no = show the plan only)",
}


def template_name(runbook, phase):
    return "%s %s %s" % (TEMPLATE_PREFIX, runbook, phase)


def workflow_name(runbook):
    return "%s %s workflow" % (TEMPLATE_PREFIX, runbook)


def _question(short):
    """AWX survey question from the catalog shorthand."""
    kind = short.get("type", "text")
    item = {
        "question_name": short.get("question", short["variable"]),
        "question_description": short.get("description", ""),
        "variable": short["variable"],
        "type": kind,
        "required": bool(short.get("required", "default" in short)),
    }
    if "choices" in short:
        item["choices"] = [str(c) for c in short["choices"]]
    if kind in ("text", "textarea", "password"):
        item["min"] = short.get("min", 0)
        item["max"] = short.get("max", 1024)
        item["default"] = str(short.get("default", ""))
    elif kind in ("integer", "float"):
        for key in ("min", "max"):
            if key in short:
                item[key] = short[key]
        item["default"] = short.get("default", "")
    else:
        item["default"] = str(short.get("default", ""))
    return item


def survey_spec(catalog, runbook, phase, spec):
    questions = []
    if spec.get("confirm"):
        questions.append(_question(CONFIRM_QUESTION))
    questions += [_question(q) for q in spec.get("questions", [])]
    for secret in spec.get("secrets", []):
        questions.append(_question(dict(secret, type="password", required=False, max=1024)))
    questions += [_question(q) for q in catalog.get("common_questions", [])]
    return {
        "name": "%s %s" % (runbook, phase),
        "description": "Answers become extra vars of playbooks/%s" % spec["playbook"],
        "spec": questions,
    }


def job_templates(catalog):
    """One job template per playbook, sorted by name."""
    templates = []
    for runbook, data in sorted(catalog["runbooks"].items()):
        for phase, spec in sorted(data["phases"].items()):
            check = phase in CHECK_PHASES
            templates.append({
                "name": template_name(runbook, phase),
                "description": "%s: %s%s" % (runbook, phase, " (check mode, changes nothing)" if check else ""),
                "playbook": "playbooks/%s" % spec["playbook"],
                "job_type": "check" if check else "run",
                "ask_limit_on_launch": True,
                "ask_job_type_on_launch": not check,
                "ask_diff_mode_on_launch": True,
                "ask_verbosity_on_launch": True,
                "allow_simultaneous": check,
                "survey_enabled": True,
                "survey_spec": survey_spec(catalog, runbook, phase, spec),
                "labels": ["sre", runbook, phase],
            })
    return templates


def _ref(step):
    runbook, phase = step.split("/", 1)
    return template_name(runbook, phase)


def _node(identifier, template, success=(), failure=(), always=(), approval=None):
    ujt = {"name": template, "type": "job_template"}
    if approval:
        ujt = {"name": template, "type": "workflow_approval", "description": approval, "timeout": APPROVAL_TIMEOUT}
    return {
        "identifier": identifier,
        "unified_job_template": ujt,
        "related": {
            "success_nodes": [{"identifier": i} for i in success],
            "failure_nodes": [{"identifier": i} for i in failure],
            "always_nodes": [{"identifier": i} for i in always],
            "credentials": [],
        },
    }


def workflows(catalog):
    """A workflow per runbook: diagnose -> approve -> remediate -> verify; remediate failing -> rollback."""
    result = []
    for runbook, data in sorted(catalog["runbooks"].items()):
        flow = data.get("workflow")
        if not flow:
            continue
        rollback = flow.get("rollback")
        failure_node = "rollback" if rollback else "after_failure"
        nodes = [
            _node("diagnose", _ref(flow["diagnose"]), success=["approve"]),
            _node("approve", "Approve %s remediation" % runbook, success=["remediate"],
                  approval="Read the diagnose job's incident record, then approve %s" % _ref(flow["remediate"])),
            _node("remediate", _ref(flow["remediate"]), success=["verify"], failure=[failure_node]),
            _node("verify", _ref(flow["verify"])),
        ]
        if rollback:
            nodes.append(_node("rollback", _ref(rollback), always=["after_failure"]))
        nodes.append(_node("after_failure", _ref(flow["verify"])))
        result.append({
            "name": workflow_name(runbook),
            "description": data.get("description", runbook),
            "allow_simultaneous": False,
            "ask_limit_on_launch": True,
            "survey_enabled": True,
            "survey_spec": {
                "name": "%s workflow" % runbook,
                "description": "Passed to every job of the workflow",
                "spec": [_question(CONFIRM_QUESTION)] + [_question(q) for q in catalog.get("common_questions", [])],
            },
            "schema": nodes,
        })
    return result


def rulebook(catalog, playbook_prefix="sre.runbooks."):
    """The ansible-rulebook rulebook: Alertmanager alerts -> diagnose, and remediate where allowed."""
    rules = []
    fallback = []
    known = sorted(name for data in catalog["runbooks"].values() for name in (data.get("alerts") or {}).get("names", []))
    for runbook, data in sorted(catalog["runbooks"].items()):
        alerts = data.get("alerts")
        if not alerts:
            continue
        names = alerts.get("names") or []
        if alerts.get("fallback"):
            # an alert that names no runbook (none of the others' names): the triage of every runbook that applies
            condition = "event.alert.status == \"firing\" and event.alert.labels.alertname not in %s" % (
                "[%s]" % ", ".join('"%s"' % n for n in known))
        else:
            condition = "event.alert.status == \"firing\" and event.alert.labels.alertname in %s" % (
                "[%s]" % ", ".join('"%s"' % n for n in names))
        base_vars = {
            # one incident per firing episode: Alertmanager's fingerprint is a hash of the labels only, the same for
            # the same alert a week later; its startsAt (kept while the alert fires) tells the episodes apart
            "sre_incident_id": ("{{ event.alert.fingerprint | default('eda-' ~ event.alert.labels.alertname) }}"
                                "{{ ('-' ~ (event.alert.startsAt[:19] | replace('-', '') | replace(':', '')))"
                                " if event.alert.startsAt is defined and event.alert.startsAt else '' }}"),
            "sre_alert": "{{ event.alert.labels.alertname }}",
        }
        phases = [("diagnose", False)]
        if alerts.get("remediate") and "remediate" in data["phases"]:
            phases.append(("remediate", True))
        actions = []
        for phase, confirm in phases:
            extra = dict(base_vars)
            if confirm:
                extra["sre_confirm"] = "yes"
            actions.append({"run_playbook": {
                "name": "%s%s" % (playbook_prefix, data["phases"][phase]["playbook"][:-4]),
                "extra_vars": extra,
            }})
        (fallback if alerts.get("fallback") else rules).append({
            "name": "%s: %s" % (runbook, " then ".join(p for p, _c in phases)),
            "condition": condition,
            "throttle": {"once_within": EDA_THROTTLE,
                         "group_by_attributes": ["event.alert.labels.alertname", "event.meta.hosts"]},
            "actions": actions,
        })
    return [{
        "name": "Alertmanager alerts to sre.runbooks",
        "hosts": "all",
        "sources": [{"name": "alertmanager", "sre.runbooks.alertmanager": {
            "host": "127.0.0.1", "port": 5000, "data_alerts_path": "alerts", "data_host_path": "labels.instance"}}],
        "rules": rules + fallback,
    }]


def playbooks(catalog):
    """Every playbook the catalog expects under playbooks/."""
    return sorted(spec["playbook"] for data in catalog["runbooks"].values() for spec in data["phases"].values())


def _check_default(kind, item, errors, where):
    default = item.get("default")
    if kind in ("integer", "float"):
        if default in ("", None):
            if item.get("required"):
                errors.append("%s: a required %s question needs a default" % (where, kind))
            return
        number_types = (int,) if kind == "integer" else (int, float)
        if isinstance(default, bool) or not isinstance(default, number_types):
            errors.append("%s: default %r is not %s" % (where, default, kind))
            return
        if "min" in item and default < item["min"] or "max" in item and default > item["max"]:
            errors.append("%s: default %r outside [%s, %s]" % (where, default, item.get("min"), item.get("max")))
    elif kind in ("text", "textarea", "password"):
        if not isinstance(default, str):
            errors.append("%s: default must be a string" % where)
        elif default and not item.get("min", 0) <= len(default) <= item.get("max", 1024):
            errors.append("%s: default length outside min/max" % where)
        if kind == "password" and default:
            errors.append("%s: a password question must not carry a default" % where)


def validate_survey_spec(spec):
    """Errors (a list of strings) against AWX's survey_spec rules; empty when valid.

    Mirrors awx/api/views (JobTemplateSurveySpec._validate_spec_data) and job_template_survey_spec.md.
    """
    errors = []
    if not isinstance(spec, dict):
        return ["survey_spec must be a dict"]
    for key in ("name", "description"):
        if not isinstance(spec.get(key), str):
            errors.append("'%s' missing or not a string" % key)
    items = spec.get("spec")
    if not isinstance(items, list):
        return errors + ["'spec' must be a list of questions"]
    seen = set()
    for index, item in enumerate(items):
        where = "question %d (%s)" % (index, item.get("variable") if isinstance(item, dict) else item)
        if not isinstance(item, dict):
            errors.append("%s: must be a dict" % where)
            continue
        for key in ("type", "question_name", "variable", "required"):
            if key not in item:
                errors.append("%s: '%s' missing" % (where, key))
        kind = item.get("type")
        if kind not in SURVEY_TYPES:
            errors.append("%s: type %r not one of %s" % (where, kind, ", ".join(SURVEY_TYPES)))
            continue
        variable = item.get("variable")
        if not isinstance(variable, str) or not variable.isidentifier():
            errors.append("%s: variable must be an identifier" % where)
        elif variable in seen:
            errors.append("%s: variable '%s' repeated" % (where, variable))
        seen.add(variable)
        if not isinstance(item.get("required"), bool):
            errors.append("%s: 'required' must be a boolean" % where)
        for key in ("min", "max"):
            if key in item and (isinstance(item[key], bool) or not isinstance(item[key], (int, float))):
                errors.append("%s: '%s' must be a number" % (where, key))
        if kind in ("multiplechoice", "multiselect"):
            choices = item.get("choices")
            if isinstance(choices, str):
                choices = choices.split("\n")
            if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
                errors.append("%s: choices must be a non-empty list of strings" % where)
                continue
            if len(set(choices)) != len(choices):
                errors.append("%s: choices repeated" % where)
            default = item.get("default", "")
            if not isinstance(default, str):
                errors.append("%s: default must be a string" % where)
                continue
            wanted = [d for d in default.split("\n") if d] if kind == "multiselect" else ([default] if default else [])
            for value in wanted:
                if value not in choices:
                    errors.append("%s: default %r not in choices" % (where, value))
            if item.get("required") and kind == "multiplechoice" and default == "" and "" not in choices:
                errors.append("%s: a required choice needs a default" % where)
        else:
            if "choices" in item and item["choices"] not in ("", []):
                errors.append("%s: choices only belong to multiplechoice/multiselect" % where)
            _check_default(kind, item, errors, where)
    return errors
