# SPDX-License-Identifier: GPL-3.0-or-later
"""The sre.runbooks.incident callback in real ansible-playbook runs (vaulted inventory, local webhook)."""

from __future__ import annotations

import socket

from incident_support import CANARY, VAULT_PASSWORD, playbook_env, webhook  # noqa: F401  pylint: disable=unused-import

SECRETS = (CANARY, CANARY[::-1], VAULT_PASSWORD)


def _all_output(run, webhook=None):
    """Every byte a run produced: stdout, stderr, the log file, every record, every webhook body."""
    parts = {"stdout": run.stdout, "stderr": run.stderr}
    if run.log.exists():
        parts["log"] = run.log.read_text()
    for path in sorted(run.incident_dir.rglob("*")) if run.incident_dir.is_dir() else []:
        if path.is_file():
            parts[str(path)] = path.read_text()
    for index, body in enumerate(webhook.bodies if webhook else []):
        parts["webhook %d" % index] = body
    return parts


def _assert_no_secret(parts):
    for name, text in parts.items():
        for secret in SECRETS:
            assert secret not in text, "secret found in %s" % name


def test_full_incident_never_leaks_the_canary(playbook_env, webhook):
    env = {"SRE_INCIDENT_WEBHOOK": webhook.url}
    diagnose = playbook_env("sample_diagnose.yml", {"sre_incident_id": "INC-canary"}, verbosity=3, env=env)
    assert diagnose.rc == 0, diagnose.stdout + diagnose.stderr
    remediate = playbook_env("sample_remediate.yml", {"sre_incident_id": "INC-canary"}, verbosity=3, env=env)
    assert remediate.rc == 0, remediate.stdout + remediate.stderr

    record = remediate.last_record()
    assert [r["phase"] for r in record["runs"]] == ["diagnose", "remediate"]
    assert len(remediate.records(".md")) == 2
    assert [p["kind"] for p in webhook.payloads()] == ["initial", "update", "resolved"]
    assert remediate.log.stat().st_size > 0
    _assert_no_secret(_all_output(remediate, webhook))


def test_leaked_secret_is_scrubbed_from_record_and_webhook(playbook_env, webhook):
    # The careless task puts the vaulted password into a finding: Ansible's own output shows it
    # (which proves the secret really flowed through a result), the record and the webhook must not.
    # As a warning it keeps the incident open (an update, not a resolution) and is the impact of the notices.
    run = playbook_env("sample_remediate.yml", {"leak_me": "{{ sre_db_password }}", "leak_severity": "warning"},
                       verbosity=1, env={"SRE_INCIDENT_WEBHOOK": webhook.url})
    assert run.rc == 0, run.stdout + run.stderr
    assert CANARY in run.stdout
    record = run.last_record()
    careless = [f for f in record["findings"] if f["code"] == "careless"]
    assert careless and careless[0]["message"] == "connected with [censored]"
    payloads = webhook.payloads()
    assert [p["kind"] for p in payloads] == ["initial", "update"]  # a warning left: not resolved
    assert "0 critical / 1 warning findings" in payloads[1]["summary"]
    assert "Impact: connected with [censored] on localhost" in record["communication"]["resolved"]
    parts = _all_output(run, webhook)
    del parts["stdout"], parts["log"]  # Ansible's own output (the log mirrors it)
    _assert_no_secret(parts)


def test_record_content_and_shared_timeline(playbook_env):
    first = playbook_env("sample_diagnose.yml", {"sre_incident_id": "INC-42", "awx_user_name": "alice",
                                                 "awx_job_id": "1234", "awx_workflow_job_id": "77"})
    assert first.rc == 0, first.stdout + first.stderr
    record = first.last_record()
    assert record["id"] == "INC-42"
    assert (record["runbook"], record["phase"]) == ("sample", "diagnose")
    assert record["severity"] == "P1"  # critical on every host of the run
    assert record["operator"]["user"] == "alice" and str(record["operator"]["awx_job_id"]) == "1234"
    assert {(f["severity"], f["code"]) for f in record["findings"]} == {
        ("critical", "too_many_connections"), ("warning", "idle_in_transaction")}
    assert record["counts"]["actions"] == 0
    assert record["state"]["localhost"]["before"] == {"running": False, "release": "r1"}
    assert all(e["time"].endswith("Z") for e in record["timeline"])
    assert "INCIDENT ALERT - P1" in record["communication"]["initial"]
    assert "Status: Identified" in record["communication"]["update"]
    assert "[not resolved yet]" in record["communication"]["resolved"]

    second = playbook_env("sample_remediate.yml", {"sre_incident_id": "INC-42"})
    assert second.rc == 0, second.stdout + second.stderr
    paths = second.records()
    assert len(paths) == 2 and all(p.name.endswith("-INC-42.json") for p in paths)
    assert "-sample-remediate-INC-42" in paths[-1].name
    record = second.last_record()
    assert record["started"] == record["runs"][0]["started"]
    assert [e["run"] for e in record["timeline"] if e["kind"] == "finding"] == [1, 1, 2]
    assert [e["task"] for e in record["timeline"] if e["kind"] == "action"] == ["Terminate idle sessions"]
    assert record["state"]["localhost"] == {"before": {"running": False, "release": "r1"},
                                            "after": {"running": True, "release": "r1"}}
    assert record["severity"] == "P1"  # an incident keeps its worst severity
    markdown = second.records(".md")[-1].read_text()
    for heading in ("## Communication", "## Timeline (UTC)", "## State before and after", "## Post-mortem"):
        assert heading in markdown
    assert "Resolved At: 20" in markdown


def test_check_mode_severity_override_and_default_id(playbook_env):
    run = playbook_env("sample_diagnose.yml", {"sre_severity": "p3"}, check=True)
    assert run.rc == 0
    record = run.last_record()
    assert record["check_mode"] is True
    assert (record["severity"], record["severity_source"]) == ("P3", "override")
    assert record["id"].startswith("INC-")


def test_runbook_001s_scale_from_the_inventory(playbook_env):
    """An app whose runbook ranks P0-P3 (001) sets sre_severity_scale in its inventory: a complete outage is P0,
    its notices say P0, and an override is read on that scale."""
    (playbook_env.tmp / "inventory" / "group_vars" / "all" / "scale.yml").write_text(
        "---\nsre_severity_scale: P0-P3\n")
    run = playbook_env("sample_diagnose.yml")
    assert run.rc == 0, run.stdout + run.stderr
    record = run.last_record()
    assert (record["severity"], record["severity_scale"]) == ("P0", "P0-P3")  # critical on every host
    assert "INCIDENT ALERT - P0" in record["communication"]["initial"]
    run = playbook_env("sample_diagnose.yml", {"sre_severity": "P0"})
    assert (run.last_record()["severity"], run.last_record()["severity_source"]) == ("P0", "override")


def test_default_scale_reads_p0_as_p1(playbook_env):
    run = playbook_env("sample_diagnose.yml", {"sre_severity": "P0"})
    assert run.rc == 0
    record = run.last_record()
    assert (record["severity"], record["severity_scale"]) == ("P1", "P1-P4")


def test_bad_severity_override_warns_once(playbook_env):
    run = playbook_env("sample_diagnose.yml", {"sre_severity": "urgent"})
    assert run.rc == 0
    assert run.last_record()["severity"] == "P1"
    warnings = [line for line in (run.stdout + run.stderr).splitlines() if "sre.runbooks.incident" in line]
    assert len(warnings) == 1 and "invalid severity" in warnings[0]


def test_bad_configuration_never_fails_the_playbook(playbook_env):
    blocker = playbook_env.tmp / "not-a-dir"
    blocker.write_text("a file where the directory should be\n")
    run = playbook_env("sample_diagnose.yml", env={"SRE_INCIDENT_DIR": str(blocker / "sub"),
                                                   "SRE_INCIDENT_WEBHOOK_TIMEOUT": "soon"})
    assert run.rc == 0, run.stdout + run.stderr
    output = run.stdout + run.stderr
    assert "Traceback" not in output
    warnings = [line for line in output.splitlines() if "sre.runbooks.incident" in line]
    assert len(warnings) == 2, warnings
    assert "bad configuration" in warnings[0] and "could not write" in warnings[1]


def _incident_warnings(run):
    return [line for line in (run.stdout + run.stderr).splitlines() if "sre.runbooks.incident" in line]


def test_unreachable_webhook_only_warns(playbook_env):
    """A webhook that refuses the connection: one warning for the run (the initial notice failed, the update is not
    tried), the record is written, the playbook succeeds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = playbook_env("sample_diagnose.yml", env={"SRE_INCIDENT_WEBHOOK": "http://127.0.0.1:%d/x" % port,
                                                   "SRE_INCIDENT_WEBHOOK_TIMEOUT": "2"})
    assert run.rc == 0
    assert run.records()
    warnings = _incident_warnings(run)
    assert len(warnings) == 1 and "webhook POST failed (initial notice" in warnings[0], warnings
    assert "Traceback" not in run.stdout + run.stderr


def test_webhook_answering_an_error_only_warns_once(playbook_env, webhook):
    webhook.status = 503
    run = playbook_env("sample_diagnose.yml", {"sre_incident_id": "INC-503"}, env={"SRE_INCIDENT_WEBHOOK": webhook.url})
    assert run.rc == 0, run.stdout + run.stderr
    warnings = _incident_warnings(run)
    assert len(warnings) == 1 and "webhook POST failed" in warnings[0] and "503" in warnings[0], warnings
    assert [p["kind"] for p in webhook.payloads()] == ["initial"]  # the update was not tried after the failure
    assert run.last_record()["id"] == "INC-503"


def test_webhook_payload_is_slack_compatible(playbook_env, webhook):
    """Every body is a JSON object with text (what Slack shows); the end-of-run body's text starts with the one-line
    summary that earlier versions posted alone, so their consumers still find it."""
    run = playbook_env("sample_diagnose.yml", {"sre_incident_id": "INC-hook"},
                       env={"SRE_INCIDENT_WEBHOOK": webhook.url})
    assert run.rc == 0
    payloads = webhook.payloads()
    assert [p["kind"] for p in payloads] == ["initial", "update"]
    for body in payloads:
        assert set(body) == {"text", "kind", "summary", "incident", "severity", "status"}
        assert body["text"].startswith(body["summary"] + "\n\n") and body["incident"] == "INC-hook"
    assert payloads[1]["text"].startswith("[P1] INC-hook sample/diagnose on localhost: ok, 1 critical / 1 warning")
    assert (payloads[1]["severity"], payloads[1]["status"]) == ("P1", "Identified")


def test_notices_open_update_and_resolve_one_incident(playbook_env, webhook):
    """diagnose opens INC-n: initial (what is known at the start) then update; remediate with the same id resolves
    it: one resolution, no second initial. No secret in any body, though the alert name carries the canary."""
    env = {"SRE_INCIDENT_WEBHOOK": webhook.url}
    diagnose = playbook_env("sample_diagnose.yml", {"sre_incident_id": "INC-n", "sre_alert": "DbFull " + CANARY},
                            env=env, limit="localhost")
    assert diagnose.rc == 0, diagnose.stdout + diagnose.stderr
    initial, update = webhook.payloads()
    assert initial["kind"] == "initial" and (initial["severity"], initial["status"]) == ("P4", "Investigating")
    assert initial["summary"].startswith("[P4] INC-n sample/diagnose on localhost: started on alert DbFull [censored]")
    for line in ("INCIDENT ALERT - P4", "Status: Investigating", "Incident: INC-n",
                 "Impact: Alert DbFull [censored] is firing; sample/diagnose is assessing it",
                 "Affected: localhost (limit localhost)", "Runbook: sample/diagnose",
                 "Severity: P4 (provisional: the P1-P4 scale's default until the findings rate it)"):
        assert line in initial["text"].splitlines(), line
    assert update["kind"] == "update" and "INCIDENT UPDATE - P1" in update["text"]
    assert "Status: Identified" in update["text"] and "ETA Resolution: TBD" in update["text"]

    remediate = playbook_env("sample_remediate.yml", {"sre_incident_id": "INC-n"}, env=env)
    assert remediate.rc == 0, remediate.stdout + remediate.stderr
    payloads = webhook.payloads()
    assert [p["kind"] for p in payloads] == ["initial", "update", "resolved"]
    resolved = payloads[2]
    assert (resolved["severity"], resolved["status"]) == ("P1", "Resolved")
    assert resolved["summary"] == resolved["text"].splitlines()[0]
    lines = resolved["text"].splitlines()
    assert "INCIDENT RESOLVED - P1" in lines and "Incident: INC-n" in lines
    assert any(line.startswith("Resolved At: 20") for line in lines)
    assert any(line.startswith("Total Duration: ") and line.endswith(" minutes") for line in lines)
    assert "Root Cause: [to confirm] too_many_connections: 98 of 100 connections used on appdb" in lines
    assert "Actions Taken: Terminate idle sessions (localhost)" in lines
    _assert_no_secret(_all_output(remediate, webhook))


def test_notices_of_runbook_002s_app_and_the_override(playbook_env, webhook):
    """Hosts of sme-booking-app (runbook 002) get 002's response template; sre_severity is the start's severity."""
    (playbook_env.tmp / "inventory" / "group_vars" / "all" / "app.yml").write_text(
        "---\nsre_app_name: sme-booking-app\n")
    run = playbook_env("sample_diagnose.yml", {"sre_severity": "P2"}, env={"SRE_INCIDENT_WEBHOOK": webhook.url})
    assert run.rc == 0, run.stdout + run.stderr
    initial, update = webhook.payloads()
    assert initial["incident"] == update["incident"] == run.last_record()["id"]
    lines = initial["text"].splitlines()
    assert "INCIDENT RESPONSE - sme-booking-app" in lines and "SEVERITY: HIGH (P2)" in lines
    assert "STATUS: INVESTIGATING" in lines and "- Hosts Affected: localhost" in lines
    lines = update["text"].splitlines()
    assert "INCIDENT RESPONSE - sme-booking-app" in lines and "STATUS: INVESTIGATING" in lines
    assert "[to confirm] too_many_connections: 98 of 100 connections used on appdb" in lines
    assert run.last_record()["apps"] == ["sme-booking-app"]


def test_webhook_notices_chooses_what_is_posted(playbook_env, webhook):
    env = {"SRE_INCIDENT_WEBHOOK": webhook.url, "SRE_INCIDENT_WEBHOOK_NOTICES": "resolved,bogus"}
    diagnose = playbook_env("sample_diagnose.yml", {"sre_incident_id": "INC-only"}, env=env)
    assert diagnose.rc == 0, diagnose.stdout + diagnose.stderr
    assert webhook.bodies == []
    warnings = _incident_warnings(diagnose)
    assert len(warnings) == 1 and "webhook_notices: ignoring bogus" in warnings[0], warnings
    remediate = playbook_env("sample_remediate.yml", {"sre_incident_id": "INC-only"}, env=env)
    assert remediate.rc == 0
    assert [p["kind"] for p in webhook.payloads()] == ["resolved"]


def test_record_can_be_switched_off(playbook_env):
    run = playbook_env("sample_diagnose.yml", {"sre_incident_record": "false"})
    assert run.rc == 0
    assert run.records() == []


def test_secret_like_unit_names_do_not_censor_plain_words(playbook_env):
    # A dict under a secret-looking key in a task result (service_facts' systemd-ask-password-*.service)
    # holds no secret: its words (stopped, systemd) stay readable; a scalar under such a key is still censored.
    run = playbook_env("secret_like_names.yml")
    assert run.rc == 0, run.stdout + run.stderr
    record = run.last_record()
    finding = [f for f in record["findings"] if f["code"] == "app_stopped"]
    assert finding, record["findings"]
    finding = finding[0]
    assert finding["message"] == "systemd unit saasresto.service is stopped"
    markdown = run.records(".md")[-1].read_text()
    assert "saasresto.service is stopped" in markdown and "/run/secrets/token-file" not in markdown
    _assert_no_secret(_all_output(run))


def test_unreadable_record_of_the_incident_warns_once(playbook_env, webhook):
    """A broken record with the incident's id: read at the start (is the incident new?) and at the end (continue its
    timeline?), ignored both times with one warning; the run opens the incident."""
    playbook_env.incident_dir.mkdir()
    (playbook_env.incident_dir / "20240101T000000Z-sample-diagnose-INC-bad.json").write_text("{not json")
    run = playbook_env("sample_diagnose.yml", {"sre_incident_id": "INC-bad"}, env={"SRE_INCIDENT_WEBHOOK": webhook.url})
    assert run.rc == 0, run.stdout + run.stderr
    warnings = _incident_warnings(run)
    assert len(warnings) == 1 and "ignoring unreadable record" in warnings[0], warnings
    assert [p["kind"] for p in webhook.payloads()] == ["initial", "update"]
    assert run.last_record()["run_index"] == 1
