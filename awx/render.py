# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Render awx/catalog.yml into the AWX data, the EDA rulebook and the Prometheus alert rules.

python awx/render.py [--check]. The rules (extensions/prometheus/rules/<runbook>.yml) come from the
catalog's alert names and awx/alerts.yml (when each alert fires).
"""

from __future__ import annotations

import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))

from ansible_collections.sre.runbooks.plugins.plugin_utils import _awx_catalog as cat  # noqa: E402  pylint: disable=wrong-import-position

HEADER = "---\n# GENERATED from awx/catalog.yml by `python awx/render.py`: edit the catalog, not this file.\n"
RULES_HEADER = ("---\n# GENERATED from awx/catalog.yml and awx/alerts.yml by `python awx/render.py`: edit those, not this file.\n"
                "# Labels the EDA rulebook reads: alertname, instance (the host, port stripped); app, runbook, signal, severity for people.\n")
RULES_DIR = os.path.join(ROOT, "extensions", "prometheus", "rules")
QUERIES_HEADER = ("---\n# GENERATED from awx/alerts.yml (postgres_exporter) by `python awx/render.py`: edit that, not this file.\n"
                  "# prometheus-postgres-exporter --extend.query-path=<this file> exposes sre_failed_events_last_hour{events_table}.\n")
QUERIES = os.path.join(ROOT, "extensions", "prometheus", "postgres_exporter", "queries.yml")


class _Dumper(yaml.SafeDumper):
    """Indent lists under their key (yamllint's default indentation)."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def outputs(catalog, alerts=None):
    result = {
        os.path.join(HERE, "generated", "job_templates.yml"): {"sre_awx_job_templates": cat.job_templates(catalog)},
        os.path.join(HERE, "generated", "workflow_job_templates.yml"): {"sre_awx_workflows": cat.workflows(catalog)},
        os.path.join(ROOT, "extensions", "eda", "rulebooks", "alertmanager.yml"): cat.rulebook(catalog),
    }
    if alerts is None:
        alerts = load_alerts()
    for runbook, groups in prometheus_rules(catalog, alerts).items():
        result[os.path.join(RULES_DIR, "%s.yml" % runbook)] = groups
    result[QUERIES] = exporter_queries(alerts)
    result[CATALOG_RST] = catalog_rst(catalog)
    return result


# --- the runbook catalog page of the docs site (docs/docsite, antsibull-docs) ------------------------

CATALOG_RST = os.path.join(ROOT, "docs", "docsite", "rst", "runbook-catalog.rst")


def _rst_text(text):
    return str(text).replace("*", "\\*").replace("`", "'")


def catalog_rst(catalog):
    """The runbook catalog as a page: every runbook, its phases (playbook, confirmation, survey questions: each a
    variable of the role entry point the playbook runs), the alerts that start it and its AWX workflow."""
    lines = [".. GENERATED from awx/catalog.yml by `python awx/render.py`: edit the catalog, not this file.", "",
             ".. _ansible_collections.sre.runbooks.docsite.runbook_catalog:", "", "Runbook catalog", "=" * 15, "",
             "Every runbook of the collection, as ``awx/catalog.yml`` describes it (the AWX job templates, surveys,",
             "workflows and the EDA rulebook are rendered from the same file). Run a phase with",
             "``ansible-playbook playbooks/<playbook> -l <app>``; a phase marked *confirm* changes nothing without",
             "``-e sre_confirm=yes``.", ""]
    for runbook, data in sorted(catalog["runbooks"].items()):
        lines += [runbook, "-" * len(runbook), "", _rst_text(data.get("description", "")), ""]
        for phase, spec in data.get("phases", {}).items():
            lines.append("- **%s**: ``playbooks/%s``%s" % (phase, spec["playbook"], " (confirm)" if spec.get("confirm") else ""))
            for question in spec.get("questions") or []:
                lines.append("")
                lines.append("  - ``%s``: %s" % (question["variable"], _rst_text(question.get("question", ""))))
            lines.append("")
        alerts = (data.get("alerts") or {}).get("names") or []
        if alerts:
            runs = " (the rulebook runs remediate)" if data["alerts"].get("remediate") else " (the rulebook runs diagnose)"
            lines += ["Alerts: %s%s." % (", ".join("``%s``" % a for a in alerts), runs), ""]
        workflow = data.get("workflow")
        if workflow:
            lines += ["AWX workflow: %s." % ", then ".join("%s ``%s``" % (k, v) for k, v in workflow.items()), ""]
    return "\n".join(lines).rstrip() + "\n"


class _RulesDumper(_Dumper):
    """Multi-line strings (long PromQL expressions) as literal blocks."""


_RulesDumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def render(data, header=HEADER, dumper=_Dumper):
    return header + yaml.dump(data, Dumper=dumper, sort_keys=False, width=150, default_flow_style=False)


# --- Prometheus alert rules -------------------------------------------------------------------------

class AlertsError(ValueError):
    """awx/alerts.yml and awx/catalog.yml disagree, or alerts.yml is malformed."""


def load_alerts(path=os.path.join(HERE, "alerts.yml")):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def catalog_alerts(catalog):
    """{alert name: runbook} for every alert name the catalog lists."""
    names = {}
    for runbook, data in sorted(catalog["runbooks"].items()):
        for name in (data.get("alerts") or {}).get("names", []):
            if name in names:
                raise AlertsError("alert %s is listed by two runbooks: %s and %s" % (name, names[name], runbook))
            names[name] = runbook
    return names


def alert_runbooks(catalog, alerts):
    """{alert name: runbook} for every alert that gets rules: the catalog's, plus pending_catalog's."""
    names = catalog_alerts(catalog)
    defined = alerts.get("alerts") or {}
    missing = sorted(set(names) - set(defined))
    if missing:
        raise AlertsError("awx/alerts.yml has no rule for the catalog's alert(s): %s" % ", ".join(missing))
    pending = alerts.get("pending_catalog") or {}
    result = dict(names)
    for name, runbook in sorted(pending.items()):
        if name in names and names[name] != runbook:
            raise AlertsError("pending_catalog puts %s under %s, the catalog under %s" % (name, runbook, names[name]))
        result.setdefault(name, runbook)
    extra = sorted(set(defined) - set(result))
    if extra:
        raise AlertsError("awx/alerts.yml defines alert(s) neither in awx/catalog.yml nor in pending_catalog: %s"
                          % ", ".join(extra))
    return result


def _fill(text, threshold, app_matcher):
    text = str(text).replace("{threshold}", "%s" % threshold)
    if app_matcher is None:
        return text
    return text.replace(", {app}", ", " + app_matcher if app_matcher else "").replace("{app}", app_matcher)


def _rule(name, runbook, severity, spec, threshold, app_matcher, scope=None):
    where = "%s (%s)" % (name, spec.get("signal"))
    for key in ("signal", "expr", "summary", "description"):
        if not spec.get(key):
            raise AlertsError("awx/alerts.yml: %s needs %s" % (where, key))
    expr = "\n".join(line.rstrip() for line in _fill(spec["expr"], threshold, app_matcher).strip().splitlines())
    if "{threshold}" in spec["expr"] and threshold is None:
        raise AlertsError("awx/alerts.yml: %s uses {threshold} but sets no threshold" % where)
    rule = {"alert": name, "expr": expr}
    if spec.get("for"):
        rule["for"] = spec["for"]
    rule["labels"] = {"severity": spec.get("severity", severity), "runbook": runbook, "signal": spec["signal"]}
    if scope:  # per-app thresholds: tells the rules apart (promtool lint) and says which threshold fired
        rule["labels"]["threshold_scope"] = scope
    rule["annotations"] = {"summary": _fill(spec["summary"], threshold, None),
                           "description": _fill(spec["description"], threshold, None)}
    return rule


_IDENT = r'(?:[a-z_][a-z0-9_$]*|"[^"\x00]+")'
_TABLE = re.compile(r"^%s(?:\.%s)?$" % (_IDENT, _IDENT))
_COLUMN = re.compile(r"^%s$" % _IDENT)
_STATUS = re.compile(r"^[A-Za-z0-9_. -]{1,64}$")


def _failed_events_select(entry):
    """One SELECT of the failed-events query; entry is a table name or {table, status_column, ...}."""
    spec = {"table": entry} if isinstance(entry, str) else dict(entry) if isinstance(entry, dict) else {}
    spec.setdefault("status_column", "status")
    spec.setdefault("time_column", "created_at")
    spec.setdefault("failed_status", "failed")
    unknown = sorted(set(spec) - {"table", "status_column", "time_column", "failed_status"})
    if unknown:
        raise AlertsError("awx/alerts.yml: failed_events_tables: unknown key(s) %s" % ", ".join(unknown))
    table = spec.get("table")
    if not isinstance(table, str) or not _TABLE.match(table):
        raise AlertsError("awx/alerts.yml: failed_events_tables: %r is not a [schema.]table name (lower case, "
                          "or double-quoted for mixed case)" % (table,))
    for key in ("status_column", "time_column"):
        if not isinstance(spec[key], str) or not _COLUMN.match(spec[key]):
            raise AlertsError("awx/alerts.yml: failed_events_tables: %s %r is not a column name" % (key, spec[key]))
    if not isinstance(spec["failed_status"], str) or not _STATUS.match(spec["failed_status"]):
        raise AlertsError("awx/alerts.yml: failed_events_tables: failed_status %r: letters, digits, _ . - and spaces only"
                          % (spec["failed_status"],))
    return ("SELECT '%s' AS events_table, count(*) AS last_hour FROM %s\n"
            "WHERE %s = '%s' AND %s > now() - interval '1 hour'"
            % (table.replace('"', ""), table, spec["status_column"], spec["failed_status"], spec["time_column"]))


def exporter_queries(alerts):
    """postgres_exporter --extend.query-path file: the custom metrics the rules read."""
    tables = (alerts.get("postgres_exporter") or {}).get("failed_events_tables") or []
    if not isinstance(tables, list) or not tables:
        raise AlertsError("awx/alerts.yml: postgres_exporter.failed_events_tables needs at least one table")
    return {"sre_failed_events": {
        "query": "\nUNION ALL\n".join(_failed_events_select(entry) for entry in tables) + "\n",
        "master": True,
        "metrics": [
            {"events_table": {"usage": "LABEL", "description": "Table counted (awx/alerts.yml failed_events_tables)"}},
            {"last_hour": {"usage": "GAUGE", "description": "Rows with the failed status created in the last hour"}},
        ],
    }}


def prometheus_rules(catalog, alerts):
    """{runbook: Prometheus rule file data}: one group per runbook, its alerts in catalog order."""
    runbook_of = alert_runbooks(catalog, alerts)
    order = list(catalog_alerts(catalog)) + sorted(set(runbook_of) - set(catalog_alerts(catalog)))
    files = {}
    for name in order:
        runbook = runbook_of[name]
        entry = alerts["alerts"][name]
        severity = entry.get("severity")
        if severity not in ("critical", "warning", "info"):
            raise AlertsError("awx/alerts.yml: %s needs severity critical, warning or info" % name)
        rules = files.setdefault(runbook, [])
        for spec in entry.get("rules") or []:
            per_app = spec.get("per_app") or {}
            threshold = spec.get("threshold")
            if not per_app:
                rules.append(_rule(name, runbook, severity, spec, threshold, ""))  # {app}: every app
                continue
            for app, app_threshold in per_app.items():
                rules.append(_rule(name, runbook, severity, spec, app_threshold, 'app="%s"' % app, app))
            rules.append(_rule(name, runbook, severity, spec, threshold, 'app!~"%s"' % "|".join(per_app), "default"))
        if not entry.get("rules"):
            raise AlertsError("awx/alerts.yml: %s has no rules" % name)
    return {runbook: {"groups": [{"name": "sre.runbooks.%s" % runbook, "rules": rules}]}
            for runbook, rules in sorted(files.items())}


def main(argv):
    with open(os.path.join(HERE, "catalog.yml"), encoding="utf-8") as handle:
        catalog = yaml.safe_load(handle)
    try:
        generated = outputs(catalog)
    except AlertsError as error:
        print("ERROR: %s" % error, file=sys.stderr)
        return 2
    stale = []
    for path, data in generated.items():
        if isinstance(data, str):
            text = data
        elif path == QUERIES:
            text = render(data, QUERIES_HEADER, _RulesDumper)
        elif path.startswith(RULES_DIR + os.sep):
            text = render(data, RULES_HEADER, _RulesDumper)
        else:
            text = render(data)
        current = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                current = handle.read()
        if current == text:
            continue
        stale.append(os.path.relpath(path, ROOT))
        if "--check" not in argv:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
    for path in stale:
        print(("stale: %s" if "--check" in argv else "wrote %s") % path)
    # rule files of runbooks that no longer have alerts
    orphans = sorted(os.path.join(RULES_DIR, name) for name in (os.listdir(RULES_DIR) if os.path.isdir(RULES_DIR) else [])
                     if name.endswith(".yml") and os.path.join(RULES_DIR, name) not in generated)
    for path in orphans:
        print(("stale: %s (no runbook with alerts)" if "--check" in argv else "removed %s") % os.path.relpath(path, ROOT))
        if "--check" not in argv:
            os.remove(path)
    return 1 if (stale or orphans) and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
