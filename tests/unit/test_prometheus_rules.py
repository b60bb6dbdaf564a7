# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped Prometheus rules and Alertmanager example: promtool and amtool judge them, and the
rules cover every alert name of awx/catalog.yml with the labels the EDA rulebook reads."""

from __future__ import annotations

import copy
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ensure_collection_link

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "extensions" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*_test.yml"))
CATALOG = yaml.safe_load((REPO / "awx" / "catalog.yml").read_text())
ALERTS = yaml.safe_load((REPO / "awx" / "alerts.yml").read_text())
RULEBOOK = yaml.safe_load((REPO / "extensions" / "eda" / "rulebooks" / "alertmanager.yml").read_text())

sys.path.insert(0, str(ensure_collection_link()))
_SPEC = importlib.util.spec_from_file_location("sre_awx_render", REPO / "awx" / "render.py")
render = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(render)
sys.path.insert(0, str(REPO / "extensions" / "eda" / "plugins" / "event_source"))
import alertmanager  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order


def _tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail("%s not found: apt-get install prometheus prometheus-alertmanager (scripts/bootstrap.sh)" % name)
    return path


def _run(argv, cwd=None):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd, timeout=300)
    assert proc.returncode == 0, "%s failed:\n%s%s" % (" ".join(str(a) for a in argv), proc.stdout, proc.stderr)
    return proc.stdout + proc.stderr


def _rules():
    """[(runbook, rule)] of every shipped rule file."""
    return [(path.stem, rule) for path in RULE_FILES
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def _cases():
    """{runbook: [(eval_time, alertname, exp_alerts)]} from the promtool test files."""
    cases = {}
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(path.name[:-len("_test.yml")], []).append(
                    (case["eval_time"], case["alertname"], case.get("exp_alerts") or []))
    return cases


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name for p in RULE_FILES])
def test_promtool_check_rules(path):
    out = _run([_tool("promtool"), "check", "rules", str(path)])
    assert "SUCCESS" in out


@pytest.mark.parametrize("path", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_promtool_test_rules(path):
    out = _run([_tool("promtool"), "test", "rules", path.name], cwd=str(path.parent))
    assert "SUCCESS" in out and "FAILED" not in out


def test_every_rule_file_has_its_tests():
    assert [p.stem for p in RULE_FILES] == [p.name[:-len("_test.yml")] for p in TEST_FILES]
    for path in TEST_FILES:
        assert yaml.safe_load(path.read_text())["rule_files"] == ["../rules/%s.yml" % path.name[:-len("_test.yml")]]


def test_every_catalog_alert_has_rules_and_every_rule_a_catalog_alert():
    in_catalog = render.catalog_alerts(CATALOG)
    pending = ALERTS.get("pending_catalog") or {}
    shipped = {}
    for runbook, rule in _rules():
        shipped.setdefault(rule["alert"], set()).add(runbook)
    assert sorted(set(in_catalog) - set(shipped)) == [], "catalog alerts without a rule (add them to awx/alerts.yml)"
    strays = sorted(set(shipped) - set(in_catalog) - set(pending))
    assert strays == [], "rules for alerts neither in awx/catalog.yml nor in pending_catalog"
    for name, runbooks in shipped.items():
        assert runbooks == {in_catalog.get(name, pending.get(name))}, name
    for runbook, rule in _rules():
        assert rule["labels"]["runbook"] == runbook
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert "{threshold}" not in str(rule) and "{app}" not in str(rule)


def test_rule_files_are_generated_from_the_catalog_and_alerts():
    """The drift check (awx/render.py --check, also run by test_awx_catalog) covers the rules."""
    expected = render.prometheus_rules(CATALOG, ALERTS)
    assert sorted(expected) == [p.stem for p in RULE_FILES], "stale or stray files in extensions/prometheus/rules"
    for runbook, data in expected.items():
        assert (PROM / "rules" / ("%s.yml" % runbook)).read_text() == render.render(
            data, render.RULES_HEADER, render._RulesDumper), "run `python awx/render.py`"  # pylint: disable=protected-access
    assert yaml.safe_load((PROM / "postgres_exporter" / "queries.yml").read_text()) == render.exporter_queries(ALERTS)
    proc = subprocess.run([sys.executable, str(REPO / "awx" / "render.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_rule_fires_and_stays_quiet_in_the_promtool_tests():
    cases = _cases()
    for runbook, rule in _rules():
        labels = rule["labels"]
        fired = [alert["exp_labels"] for _t, name, alerts in cases.get(runbook, []) if name == rule["alert"]
                 for alert in alerts
                 if all(alert["exp_labels"].get(k) == v for k, v in labels.items())]
        assert fired, "%s %s: no promtool case where it fires" % (rule["alert"], labels)
        quiet = [t for t, name, alerts in cases[runbook] if name == rule["alert"] and not alerts]
        assert quiet, "%s: no promtool case where it does not fire" % rule["alert"]
        assert all(alert.get("exp_annotations") for _t, name, alerts in cases[runbook] for alert in alerts)


def test_firing_alerts_carry_what_the_rulebook_reads():
    """Each firing alert of the tests, as Alertmanager posts it, becomes an event for one host and a rule."""
    source = RULEBOOK[0]["sources"][0]["sre.runbooks.alertmanager"]
    conditions = [r["condition"] for r in RULEBOOK[0]["rules"]]
    in_catalog = render.catalog_alerts(CATALOG)
    for cases in _cases().values():
        for _t, name, alerts in cases:
            for alert in alerts:
                labels = dict(alert["exp_labels"], alertname=name)
                assert labels.get("app") and labels.get("instance"), labels
                payload = {"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": labels}]}
                events = alertmanager.events_from(payload, "alerts", source)
                assert [e["meta"]["hosts"] for e in events] == [[labels["instance"].split(":")[0]]]
                if name in in_catalog:
                    assert [c for c in conditions if '"%s"' % name in c], "no rulebook rule for %s" % name


def _seconds(text):
    number, unit = re.match(r"^(\d+)\s*(s|m|h|seconds?|minutes?|hours?)$", text.strip()).groups()
    return int(number) * {"s": 1, "m": 60, "h": 3600}[unit[0]]


def test_alertmanager_example_matches_the_rulebook():
    path = PROM / "alertmanager.yml"
    out = _run([_tool("amtool"), "check-config", str(path)])
    assert "SUCCESS" in out
    config = yaml.safe_load(path.read_text())
    source = RULEBOOK[0]["sources"][0]["sre.runbooks.alertmanager"]
    eda = [r for r in config["receivers"] if r["name"] == "sre-runbooks-eda"][0]["webhook_configs"][0]
    assert eda["url"].startswith("http://%s:%s/" % (source["host"], source["port"]))
    assert eda["send_resolved"] is True
    route = config["route"]
    assert set(route["group_by"]) == {"alertname", "app"}
    throttles = {r["throttle"]["once_within"] for r in RULEBOOK[0]["rules"]}
    assert len(throttles) == 1
    assert _seconds(route["repeat_interval"]) == _seconds(throttles.pop())
    assert _seconds(route["group_wait"]) < _seconds(route["group_interval"]) <= _seconds(route["repeat_interval"])
    for alertname, runbook in sorted({(rule["alert"], runbook) for runbook, rule in _rules()}):
        receiver = _run([_tool("amtool"), "config", "routes", "test", "--config.file=%s" % path,
                         "alertname=%s" % alertname, "runbook=%s" % runbook, "app=saasresto"]).split()
        assert "sre-runbooks-eda" in receiver, alertname
    other = _run([_tool("amtool"), "config", "routes", "test", "--config.file=%s" % path, "alertname=Watchdog"])
    assert "sre-runbooks-eda" not in other


def test_prometheus_example_config():
    out = _run([_tool("promtool"), "check", "config", "prometheus.yml"], cwd=str(PROM))
    assert "%d rule files found" % len(RULE_FILES) in out


def _catalog_with(alerts):
    catalog = {"runbooks": {"app_down": {"alerts": {"names": list(alerts)}}}}
    return catalog


@pytest.mark.parametrize("alerts,message", [
    ({"alerts": {}}, "no rule for the catalog's alert(s): AppDown"),
    ({"alerts": {"AppDown": {}, "Other": {}}}, "neither in awx/catalog.yml nor in pending_catalog: Other"),
    ({"alerts": {"AppDown": {}}, "pending_catalog": {"AppDown": "backup"}}, "pending_catalog puts AppDown under backup"),
    ({"alerts": {"AppDown": {"severity": "loud", "rules": []}}}, "severity critical, warning or info"),
    ({"alerts": {"AppDown": {"severity": "critical", "rules": [{"signal": "x", "expr": "up > {threshold}",
                                                                "summary": "s", "description": "d"}]}}},
     "uses {threshold} but sets no threshold"),
    ({"alerts": {"AppDown": {"severity": "critical", "rules": [{"signal": "x", "expr": "up == 0"}]}}},
     "AppDown (x) needs summary"),
])
def test_render_rejects(alerts, message):
    with pytest.raises(render.AlertsError, match=re.escape(message)):
        render.prometheus_rules(_catalog_with(["AppDown"]), alerts)


@pytest.mark.parametrize("tables,message", [
    ([], "at least one table"),
    (["stripe_webhook_events; DROP TABLE x"], "is not a [schema.]table name"),
    (["Events"], "is not a [schema.]table name"),
    ([3], "is not a [schema.]table name"),
    ([{"table": "jobs", "status_column": "state; --"}], "status_column 'state; --' is not a column name"),
    ([{"table": "jobs", "failed_status": "x' OR '1"}], "failed_status"),
    ([{"table": "jobs", "colour": "red"}], "unknown key(s) colour"),
])
def test_exporter_queries_reject(tables, message):
    with pytest.raises(render.AlertsError, match=re.escape(message)):
        render.exporter_queries({"postgres_exporter": {"failed_events_tables": tables}})


def test_exporter_queries_for_two_tables():
    query = render.exporter_queries({"postgres_exporter": {"failed_events_tables": [
        "stripe_webhook_events",
        {"table": 'public."WebhookEvent"', "time_column": '"createdAt"', "failed_status": "FAILED"}]}})
    assert query["sre_failed_events"]["query"] == (
        "SELECT 'stripe_webhook_events' AS events_table, count(*) AS last_hour FROM stripe_webhook_events\n"
        "WHERE status = 'failed' AND created_at > now() - interval '1 hour'\n"
        "UNION ALL\n"
        "SELECT 'public.WebhookEvent' AS events_table, count(*) AS last_hour FROM public.\"WebhookEvent\"\n"
        "WHERE status = 'FAILED' AND \"createdAt\" > now() - interval '1 hour'\n")


def test_per_app_thresholds_render_one_rule_per_app_and_one_for_the_rest():
    rules = render.prometheus_rules(CATALOG, ALERTS)["app_down"]["groups"][0]["rules"]
    error_rate = [r for r in rules if r["labels"]["signal"] == "error_rate"]
    assert [(r["labels"]["threshold_scope"], r["expr"].rsplit(">", 1)[1].strip()) for r in error_rate] == [
        ("sme_booking", "1"), ("hotdash", "5"), ("default", "5")]
    assert 'app!~"sme_booking|hotdash"' in error_rate[2]["expr"]


def test_a_pending_alert_gets_its_rules_before_the_catalog_names_it():
    catalog = copy.deepcopy(CATALOG)
    catalog["runbooks"]["failed_jobs"].pop("alerts", None)
    with pytest.raises(render.AlertsError, match="neither in awx/catalog.yml nor in pending_catalog: FailedJobsPiling"):
        render.prometheus_rules(catalog, ALERTS)
    pending = dict(ALERTS, pending_catalog={"FailedJobsPiling": "failed_jobs"})
    assert render.prometheus_rules(catalog, pending) == render.prometheus_rules(CATALOG, ALERTS)
