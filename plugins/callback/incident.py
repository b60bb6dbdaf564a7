# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: incident
type: notification
short_description: Write an incident record (JSON and Markdown) for every runbook run
description:
  - Collects the C(findings) of every task result (lists of C({severity, code, message})), changed tasks
    (actions), failures, unreachable hosts and the C(target_status) or C(sre_state) facts (state before and
    after) into a UTC timeline.
  - At the end of the playbook it writes C(<UTC stamp>-<runbook>-<phase>-<id>.json) and C(.md) into O(dir).
    The Markdown file has the communication templates of the source runbooks filled in (initial notice,
    update, resolution) and a post-mortem skeleton.
  - The runbook and phase come from the play variables C(sre_runbook) and C(sre_phase), else from the
    playbook file name (C(db_connections_diagnose.yml) is runbook C(db_connections), phase C(diagnose)).
  - The incident id is chosen once per run; pass C(sre_incident_id) (an extra var) so that diagnose,
    remediate and verify runs of one incident share one id. A later run with the same id continues the
    timeline of the newest record with that id found in O(dir). Under an AWX workflow the default id is
    C(awx-wf-<awx_workflow_job_id>).
  - Severity is P1 to P4 (runbook 003's scale, the default), or P0 to P3 where the inventory sets
    C(sre_severity_scale=P0-P3) (runbook 001's). A critical finding or an unreachable host on every host of the
    run is P1 (P0), on some hosts P2 (P1); a warning is P3 (P2); otherwise P4 (P3). The extra var C(sre_severity)
    overrides it (on P1-P4, 001's P0 reads as P1). The record keeps the scale (C(severity_scale)).
  - Who ran it comes from AWX's C(awx_user_name), C(awx_job_id), C(awx_job_template_name) and
    C(awx_workflow_job_id) when present, else from the local user name.
  - Secrets never reach the record or the notification. Results of C(no_log) tasks are recorded as
    C(censored) only; values of variables and result keys whose names look secret (password, passwd, token,
    secret, hash, key, api_key, credential, dsn, database_url, authorization, cookie) and every vault-encrypted
    value are removed from everything written.
  - "Secrets nobody declared are masked by their shape (C(***)) in every field of the JSON and the Markdown
    record and in the webhook payload: the password of a URL (C(scheme://user:***@host)), the values of
    C(password=) and of other secret-named keys in C(key=value) and C(key: value) text (libpq DSNs, env lines,
    query strings, JSON, C(--password VALUE)), bcrypt hashes (C($2a$), C($2b$), C($2y$)) and the credentials of
    C(Authorization:) headers and C(Bearer) tokens."
  - It never makes a playbook fail. A bad option, an unwritable directory or a webhook that does not
    answer gives one warning line.
  - Set the play variable C(sre_incident_record=false) to write nothing for a playbook (tooling playbooks).
version_added: 0.1.0
requirements:
  - Enable it in C(callbacks_enabled) (ansible.cfg C([defaults]) or E(ANSIBLE_CALLBACKS_ENABLED)).
options:
  dir:
    description:
      - Directory for the records. Created when missing.
    type: path
    default: ./incidents
    env:
      - name: SRE_INCIDENT_DIR
    ini:
      - section: callback_incident
        key: dir
  webhook:
    description:
      - URL that receives the incident's notices as Slack-compatible POSTs. Only C(http) and C(https) URLs are used.
      - When a run opens a new incident (no O(dir) record has its id yet), the start of its first play posts the
        initial notice (runbook 003's C(INCIDENT ALERT), Status Investigating) with what is known then, the runbook
        and phase, the hosts of the play (after C(--limit)) and the limit, the alert (extra var C(sre_alert)) and the
        severity (C(sre_severity), else the scale's lowest level, marked provisional).
      - The end of every run posts the update (003's C(INCIDENT UPDATE)) while the incident goes on, or the
        resolution (C(INCIDENT RESOLVED), with the total duration, the top-ranked finding as root cause and the
        actions taken) when the run resolved it (a remediate, rollback or verify run that ended ok with no warning
        or critical finding; never a check-mode run).
      - Where every host of the run is an app of runbook 002 (C(sre_app_name=sme-booking-app)), the notices use
        002's wording instead (its C(INCIDENT RESPONSE - <service>) template, SEVERITY CRITICAL, HIGH, MEDIUM or
        LOW, STATUS INVESTIGATING, MITIGATING, MONITORING or RESOLVED).
      - "The body is a JSON object: C(text) (the one-line summary that earlier versions posted alone, a blank line,
        then the notice), C(kind) (C(initial), C(update) or C(resolved)), C(summary) (the one-line summary),
        C(incident) (the id), C(severity) and C(status)."
      - Everything posted is scrubbed like the record.
      - Failures (refused, timeout, HTTP error) only give one warning; the later notices of that run are then not
        tried, so that a dead webhook costs a run at most one O(webhook_timeout).
    type: str
    env:
      - name: SRE_INCIDENT_WEBHOOK
    ini:
      - section: callback_incident
        key: webhook
  webhook_timeout:
    description:
      - Seconds to wait for the webhook.
    type: float
    default: 5
    env:
      - name: SRE_INCIDENT_WEBHOOK_TIMEOUT
    ini:
      - section: callback_incident
        key: webhook_timeout
  webhook_notices:
    description:
      - Which notices are posted to O(webhook), any of C(initial), C(update) and C(resolved) (C(all) is the three,
        C(none) posts nothing). Unknown names give a warning and are ignored.
    type: list
    elements: str
    default: [initial, update, resolved]
    env:
      - name: SRE_INCIDENT_WEBHOOK_NOTICES
    ini:
      - section: callback_incident
        key: webhook_notices
"""

import getpass
import glob
import json
import os
from http.client import HTTPException

from ansible import constants as C
from ansible import context
from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import open_url
from ansible.plugins.callback import CallbackBase

from ansible_collections.sre.runbooks.plugins.plugin_utils._incident import (
    CENSORED,
    DEFAULT_SCALE,
    FINDING_RANK,
    SEVERITY_SCALES,
    causes_by_host,
    Scrubber,
    chat_text,
    communication,
    default_severity,
    end_notice,
    incident_status,
    notice_payload,
    parse_notices,
    start_notice,
    start_summary,
    iso,
    is_secret_name,
    new_incident_id,
    parse_scale,
    parse_severity,
    render_markdown,
    runbook_phase_from_playbook,
    safe_name,
    severity_from,
    stamp,
    utc_now,
    worse_severity,
)

try:
    from ansible.parsing.vault import VaultHelper
except ImportError:  # ansible-core < 2.19
    VaultHelper = None

try:
    from ansible.parsing.yaml.objects import AnsibleVaultEncryptedUnicode
except ImportError:  # removed in later ansible-core
    AnsibleVaultEncryptedUnicode = None

OPTION_DEFAULTS = {"dir": "./incidents", "webhook": None, "webhook_timeout": 5.0,
                   "webhook_notices": ["initial", "update", "resolved"]}
AWX_VARS = ("awx_user_name", "awx_job_id", "awx_job_template_name", "awx_workflow_job_id", "awx_job_launch_type")
STATE_FACTS = ("target_status", "sre_state")
# At the start of a run the hosts of the first play are read for secrets, their scale and app (for the initial
# notice); beyond this many hosts the rest are read when their results come.
START_HOSTS_CAP = 200
# Failure messages are cut to MESSAGE_LENGTH after scrubbing: cut before, a secret on the cut (a URL's password
# without its @, the start of a known value) would no longer be recognised. RAW_MESSAGE_CAP bounds the memory.
MESSAGE_LENGTH = 500
RAW_MESSAGE_CAP = 100000


def _vaulted(value):
    """True for a vault-encrypted value (or a value decrypted from one)."""
    if AnsibleVaultEncryptedUnicode is not None and isinstance(value, AnsibleVaultEncryptedUnicode):
        return True
    if VaultHelper is not None:
        return VaultHelper.get_ciphertext(value, with_tags=False) is not None
    return False


def _plaintext(value):
    """The decrypted text of a vaulted value, or None when it cannot be decrypted here."""
    try:
        return str(value)
    except AnsibleError:
        return None


def _plain(value, scrubber, depth=0):
    """Plain JSON-able data; vaulted values become CENSORED (and their text is remembered as secret)."""
    if _vaulted(value):
        scrubber.add(_plaintext(value))
        return CENSORED
    if depth > 30:
        return "[too deep]"
    if isinstance(value, dict):
        return {to_text(k): _plain(v, scrubber, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(item, scrubber, depth + 1) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value) if isinstance(value, float) else int(value)
    return to_text(value, errors="surrogate_or_replace")


class CallbackModule(CallbackBase):
    """Incident record writer."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "sre.runbooks.incident"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self._config_problem = None
        self._scrubber = Scrubber()
        self._started = utc_now()
        self._playbook = None
        self._play = None
        self._runbook = None
        self._phase = None
        self._extra_vars = {}
        self._play_vars = {}
        self._skip = False
        self._hosts = []
        self._down = set()
        self._timeline = []
        self._findings = []
        self._state = {}
        # per host, the triage role's ranking (its top cause and the command to run next)
        self._triage = {}
        self._counts = {"actions": 0, "failures": 0, "unreachable": 0, "tasks": 0}
        self._vars_seen = set()
        self._host_scales = {}  # host -> its inventory sre_severity_scale
        self._host_apps = {}  # host -> its inventory sre_app_name (which source runbook's notices)
        self._incident_id = None
        self._started_run = False  # the start of the run (first play) was handled
        self._notices_warned = False
        self._unreadable = set()  # records _previous warned about
        self._webhook_dead = False  # a POST failed: the run tries no more (one warning, one timeout at most)

    # -- configuration -------------------------------------------------------------------------------

    def set_options(self, task_keys=None, var_options=None, direct=None):
        try:
            super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        except AnsibleError as exc:
            # One bad value must not drop the good ones: read each option alone, default the bad ones.
            self._config_problem = to_text(exc).splitlines()[0] if to_text(exc) else "invalid option"
            self._display.warning("sre.runbooks.incident: bad configuration, using defaults: %s" % self._config_problem)
            options = {}
            for name, default in OPTION_DEFAULTS.items():
                try:
                    options[name] = C.config.get_config_value(name, plugin_type="callback", plugin_name=self._load_name)
                except AnsibleError:
                    options[name] = default
            self._plugin_options = options

    def _option(self, name):
        try:
            value = self.get_option(name)
        except KeyError:
            value = None
        return OPTION_DEFAULTS[name] if value is None else value

    # -- variables and secrets -----------------------------------------------------------------------

    def _learn_secrets(self, variables, depth=0):
        """Remember values of secret-named variables and every vaulted value found in variables."""
        if depth > 20 or not isinstance(variables, dict):
            return
        for name, value in variables.items():
            if name in ("hostvars", "groups", "vars"):
                continue
            if _vaulted(value):
                self._scrubber.add(_plaintext(value))
            elif is_secret_name(to_text(name)):
                self._scrubber.add(_plain(value, self._scrubber))
            if isinstance(value, dict):
                self._learn_secrets(value, depth + 1)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    if isinstance(item, dict):
                        self._learn_secrets(item, depth + 1)
                    elif _vaulted(item):
                        self._scrubber.add(_plaintext(item))

    def _learn_host_secrets(self, host):
        name = getattr(host, "name", None)
        if self._play is None or name is None or name in self._vars_seen:
            return
        self._vars_seen.add(name)
        manager = self._play.get_variable_manager()
        if manager is None:
            return
        try:
            host_vars = manager.get_vars(play=self._play, host=host, include_hostvars=False)
        except AnsibleError as exc:
            self._display.warning("sre.runbooks.incident: could not read variables of %s: %s" % (name, to_text(exc)))
            return
        self._learn_secrets(host_vars)
        scale, app = self._scale_and_app(host_vars)
        # a host that sets none is on the default scale: a run over it and cookcam is a mixed run
        self._host_scales[name] = scale
        if app:
            self._host_apps[name] = app

    @staticmethod
    def _scale_and_app(host_vars):
        scale = host_vars.get("sre_severity_scale")
        app = host_vars.get("sre_app_name")
        return (scale if isinstance(scale, str) and scale.strip() else DEFAULT_SCALE,
                app if isinstance(app, str) and app.strip() and "{{" not in app else None)

    def _var(self, name, default=None):
        """A run-level value: extra vars win over play vars (as in Ansible)."""
        for source in (self._extra_vars, self._play_vars):
            if name in source and source[name] not in (None, ""):
                return source[name]
        return default

    # -- events --------------------------------------------------------------------------------------

    def _event(self, kind, message="", host=None, task=None, **extra):
        event = {"time": iso(utc_now()), "run": None, "kind": kind, "host": host, "task": task, "message": message}
        event.update(extra)
        self._timeline.append(event)
        return event

    def v2_playbook_on_start(self, playbook):
        self._playbook = to_text(getattr(playbook, "_file_name", "") or "")
        self._started = utc_now()

    def v2_playbook_on_play_start(self, play):
        self._play = play
        manager = play.get_variable_manager()
        play_vars = dict(play.vars or {}) if isinstance(play.vars, dict) else {}
        if manager is not None:
            self._extra_vars = _plain(dict(manager.extra_vars or {}), self._scrubber)
            self._learn_secrets(dict(manager.extra_vars or {}))
            try:
                self._learn_secrets(manager.get_vars(play=play, include_hostvars=False))
            except AnsibleError as exc:
                self._display.warning("sre.runbooks.incident: could not read play variables: %s" % to_text(exc))
        self._learn_secrets(play_vars)
        plain_vars = _plain(play_vars, self._scrubber)
        if self._runbook is None and plain_vars.get("sre_runbook"):
            self._play_vars = plain_vars
            self._runbook = str(plain_vars.get("sre_runbook"))
            self._phase = str(plain_vars.get("sre_phase") or "run")
        elif not self._play_vars:
            self._play_vars = plain_vars
        record_flag = self._var("sre_incident_record", True)
        if record_flag is False or str(record_flag).lower() in ("false", "no", "0"):
            self._skip = True
        self._event("play", "Play started: %s" % to_text(play.get_name()))
        if not self._started_run:
            self._started_run = True
            self._run_start(play)

    def _result_parts(self, result):
        host = getattr(result, "host", None) or getattr(result, "_host", None)
        task = getattr(result, "task", None) or getattr(result, "_task", None)
        data = getattr(result, "result", None)
        if data is None:
            data = getattr(result, "_result", {})
        return host, task, data

    def _collect(self, result, outcome, ignore_errors=False):
        host, task, data = self._result_parts(result)
        host_name = to_text(getattr(host, "name", "") or "")
        task_name = to_text(task.get_name()) if task is not None else ""
        if host is not None:
            self._learn_host_secrets(host)
        if host_name and host_name not in self._hosts:
            self._hosts.append(host_name)
        self._counts["tasks"] += 1
        if not isinstance(data, dict):
            data = {}
        if data.get("_ansible_no_log") or "censored" in data:
            if outcome == "failed":
                self._counts["failures"] += 1
                self._event("failure", "censored", host=host_name, task=task_name, ignored=ignore_errors)
            elif data.get("changed"):
                self._counts["actions"] += 1
                self._event("action", "censored", host=host_name, task=task_name, check_mode=self._check_mode())
            return
        self._learn_secrets(data)
        items = [data] + [item for item in data.get("results", []) if isinstance(item, dict)]
        for item in items:
            if item is not data and (item.get("_ansible_no_log") or "censored" in item):
                continue
            self._learn_secrets(item)
            findings = item.get("findings")
            if isinstance(findings, list):
                for finding in findings:
                    if not isinstance(finding, dict):
                        continue
                    severity = to_text(finding.get("severity", "info")).lower()
                    entry = {
                        "host": host_name, "task": task_name, "severity": severity if severity in FINDING_RANK else "info",
                        "code": to_text(finding.get("code", "")), "message": to_text(finding.get("message", "")),
                    }
                    # a finding the role already reported (its <role>_findings fact, then a task showing them) once
                    if any((f["host"], f["code"], f["message"], f["severity"]) == (host_name, entry["code"], entry["message"],
                                                                                   entry["severity"])
                           for f in self._findings if f["task"] != task_name):
                        continue
                    self._findings.append(entry)
                    self._event("finding", entry["message"], host=host_name, task=task_name,
                                severity=entry["severity"], code=entry["code"])
            triage = item.get("triage")
            if isinstance(triage, dict) and "next_command" in triage and host_name:
                self._triage[host_name] = {"top_cause": triage.get("top_cause"),
                                           "next_command": to_text(triage.get("next_command") or ""),
                                           "causes": triage.get("causes") if isinstance(triage.get("causes"), list) else [],
                                           "gaps": triage.get("gaps") if isinstance(triage.get("gaps"), list) else [],
                                           "per_runbook": triage.get("per_runbook")
                                           if isinstance(triage.get("per_runbook"), list) else []}
            facts = item.get("ansible_facts")
            if isinstance(facts, dict):
                self._role_findings(host_name, task_name, facts)
                for fact in STATE_FACTS:
                    if fact in facts:
                        state = self._state.setdefault(host_name, {})
                        value = _plain(facts[fact], self._scrubber)
                        state.setdefault("before", value)
                        state["after"] = value
        if outcome == "failed":
            self._counts["failures"] += 1
            message = to_text(data.get("msg") or data.get("stderr") or "failed")[:RAW_MESSAGE_CAP]
            self._event("failure", message, host=host_name, task=task_name, ignored=ignore_errors)
        elif outcome == "unreachable":
            self._counts["unreachable"] += 1
            self._down.add(host_name)
            self._event("unreachable", to_text(data.get("msg") or "unreachable")[:RAW_MESSAGE_CAP], host=host_name,
                        task=task_name)
        elif data.get("changed"):
            self._counts["actions"] += 1
            self._event("action", "would change (check mode)" if self._check_mode() else "changed",
                        host=host_name, task=task_name, check_mode=self._check_mode())

    def _check_mode(self):
        return bool(context.CLIARGS.get("check", False))

    def v2_runner_on_ok(self, result):
        self._collect(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._collect(result, "failed", ignore_errors=ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self._collect(result, "unreachable")

    # -- the record ----------------------------------------------------------------------------------

    def _operator(self):
        operator = {name: self._var(name) for name in AWX_VARS if self._var(name) not in (None, "")}
        user = operator.get("awx_user_name")
        if not user:
            try:
                user = getpass.getuser()
            except (KeyError, OSError):
                user = os.environ.get("USER", "unknown")
        operator["user"] = user
        return operator

    def _choose_id(self):
        given = self._var("sre_incident_id")
        if given not in (None, ""):
            return safe_name(given)
        workflow = self._var("awx_workflow_job_id")
        if workflow not in (None, ""):
            return safe_name("awx-wf-%s" % workflow)
        return new_incident_id(self._started)

    def _previous(self, directory, incident_id):
        """The newest record of this incident in directory (to continue its timeline), or None."""
        paths = sorted(glob.glob(os.path.join(glob.escape(directory), "*-%s.json" % glob.escape(incident_id))))
        for path in reversed(paths):
            try:
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
            except (OSError, ValueError) as exc:
                if path not in self._unreadable:  # read at the start (initial notice) and at the end: one warning
                    self._unreadable.add(path)
                    self._display.warning("sre.runbooks.incident: ignoring unreadable record %s: %s" % (path, to_text(exc)))
                continue
            if isinstance(data, dict) and data.get("id") == incident_id:
                return data
        return None

    def _scale(self, host_scales=None, warn=True):
        """The severity scale: the extra/play var, else the one every host of the run has in its inventory (a run
        over apps of different scales uses the default)."""
        value = self._var("sre_severity_scale")
        if value in (None, ""):
            try:
                scales = set(parse_scale(v) for v in (self._host_scales if host_scales is None else host_scales).values())
            except ValueError as exc:
                if warn:
                    self._display.warning("sre.runbooks.incident: %s; using %s" % (exc, DEFAULT_SCALE))
                return DEFAULT_SCALE
            return scales.pop() if len(scales) == 1 else DEFAULT_SCALE
        try:
            return parse_scale(value)
        except ValueError as exc:
            if warn:
                self._display.warning("sre.runbooks.incident: %s; using %s" % (exc, DEFAULT_SCALE))
            return DEFAULT_SCALE

    def _severity(self, previous, scale):
        computed = severity_from(self._findings, self._hosts, self._down, scale)
        if previous:
            computed = worse_severity(computed, previous.get("severity"))
            if computed not in SEVERITY_SCALES[scale]:  # the earlier record was on the other scale
                computed = parse_severity(computed, scale)
        override = self._var("sre_severity")
        if override not in (None, ""):
            try:
                return parse_severity(override, scale), "override"
            except ValueError as exc:
                self._display.warning("sre.runbooks.incident: %s; using %s from the findings" % (exc, computed))
        return computed, "findings"

    def build_record(self, directory, stats=None):
        """The record as a dict (already scrubbed)."""
        ended = utc_now()
        if self._runbook is None:
            self._runbook, self._phase = runbook_phase_from_playbook(self._playbook)
        incident_id = self._incident_id = self._incident_id or self._choose_id()
        previous = self._previous(directory, incident_id) if self._var("sre_incident_id") or self._var("awx_workflow_job_id") else None
        runs = list(previous.get("runs", [])) if previous else []
        run_index = len(runs) + 1
        for event in self._timeline:
            event["run"] = run_index
        for finding in self._findings:
            finding["run"] = run_index
        outcome = "ok"
        if self._counts["unreachable"]:
            outcome = "unreachable"
        elif stats is not None and any(stats.summarize(h).get("failures") for h in stats.processed):
            outcome = "failed"
        scale = self._scale()
        severity, source = self._severity(previous, scale)
        operator = self._operator()
        hosts = sorted(set(self._hosts) | set(stats.processed if stats is not None else []))
        run = {
            "runbook": self._runbook, "phase": self._phase, "started": iso(self._started), "ended": iso(ended),
            "outcome": outcome, "check_mode": self._check_mode(), "user": operator.get("user"),
            "awx_job_id": operator.get("awx_job_id"), "playbook": os.path.basename(self._playbook or ""),
            "hosts": hosts,
        }
        state = dict(previous.get("state", {})) if previous else {}
        for host, value in self._state.items():
            merged = dict(state.get(host, {}))
            merged.setdefault("before", value.get("before"))
            merged["after"] = value.get("after")
            state[host] = merged
        findings = (list(previous.get("findings", [])) if previous else []) + self._findings
        counts = {"critical": 0, "warning": 0, "info": 0}
        for finding in self._findings:
            counts[finding["severity"] if finding["severity"] in counts else "info"] += 1
        counts.update(self._counts)
        record = {
            "format": "sre.runbooks.incident/1",
            "id": incident_id,
            "runbook": self._runbook,
            "phase": self._phase,
            "severity": severity,
            "severity_source": source,
            "severity_scale": scale,
            "started": previous.get("started", iso(self._started)) if previous else iso(self._started),
            "run_started": iso(self._started),
            "ended": iso(ended),
            "run_index": run_index,
            "outcome": outcome,
            "check_mode": self._check_mode(),
            "playbook": run["playbook"],
            "hosts": hosts,
            # the apps of the run's hosts (their sre_app_name): which source runbook's wording the notices use
            "apps": sorted(set(self._host_apps[h] for h in hosts if h in self._host_apps)),
            "operator": operator,
            "parameters": {k: v for k, v in self._extra_vars.items() if not k.startswith("awx_")},
            "counts": counts,
            "findings": findings,
            # per host, the top-ranked finding of this run: severity first, causes before symptoms; a triage run's
            # own ranking (every runbook's diagnose, root causes first) replaces it, with the runbook and next command
            "causes": dict(causes_by_host(self._findings), **{
                host: {"code": t["top_cause"].get("code"), "message": t["top_cause"].get("message"),
                       "severity": t["top_cause"].get("severity"), "runbook": t["top_cause"].get("runbook"),
                       "next": t["next_command"]}
                for host, t in self._triage.items() if isinstance(t.get("top_cause"), dict)}),
            "timeline": (list(previous.get("timeline", [])) if previous else []) + self._timeline,
            "state": state,
            "runs": runs + [run],
        }
        if self._triage:
            record["triage"] = self._triage
        if stats is not None:
            record["stats"] = {h: stats.summarize(h) for h in stats.processed}
        record = self._scrubber.data(_plain(record, self._scrubber))
        for event in record["timeline"]:
            if event.get("kind") in ("failure", "unreachable") and len(event.get("message") or "") > MESSAGE_LENGTH:
                event["message"] = event["message"][:MESSAGE_LENGTH]
        record["communication"] = self._scrubber.data(communication(record))
        return record

    def _role_findings(self, host_name, task_name, facts):
        """A runbook's own conclusions (set_fact of <role>_findings: lists of {severity, code, message}, such as
        deploy_failure's release_unhealthy) join the findings once; those a module already reported are skipped."""
        seen = {(f["host"], f["code"], f["message"]) for f in self._findings}
        for name, value in facts.items():
            if not (str(name).endswith("_findings") and isinstance(value, list)):
                continue
            for finding in value:
                if not isinstance(finding, dict) or not finding.get("code"):
                    continue
                severity = to_text(finding.get("severity", "info")).lower()
                entry = {"host": host_name, "task": task_name,
                         "severity": severity if severity in FINDING_RANK else "info",
                         "code": to_text(finding.get("code", "")), "message": to_text(finding.get("message", ""))}
                if (entry["host"], entry["code"], entry["message"]) in seen:
                    continue
                seen.add((entry["host"], entry["code"], entry["message"]))
                self._findings.append(entry)
                self._event("finding", entry["message"], host=host_name, task=task_name,
                            severity=entry["severity"], code=entry["code"])

    def _write(self, directory, record):
        os.makedirs(directory, exist_ok=True)
        base = "%s-%s-%s-%s" % (stamp(utc_now()), safe_name(record["runbook"]), safe_name(record["phase"]), record["id"])
        json_path = os.path.join(directory, base + ".json")
        md_path = os.path.join(directory, base + ".md")
        for path, text in ((json_path, json.dumps(record, indent=2, sort_keys=True) + "\n"),
                           (md_path, self._scrubber.text(render_markdown(record)))):
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        return json_path, md_path

    # -- the webhook --------------------------------------------------------------------------------

    def _directory(self):
        return os.path.abspath(os.path.expanduser(to_text(self._option("dir"))))

    def _notices(self):
        """The notice kinds to post (option webhook_notices); unknown names give one warning."""
        kinds, unknown = parse_notices(self._option("webhook_notices"))
        if unknown and not self._notices_warned:
            self._notices_warned = True
            self._display.warning("sre.runbooks.incident: webhook_notices: ignoring %s (expected initial, update, "
                                  "resolved, all or none)" % ", ".join(unknown))
        return kinds

    def _webhook_url(self):
        url = self._option("webhook")
        if not url or self._webhook_dead:
            return None
        url = to_text(url)
        if not url.lower().startswith(("http://", "https://")):
            self._webhook_dead = True
            self._display.warning("sre.runbooks.incident: webhook ignored, not an http(s) URL")
            return None
        return url

    def _play_hosts(self, play):
        """The hosts of play (after --limit and serial), [] when the inventory cannot say."""
        manager = play.get_variable_manager()
        inventory = getattr(manager, "_inventory", None)
        try:
            return list(inventory.get_hosts(play.hosts)) if inventory is not None else []
        except (AnsibleError, AttributeError, TypeError, ValueError):
            return []

    def _run_start(self, play):
        """The first play starts: post the initial notice when this run opens a new incident."""
        if self._skip or self._webhook_url() is None or "initial" not in self._notices():
            return
        hosts = self._play_hosts(play)
        manager = play.get_variable_manager()
        scales, apps = {}, {}
        for host in hosts[:START_HOSTS_CAP]:
            try:
                host_vars = manager.get_vars(play=play, host=host, include_hostvars=False)
            except AnsibleError:
                continue
            self._learn_secrets(host_vars)  # before anything is posted
            scales[host.name], apps[host.name] = self._scale_and_app(host_vars)
        self._incident_id = self._choose_id()
        if (self._var("sre_incident_id") or self._var("awx_workflow_job_id")) \
                and self._previous(self._directory(), self._incident_id) is not None:
            return  # the incident goes on: its initial notice was posted by the run that opened it
        runbook, phase = (self._runbook, self._phase) if self._runbook else runbook_phase_from_playbook(self._playbook)
        scale = self._scale(scales, warn=False)
        severity, source = default_severity(scale), "default"
        override = self._var("sre_severity")
        if override not in (None, ""):
            try:
                severity, source = parse_severity(override, scale), "override"
            except ValueError:
                pass  # the end of the run warns about it
        limit = context.CLIARGS.get("subset")
        start = self._scrubber.data(_plain({
            "id": self._incident_id, "runbook": runbook, "phase": phase, "severity": severity,
            "severity_source": source, "severity_scale": scale, "started": iso(self._started),
            "hosts": [to_text(h.name) for h in hosts], "limit": to_text(limit) if limit else None,
            "alert": self._var("sre_alert"), "apps": sorted(set(a for a in apps.values() if a)),
            "check_mode": self._check_mode(), "operator": self._operator(),
        }, self._scrubber))
        self._post("initial", start_notice(start), start_summary(start), start["id"], severity, "Investigating")

    def _post(self, kind, text, summary, incident_id, severity, status):
        """POST one notice (scrubbed); a failure warns once and stops the notices of this run."""
        url = self._webhook_url()
        if url is None:
            return
        payload = json.dumps(self._scrubber.data(notice_payload(kind, text, summary, incident_id, severity, status)))
        try:
            open_url(url, data=payload, method="POST", headers={"Content-Type": "application/json"},
                     timeout=float(self._option("webhook_timeout")), follow_redirects="none")
        except (OSError, HTTPException, ValueError) as exc:
            self._webhook_dead = True
            self._display.warning("sre.runbooks.incident: webhook POST failed (%s notice; no more notices this run): %s"
                                  % (kind, self._scrubber.text(to_text(exc))))

    def _notify(self, record):
        """The end of a run: post the update, or the resolution when the run resolved the incident."""
        if self._webhook_url() is None:
            return
        kind, text = end_notice(record)
        if kind not in self._notices():
            return
        status = "Resolved" if kind == "resolved" else incident_status(record)
        self._post(kind, text, chat_text(record), record["id"], record["severity"], status)

    def v2_playbook_on_stats(self, stats):
        if self._skip:
            return
        directory = self._directory()
        try:
            record = self.build_record(directory, stats)
            json_path, md_path = self._write(directory, record)
        except OSError as exc:
            self._display.warning("sre.runbooks.incident: could not write the incident record to %s: %s"
                                  % (directory, to_text(exc)))
            return
        self._display.display("Incident record %s (%s): %s" % (record["id"], record["severity"], md_path))
        self._notify(record)
