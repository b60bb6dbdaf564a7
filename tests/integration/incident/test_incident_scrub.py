# SPDX-License-Identifier: GPL-3.0-or-later
"""The incident callback scrubs by pattern in a real ansible-playbook run: task results (findings, a fact, a
failure message) and run parameters carry secrets nobody declared - a URL with a password, key=value DSNs,
a bcrypt hash, Authorization and Bearer credentials, secret-named keys in text - and none of them reaches the
JSON record, the Markdown record or the webhook payload, while what says what it was stays readable."""

from __future__ import annotations

import json

from incident_support import FIXTURES, playbook_env, webhook  # noqa: F401  pylint: disable=unused-import

BCRYPT = "$2b$12$CanaryBcryptSalt0Ab9ZxCanaryBcryptHashPart0123456789a"
IN_THE_PLAYBOOK = (
    "CanaryUrlPw-7f3a", "CanaryDsnPw-91c2", "Canary Dsn Quoted 55e1", BCRYPT, "CanaryAuthHeader-0d9e4c2b",
    "CanaryBearerTok-77aa11bb", "CanaryEnvSecret-3b8d", "CanaryJsonKey-6c1f", "CanaryStateUrl-c4e2",
    "CanaryStateDsn-a81f", "Q2FuYXJ5RmFpbEJhc2ljLTVlMGQ=", "CanaryFailPw-9b7c",
    "CanaryCutPw",  # the start of a password on the 500-character cut of a failure message
)
# given as run parameters (extra vars whose names do not look secret, so only their shape gives them away)
HOOK_USER = "svc-deploy via https://svc:CanaryHookPw-2e51@awx.example"
PARAMETERS = {"ticket_note": "restore from s3://backup:CanaryParamPw-5d0c@bucket/app.dump",
              "awx_user_name": HOOK_USER}
CANARIES = IN_THE_PLAYBOOK + ("CanaryHookPw-2e51", "CanaryParamPw-5d0c")


def test_fixture_holds_every_canary():
    text = (FIXTURES / "secret_patterns.yml").read_text()
    for canary in IN_THE_PLAYBOOK:
        assert canary in text, canary
    assert len(BCRYPT) == 60 and BCRYPT.startswith("$2b$")


def test_pattern_secrets_never_reach_record_markdown_or_webhook(playbook_env, webhook):
    run = playbook_env("secret_patterns.yml", dict(PARAMETERS, sre_incident_id="INC-patterns"), verbosity=1,
                       env={"SRE_INCIDENT_WEBHOOK": webhook.url})
    assert run.rc == 0, run.stdout + run.stderr
    # the secrets really flowed through the results: Ansible's own output shows them
    assert "CanaryUrlPw-7f3a" in run.stdout and "CanaryFailPw-9b7c" in run.stdout

    json_text = run.records()[-1].read_text()
    markdown = run.records(".md")[-1].read_text()
    assert [json.loads(body)["kind"] for body in webhook.bodies] == ["initial", "update"]
    payload = webhook.bodies[1]
    for name, text in (("JSON record", json_text), ("Markdown record", markdown), ("initial notice", webhook.bodies[0]),
                       ("update notice", payload)):
        for canary in CANARIES:
            assert canary not in text, "%r found in the %s" % (canary, name)

    record = json.loads(json_text)
    messages = {f["code"]: f["message"] for f in record["findings"]}
    assert messages == {
        "url_userinfo": "pg_dump -d postgresql://app:***@db.internal:5432/app failed",
        "dsn_password": "psql 'host=db user=app password=*** dbname=app' was refused",
        "dsn_quoted_password": "libpq: host=db password='***' dbname=app",
        "bcrypt": "login reset: users.password set to ***",
        "authorization": "webhook answered 401 to Authorization: Bearer ***",
        "bearer": "the API refused Bearer ***",
        "secret_keys": 'env: SESSION_SECRET=***; config {"api_key": "***"}',
        "plain_words": "unit token-service is stopped; token-service: active",
    }
    assert record["state"]["localhost"]["before"] == {
        "running": False, "release": "deployed from https://deploy:***@git.example/app.git",
        "command": "pg_restore -d 'host=db password=*** dbname=app'"}
    failure = [e for e in record["timeline"] if e["kind"] == "failure"]
    assert len(failure) == 2, failure
    assert failure[0]["message"] == "restore failed: Authorization: Basic *** for mysql://root:***@db/app"
    assert failure[1]["message"] == "x" * 470 + " postgresql://app:***@db/app"  # scrubbed, then cut to 500
    assert record["parameters"]["ticket_note"] == "restore from s3://backup:***@bucket/app.dump"
    assert record["operator"]["user"] == "svc-deploy via https://svc:***@awx.example"
    # the record is still readable: the severity, the notices and the Markdown say what happened
    assert record["severity"] == "P1" and "pg_dump -d postgresql://app:***@db.internal" in record["communication"]["initial"]
    assert "postgresql://app:***@db.internal:5432/app" in markdown and "token-service: active" in markdown
    text = json.loads(payload)["text"]
    assert text.startswith("[P1] INC-patterns sample/diagnose on localhost")
    assert text.splitlines()[0].endswith("by svc-deploy via https://svc:***@awx.example")
    initial = json.loads(webhook.bodies[0])
    assert initial["summary"].endswith("by svc-deploy via https://svc:***@awx.example")
