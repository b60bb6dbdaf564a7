# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure helpers of the incident record: severity, names, scrubbing, rendering."""

from __future__ import annotations

import datetime
import re
import sys

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.plugin_utils import _incident as inc  # noqa: E402


@pytest.mark.parametrize("value,expected", [
    ("P1", "P1"), ("p2", "P2"), (" P3 ", "P3"), ("4", "P4"), (3, "P3"), ("P0", "P1"), ("0", "P1"),  # 001's P0 on P1-P4
])
def test_parse_severity(value, expected):
    assert inc.parse_severity(value) == expected


@pytest.mark.parametrize("value", ["P5", "high", "", "P-1", None, 1.5])
def test_parse_severity_rejects(value):
    with pytest.raises(ValueError, match="invalid severity"):
        inc.parse_severity(value)


C = {"severity": "critical", "host": "a"}
W = {"severity": "warning", "host": "a"}
I = {"severity": "info", "host": "a"}


@pytest.mark.parametrize("findings,hosts,down,expected", [
    ([], ["a"], (), "P4"),
    ([I], ["a"], (), "P4"),
    ([W, I], ["a", "b"], (), "P3"),
    ([C], ["a"], (), "P1"),                       # the only host is critical: complete outage
    ([C], ["a", "b"], (), "P2"),                  # some hosts
    ([C, dict(C, host="b")], ["a", "b"], (), "P1"),
    ([W], ["a", "b"], ("a", "b"), "P1"),          # every host unreachable
    ([W], ["a", "b"], ("b",), "P2"),
    ([{"severity": "CRITICAL", "host": "a"}], ["a", "b"], (), "P2"),
    ([{"severity": "bogus", "host": "a"}], ["a"], (), "P4"),
])
def test_severity_from(findings, hosts, down, expected):
    assert inc.severity_from(findings, hosts, down) == expected


@pytest.mark.parametrize("first,second,expected", [
    ("P3", "P1", "P1"), ("P2", None, "P2"), (None, None, None), ("P4", "P4", "P4"), ("P2", "junk", "P2"),
])
def test_worse_severity(first, second, expected):
    assert inc.worse_severity(first, second) == expected


@pytest.mark.parametrize("value,expected", [
    (None, "P1-P4"), ("", "P1-P4"), ("p1-p4", "P1-P4"), ("003", "P1-P4"), ("P0-P3", "P0-P3"), ("001", "P0-P3"),
    (" p0 - p3 ", "P0-P3"),
])
def test_parse_scale(value, expected):
    assert inc.parse_scale(value) == expected


@pytest.mark.parametrize("value", ["P1-P5", "high", "002"])
def test_parse_scale_rejects(value):
    with pytest.raises(ValueError, match="invalid severity scale"):
        inc.parse_scale(value)


@pytest.mark.parametrize("value,expected", [("P0", "P0"), ("0", "P0"), ("p2", "P2"), ("P3", "P3"), ("P4", "P3")])
def test_parse_severity_on_runbook_001s_scale(value, expected):
    assert inc.parse_severity(value, "P0-P3") == expected


def test_parse_severity_on_runbook_001s_scale_says_its_levels():
    with pytest.raises(ValueError, match=r"expected P0, P1, P2 or P3"):
        inc.parse_severity("P7", "P0-P3")


@pytest.mark.parametrize("findings,hosts,down,expected", [
    ([], ["a"], (), "P3"),
    ([W, I], ["a", "b"], (), "P2"),
    ([C], ["a"], (), "P0"),                       # complete service outage: 001's P0
    ([C], ["a", "b"], (), "P1"),                  # partial outage: 001's P1
    ([W], ["a", "b"], ("a", "b"), "P0"),
])
def test_severity_from_on_runbook_001s_scale(findings, hosts, down, expected):
    assert inc.severity_from(findings, hosts, down, "P0-P3") == expected


def test_worse_severity_knows_p0():
    assert inc.worse_severity("P1", "P0") == "P0" and inc.worse_severity("P0", "P4") == "P0"


@pytest.mark.parametrize("path,expected", [
    ("playbooks/db_connections_diagnose.yml", ("db_connections", "diagnose")),
    ("/x/app_down_remediate.yml", ("app_down", "remediate")),
    ("deploy_failure_rollback.yml", ("deploy_failure", "rollback")),
    ("db_restore.yml", ("db_restore", "restore")),
    ("db_restore_swap_back.yml", ("db_restore", "swap_back")),
    ("db_restore_retention.yml", ("db_restore", "retention")),
    ("site.yml", ("site", "run")),
    ("_diagnose.yml", ("_diagnose", "run")),
    (None, ("unknown", "run")),
])
def test_runbook_phase_from_playbook(path, expected):
    assert inc.runbook_phase_from_playbook(path) == expected


@pytest.mark.parametrize("name,secret", [
    ("sre_db_password", True), ("vault_api_token", True), ("client_secret", True), ("login_password_hash", True),
    ("ssh_key", True), ("api_key_id", True), ("keys", True), ("sre_db_dsn", True), ("PGPASSWORD", True),
    ("sre_db_name", False), ("monkey", False), ("keyboard", False), ("sre_confirm", False), ("findings", False),
    ("systemd-ask-password-wall.service", False), ("systemd-ask-password-console.path", False),
    ("token.service.env", True),
])
def test_is_secret_name(name, secret):
    assert inc.is_secret_name(name) is secret


@pytest.mark.parametrize("text,expected", [
    ("INC-1", "INC-1"), ("../../etc/passwd", "etc-passwd"), ("a b/c", "a-b-c"), ("", "unknown"), (None, "unknown"),
])
def test_safe_name(text, expected):
    assert inc.safe_name(text) == expected


def test_incident_id_shape():
    moment = datetime.datetime(2024, 5, 1, 12, 0, 3, tzinfo=datetime.timezone.utc)
    assert re.match(r"^INC-20240501-[0-9a-f]{6}$", inc.new_incident_id(moment))
    assert inc.iso(moment) == "2024-05-01T12:00:03Z" and inc.stamp(moment) == "20240501T120003Z"


def test_scrubber_censors_names_and_values():
    scrub = inc.Scrubber()
    scrub.add({"a": "s3cr3t-value", "b": ["tok-abcdef"], "short": "yes"})
    scrub.add("{{ templated_password }}")
    assert len(scrub) == 2
    data = {"msg": "login with s3cr3t-value failed", "password": "x", "nested": [{"api_token": 12}],
            "ok": "yes", "flag_key": True, "empty_password": ""}
    assert scrub.data(data) == {"msg": "login with [censored] failed", "password": "[censored]",
                                "nested": [{"api_token": "[censored]"}], "ok": "yes", "flag_key": True,
                                "empty_password": ""}
    assert scrub.text("tok-abcdef and s3cr3t-value") == "[censored] and [censored]"


def _record(**extra):
    record = {
        "id": "INC-9", "runbook": "db_connections", "phase": "diagnose", "severity": "P2",
        "severity_source": "findings", "started": "2024-05-01T12:00:00Z", "run_started": "2024-05-01T12:00:00Z",
        "ended": "2024-05-01T12:30:00Z", "run_index": 1, "outcome": "ok", "check_mode": True,
        "hosts": ["db1", "app1"], "operator": {"user": "alice", "awx_job_id": 42, "awx_job_template_name": "jt"},
        "counts": {"critical": 1, "actions": 0},
        "findings": [{"run": 1, "host": "db1", "severity": "critical", "code": "saturation", "message": "99% used"}],
        "timeline": [{"time": "2024-05-01T12:00:01Z", "run": 1, "kind": "finding", "host": "db1", "task": "Triage",
                      "severity": "critical", "code": "saturation", "message": "99% | used"}],
        "state": {"db1": {"before": {"running": True}, "after": {"running": True}}},
        "runs": [{"runbook": "db_connections", "phase": "diagnose", "outcome": "ok", "user": "alice"}],
    }
    record.update(extra)
    return record


def test_communication_diagnose_and_resolution():
    notes = inc.communication(_record())
    assert notes["initial"].startswith("INCIDENT ALERT - P2\n\nStatus: Investigating")
    assert "Impact: 99% used on db1" in notes["initial"] and "Affected: db1, app1" in notes["initial"]
    assert "Status: Identified" in notes["update"] and "Duration: 30 minutes" in notes["update"]
    assert "Resolved At: [not resolved yet]" in notes["resolved"]
    assert "Root Cause: [to confirm] saturation: 99% used" in notes["resolved"]
    assert "Actions Taken: None yet" in notes["resolved"]

    fixed = _record(phase="remediate", run_index=2, timeline=[
        {"time": "2024-05-01T12:20:00Z", "run": 2, "kind": "action", "host": "db1", "task": "Terminate idle"}])
    notes = inc.communication(fixed)
    assert "Status: Monitoring" in notes["update"] and "Actions Taken: Terminate idle (db1)" in notes["update"]
    assert "Resolved At: 2024-05-01T12:30:00Z" in notes["resolved"]

    failed = _record(phase="remediate", run_index=2, outcome="failed")
    assert "Status: Fixing" in inc.communication(failed)["update"]


def test_markdown_and_chat_text():
    record = _record()
    record["communication"] = inc.communication(record)
    text = inc.render_markdown(record)
    for part in ("# Incident INC-9: db_connections / diagnose", "| AWX job | 42 (jt) |", "## Communication",
                 "INCIDENT UPDATE - P2", "## Timeline (UTC)", "99% \\| used", "## State before and after",
                 "### db1", "## Post-mortem", "Action items", "check (nothing changed)"):
        assert part in text
    assert inc.chat_text(record) == (
        "[P2] INC-9 db_connections/diagnose (check mode) on db1, app1: ok, 1 critical / 0 warning findings, "
        "0 actions, status Identified, by alice (AWX job 42)")


def test_causes_rank_before_symptoms_of_the_same_severity():
    found = [
        {"host": "a", "severity": "critical", "code": "health_failed", "message": "health check failed"},
        {"host": "a", "severity": "warning", "code": "app_starting", "message": "starting"},
        {"host": "a", "severity": "critical", "code": "release_unhealthy", "message": "release r3 is unhealthy"},
        {"host": "b", "severity": "info", "code": "top_statement", "message": "top statement"},
        {"host": "b", "severity": "warning", "code": "log_errors", "message": "errors in the log"},
    ]
    assert [f["code"] for f in inc.ranked_findings(found)] == [
        "release_unhealthy", "health_failed", "app_starting", "log_errors", "top_statement"]
    causes = inc.causes_by_host(found)
    assert causes["a"]["code"] == "release_unhealthy"
    # a symptom is still the cause when nothing else is worse
    assert causes["b"]["code"] == "log_errors"
    assert inc.causes_by_host([{"host": "c", "severity": "info", "code": "x", "message": ""}]) == {}


def test_the_process_state_ranks_between_a_root_cause_and_the_symptoms():
    # a bad release under pm2: pm2 reports the crash loop first, the deploy check the release after it
    found = [
        {"host": "a", "severity": "critical", "code": "app_crash_loop", "message": "restarting in a loop"},
        {"host": "a", "severity": "critical", "code": "health_failed", "message": "health check failed"},
        {"host": "a", "severity": "critical", "code": "release_unhealthy", "message": "release r3 is unhealthy"},
        {"host": "b", "severity": "critical", "code": "health_failed", "message": "health check failed"},
        {"host": "b", "severity": "critical", "code": "port_closed", "message": "nothing listens on :3000"},
        {"host": "b", "severity": "critical", "code": "app_stopped", "message": "stopped"},
    ]
    assert [f["code"] for f in inc.ranked_findings(found)] == [
        "release_unhealthy", "app_crash_loop", "app_stopped", "health_failed", "health_failed", "port_closed"]
    causes = inc.causes_by_host(found)
    assert causes["a"]["code"] == "release_unhealthy"
    # with no root cause beside it the stopped process is the cause, not the failed health check
    assert causes["b"]["code"] == "app_stopped"


def _start(**extra):
    start = {"id": "INC-7", "runbook": "app_down", "phase": "diagnose", "severity": "P4", "severity_source": "default",
             "severity_scale": "P1-P4", "started": "2024-05-01T12:00:00Z", "hosts": ["web1", "web2"], "limit": "web*",
             "alert": "AppDown", "apps": ["saasresto"], "check_mode": False, "operator": {"user": "bob"}}
    start.update(extra)
    return start


def test_initial_notice_003_with_what_is_known_at_the_start():
    text = inc.start_notice(_start())
    lines = text.splitlines()
    assert lines[0] == "[P4] INC-7 app_down/diagnose on web1, web2: started on alert AppDown, status Investigating, by bob"
    assert lines[1] == "" and lines[2] == "INCIDENT ALERT - P4"
    for line in ("Status: Investigating", "Incident: INC-7", "Started: 2024-05-01T12:00:00Z",
                 "Impact: Alert AppDown is firing; app_down/diagnose is assessing it", "Affected: web1, web2 (limit web*)",
                 "Severity: P4 (provisional: the P1-P4 scale's default until the findings rate it)",
                 "Runbook: app_down/diagnose", "We are investigating and will provide updates every 15 minutes."):
        assert line in lines, line
    text = inc.initial_notice(_start(alert=None, limit=None, hosts=[], severity="P2", severity_source="override",
                                     check_mode=True))
    for line in ("INCIDENT ALERT - P2", "Impact: Being assessed by app_down/diagnose (check mode)",
                 "Affected: [none matched yet]", "Severity: P2 (set by sre_severity)"):
        assert line in text.splitlines(), line
    many = inc.initial_notice(_start(hosts=["h%d" % i for i in range(25)], limit=None))
    assert "Affected: h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17, h18, h19 and 5 more" \
        in many.splitlines()


def test_initial_notice_002_for_sme_booking_app():
    lines = inc.initial_notice(_start(apps=["sme-booking-app"], severity="P1", severity_source="override")).splitlines()
    assert lines[:2] == ["INCIDENT RESPONSE - sme-booking-app", "================================"]
    for line in ("TIME: 2024-05-01T12:00:00Z", "SEVERITY: CRITICAL (P1)", "STATUS: INVESTIGATING", "INCIDENT: INC-7",
                 "- Features Down: Alert AppDown is firing; app_down/diagnose is assessing it",
                 "- Hosts Affected: web1, web2 (limit web*)", "[Under investigation]", "- None yet", "- Recovery ETA: TBD",
                 "[12:00] - Incident opened by app_down/diagnose, run by bob"):
        assert line in lines, line
    # runbook 001's scale names its levels the same way
    assert "SEVERITY: CRITICAL (P0)" in inc.initial_notice(
        _start(apps=["sme-booking-app"], severity="P0", severity_scale="P0-P3"))


@pytest.mark.parametrize("apps,expected", [
    (["sme-booking-app"], "002"), (["sme-booking-app", "sme-booking-app"], "002"), (["saasresto"], "003"),
    (["sme-booking-app", "saasresto"], "003"), ([], "003"), (None, "003"),
])
def test_notice_template(apps, expected):
    assert inc.notice_template(apps) == expected


def test_default_severity_is_the_scales_lowest():
    assert (inc.default_severity(), inc.default_severity("P0-P3"), inc.default_severity("bogus")) == ("P4", "P3", "P4")


def test_notice_kind():
    assert inc.notice_kind(_record()) == "update"  # a diagnose never resolves
    fixed = _record(phase="remediate", run_index=2, check_mode=False)
    assert inc.notice_kind(fixed) == "resolved"
    assert inc.notice_kind(dict(fixed, check_mode=True)) == "update"  # nothing changed in check mode
    assert inc.notice_kind(dict(fixed, outcome="failed")) == "update"
    assert inc.notice_kind(dict(fixed, findings=[dict(fixed["findings"][0], run=2)])) == "update"


def test_end_notice_update_and_resolution_003():
    kind, text = inc.end_notice(_record())
    assert kind == "update"
    lines = text.splitlines()
    assert lines[0] == inc.chat_text(_record()) and lines[1] == ""
    assert "INCIDENT UPDATE - P2" in lines and "Status: Identified" in lines and "ETA Resolution: TBD" in lines
    fixed = _record(phase="remediate", run_index=2, check_mode=False, timeline=[
        {"time": "2024-05-01T12:20:00Z", "run": 2, "kind": "action", "host": "db1", "task": "Terminate idle"}])
    kind, text = inc.end_notice(fixed)
    assert kind == "resolved"
    for line in ("INCIDENT RESOLVED - P2", "Resolved At: 2024-05-01T12:30:00Z", "Total Duration: 30 minutes",
                 "Root Cause: [to confirm] saturation: 99% used", "Impact: 99% used on db1",
                 "Actions Taken: Terminate idle (db1)", "Post-mortem will be shared within 24 hours."):
        assert line in text.splitlines(), line
    # the kind can be asked for
    assert inc.end_notice(fixed, "update")[1].splitlines()[2] == "INCIDENT UPDATE - P2"


def test_end_notice_002():
    runs = [{"runbook": "db_connections", "phase": "diagnose", "outcome": "ok", "ended": "2024-05-01T12:05:00Z"},
            {"runbook": "db_connections", "phase": "remediate", "outcome": "ok", "ended": "2024-05-01T12:30:00Z"}]
    rate = {"run": 1, "host": "app1", "severity": "critical", "code": "error_rate_over_threshold",
            "message": "nginx: 12.5 % of 400 requests failed"}
    diagnose = _record(apps=["sme-booking-app"], severity_scale="P1-P4", runs=runs[:1],
                       findings=_record()["findings"] + [rate])
    kind, text = inc.end_notice(diagnose)
    lines = text.splitlines()
    assert kind == "update" and lines[2] == "INCIDENT RESPONSE - sme-booking-app"
    for line in ("SEVERITY: HIGH (P2)", "STATUS: INVESTIGATING", "[to confirm] saturation: 99% used",
                 "- Error Rate: nginx: 12.5 % of 400 requests failed", "- Recovery ETA: TBD", "[12:05] - db_connections/diagnose: ok"):
        assert line in lines, line
    fixed = _record(apps=["sme-booking-app"], phase="remediate", run_index=2, check_mode=False, runs=runs, timeline=[
        {"time": "2024-05-01T12:20:00Z", "run": 2, "kind": "action", "host": "db1", "task": "Terminate idle"}])
    kind, text = inc.end_notice(fixed)
    lines = text.splitlines()
    assert kind == "resolved"
    for line in ("TIME: 2024-05-01T12:30:00Z", "STATUS: RESOLVED", "- Terminate idle on db1 at 12:20",
                 "- Error Rate: [not measured by this run]", "- Recovery ETA: resolved",
                 "[12:30] - db_connections/remediate: ok", "[12:30] - Resolved after 30 minutes"):
        assert line in lines, line
    failing = dict(fixed, outcome="failed")
    assert "STATUS: MITIGATING" in inc.end_notice(failing)[1].splitlines()


@pytest.mark.parametrize("value,expected", [
    (None, (["initial", "update", "resolved"], [])),
    (["initial", "update", "resolved"], (["initial", "update", "resolved"], [])),
    ("resolved, initial", (["resolved", "initial"], [])),
    (["Resolution", "start", "update", "update"], (["resolved", "initial", "update"], [])),
    (["all"], (["initial", "update", "resolved"], [])),
    (["none"], ([], [])), ([], ([], [])), ("", ([], [])),
    (["update", "bogus"], (["update"], ["bogus"])),
])
def test_parse_notices(value, expected):
    assert inc.parse_notices(value) == expected


def test_notice_payload_is_slack_compatible_and_scrubs_like_the_record():
    scrub = inc.Scrubber()
    scrub.add("Vaulted-Secret-42")
    kind, text = inc.end_notice(_record(hosts=["db1"], operator={"user": "https://u:UrlPw-99@awx"},
                                        findings=[dict(_record()["findings"][0], message="login Vaulted-Secret-42")]),
                                "resolved")
    payload = scrub.data(inc.notice_payload(kind, text, inc.chat_text(_record()), "INC-9", "P2", "Identified"))
    assert set(payload) == {"text", "kind", "summary", "incident", "severity", "status"}
    assert payload["kind"] == "resolved" and payload["incident"] == "INC-9"
    assert "Impact: login [censored] on db1" in payload["text"].splitlines()
    assert "Vaulted-Secret-42" not in str(payload) and "UrlPw-99" not in str(payload)
    assert "by https://u:***@awx" in payload["text"].splitlines()[0]
