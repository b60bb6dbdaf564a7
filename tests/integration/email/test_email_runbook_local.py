# SPDX-License-Identifier: GPL-3.0-or-later
"""email_diagnose on localhost (no lab) against a real SMTP server on loopback (aiosmtpd with STARTTLS and AUTH):
the app's env file read by name, the mail path walked to an accepted envelope (then reset: nothing is sent), each
break a finding in the output and the incident record, --check the same, and no secret anywhere."""

from __future__ import annotations

import json
import sys

import pytest

from playbook_runner import run_playbook
from smtp_support import Pki, SmtpServer

PASSWORD = "Em4il-pa55-0c7e-secret"
USER = "mailer@ferreteria.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("email-pki"))


@pytest.fixture(scope="module")
def server(pki):
    smtp = SmtpServer(pki=pki, mode="starttls", users={USER: PASSWORD}, require_tls=True)
    yield smtp
    smtp.stop()


def write_env(tmp_path, server, password=PASSWORD):
    path = tmp_path / ".env.prod"
    path.write_text("SECRET_KEY=flask-secret-unrelated\nSMTP_HOST=localhost\nSMTP_PORT=%d\nSMTP_USE_TLS=True\n"
                    "SMTP_USER=%s\nSMTP_PASSWORD='%s'\nSMTP_FROM=noreply@ferreteria.test\n" % (server.port, USER, password))
    path.chmod(0o600)
    return path


def play(tmp_path, host_vars, check=False, playbook="email_diagnose"):
    base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "sre_target_kind": "systemd",
            "sre_app_name": "ferreteria-web-none", "email_logs_from_target": False}
    base.update(host_vars)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"twin": base}}}))
    r = run_playbook(playbook, tmp_path=tmp_path, inventory=inventory, target="twin", python_interpreter=False,
                     check=check, verbosity=1, secrets=[PASSWORD, "flask-secret-unrelated"])
    return r, " ".join(r.output.split())


def record_text(r):
    return "".join(path.read_text() for path in r.records(".json") + r.records(".md"))


def test_a_working_mail_path_is_clean_and_sends_nothing(tmp_path, pki, server):
    env = write_env(tmp_path, server)
    before = len(server.messages)
    for check in (False, True):
        r, out = play(tmp_path, {"email_env_file": str(env), "email_ca_path": str(pki.ca_file),
                                 "email_to": "ops@ferreteria.test"}, check=check)
        assert r.rc == 0 and r.changed("twin") == 0 and r.failed("twin") == 0, out
        assert "SMTP_FROM, SMTP_HOST, SMTP_PASSWORD, SMTP_PORT, SMTP_USER, SMTP_USE_TLS" in out, out
        assert "server localhost:%d (starttls), user set, password set" % server.port in out
        assert "Checked from the host: connected to 127.0.0.1:%d; TLS TLSv1." % server.port in out
        assert "AUTH ok; envelope accepted" in out and "Findings: none." in out, out
        assert "days left" in out  # cert_check read the STARTTLS certificate
        assert PASSWORD not in record_text(r)
    assert len(server.messages) == before


def test_wrong_credentials_and_an_unreachable_server_are_findings(tmp_path, pki, server):
    env = write_env(tmp_path, server, password="not-the-password-x1")
    r, out = play(tmp_path, {"email_env_file": str(env), "email_ca_path": str(pki.ca_file),
                             "email_to": "ops@ferreteria.test"})
    assert r.rc == 0 and r.failed("twin") == 0, out
    assert "AUTH refused" in out and "Findings: smtp_auth_failed." in out, out
    assert "smtp_auth_failed" in record_text(r) and "not-the-password-x1" not in record_text(r)
    assert "not-the-password-x1" not in out
    env.write_text("SMTP_HOST=127.0.0.1\nSMTP_PORT=1\n")
    r, out = play(tmp_path, {"email_env_file": str(env)})
    assert r.rc == 0 and "Findings: smtp_unreachable." in out and "no connection" in out, out


def test_no_env_file_and_a_missing_one_are_one_clear_finding(tmp_path):
    r, out = play(tmp_path, {})
    assert r.rc == 0 and "Findings: env_file_not_configured." in out, out
    r, out = play(tmp_path, {"email_env_file": str(tmp_path / "gone.env")})
    assert r.rc == 0 and "Findings: smtp_check_failed." in out and "cannot read the env file" in out, out
    assert "Traceback" not in out


def test_remediate_plans_then_sends_one_test_message(tmp_path, pki, server):
    env = write_env(tmp_path, server)
    common = {"email_env_file": str(env), "email_ca_path": str(pki.ca_file), "email_to": "ops@ferreteria.test"}
    before = len(server.messages)
    r, out = play(tmp_path, common, playbook="email_remediate")  # no sre_confirm: the plan only
    assert r.rc == 0 and r.changed("twin") == 0, out
    assert "send one test message to ops@ferreteria.test through localhost:%d" % server.port in out, out
    assert "Not confirmed" in out and len(server.messages) == before, out
    r, out = play(tmp_path, dict(common, sre_confirm="yes"), check=True, playbook="email_remediate")
    assert r.rc == 0 and r.changed("twin") == 0 and "Check mode: the test message" in out, out
    assert len(server.messages) == before
    r, out = play(tmp_path, dict(common, sre_confirm="yes", email_subject="drill 42"), playbook="email_remediate")
    assert r.rc == 0 and r.failed("twin") == 0 and "Test message accepted by the server" in out, out
    assert len(server.messages) == before + 1
    sent = server.messages[-1]
    assert sent["to"] == ["ops@ferreteria.test"] and sent["from"] == "noreply@ferreteria.test", sent
    assert "drill 42" in sent["data"], sent
    assert PASSWORD not in record_text(r)


def test_remediate_sets_the_vaulted_password_then_the_message_goes(tmp_path, pki, server):
    env = write_env(tmp_path, server, password="rotated-away-pw-77")
    common = {"email_env_file": str(env), "email_ca_path": str(pki.ca_file), "email_to": "ops@ferreteria.test",
              "sre_confirm": "yes"}
    before = len(server.messages)
    r, out = play(tmp_path, common, playbook="email_remediate")  # nothing to set it with: the run fails, clearly
    assert r.rc != 0 and "did not take the test message (smtp_auth_failed" in out, out
    assert "Traceback" not in out and len(server.messages) == before
    r, out = play(tmp_path, dict(common, email_settings={"SMTP_PASSWORD": PASSWORD}, email_restart=False),
                  playbook="email_remediate")
    assert r.rc == 0 and "set SMTP_PASSWORD in %s where different" % env in out, out
    assert "Test message accepted by the server" in out and len(server.messages) == before + 1, out
    assert "SMTP_PASSWORD='%s'" % PASSWORD in env.read_text() or "SMTP_PASSWORD=%s" % PASSWORD in env.read_text()
    assert "rotated-away-pw-77" not in env.read_text() and "rotated-away-pw-77" not in out
    r, out = play(tmp_path, dict(common, email_to=""), playbook="email_remediate")
    assert r.rc != 0 and "set email_to (a recipient)" in out and "Traceback" not in out, out
