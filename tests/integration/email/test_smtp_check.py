# SPDX-License-Identifier: GPL-3.0-or-later
"""sre.runbooks.smtp_check against a real SMTP server on loopback (aiosmtpd): the app's settings read by name from
its env file, then each step of the mail path, a finding at the first one that fails, and no secret in the output."""

from __future__ import annotations

import subprocess
import time

import pytest

from conftest import free_port, run_module
from smtp_support import Pki, SmtpServer

PASSWORD = "Sm7p-pa55-9d41-secret"
USER = "mailer@ferreteria.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("smtp-pki"))


@pytest.fixture
def server_factory():
    servers = []

    def make(**kwargs):
        server = SmtpServer(**kwargs)
        servers.append(server)
        return server
    yield make
    for server in servers:
        server.stop()


def env_file(tmp_path, **values):
    path = tmp_path / ".env.prod"
    path.write_text("SECRET_KEY=unrelated-flask-secret\n" + "".join("%s=%s\n" % item for item in values.items()))
    path.chmod(0o600)
    return str(path)


def no_secret(result):
    assert PASSWORD not in result["raw"]
    assert "unrelated-flask-secret" not in result["raw"]


def codes(result):
    return [finding["code"] for finding in result["findings"]]


def test_plain_server_from_the_env_file_accepts_the_envelope_and_nothing_is_sent(tmp_path, server_factory):
    server = server_factory()
    res = run_module("smtp_check", {"env_file": env_file(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=server.port),
                                    "from_address": "noreply@ferreteria.test", "to_address": "ops@ferreteria.test"})
    assert res["rc"] == 0 and res["status"] == "ok", res
    assert res["findings"] == [] and res["reachable"] is True and res["changed"] is False
    assert res["settings"]["host"] == "127.0.0.1" and res["settings"]["port"] == server.port
    assert res["settings"]["source"]["host"] == "env_file" and res["settings"]["security"] == "none"
    assert res["settings"]["env_names_present"] == ["SMTP_HOST", "SMTP_PORT"]
    assert res["banner"].startswith("mx.lab.test") and "8BITMIME" in res["esmtp"]
    assert res["envelope"] == {"attempted": True, "from_ok": True, "to_ok": True, "code": 250, "message": "2.1.5 OK"}
    assert server.messages == [] and res["test_message"]["sent"] is False
    no_secret(res)


def test_starttls_auth_and_a_test_message_delivered_once(tmp_path, pki, server_factory):
    server = server_factory(pki=pki, mode="starttls", users={USER: PASSWORD}, require_tls=True)
    path = env_file(tmp_path, SMTP_HOST="localhost", SMTP_PORT=server.port, SMTP_USE_TLS="true",
                    SMTP_USER=USER, SMTP_PASSWORD=PASSWORD, SMTP_FROM="noreply@ferreteria.test")
    args = {"env_file": path, "ca_path": str(pki.ca_file), "to_address": "ops@ferreteria.test", "send_test": True}
    dry = run_module("smtp_check", args, check_mode=True)
    assert dry["rc"] == 0 and dry["status"] == "ok", dry
    assert dry["test_message"]["sent"] is False and "check mode" in dry["test_message"]["skipped"]
    assert dry["changed"] is False and server.messages == []
    res = run_module("smtp_check", args)
    assert res["rc"] == 0 and res["status"] == "ok", res
    assert res["tls"]["offered"] is True and res["tls"]["used"] is True and res["tls"]["verified"] is True
    assert res["tls"]["version"].startswith("TLS")
    assert res["auth"]["attempted"] is True and res["auth"]["ok"] is True and "PLAIN" in res["auth"]["mechanisms"]
    assert res["settings"]["username_set"] is True and res["settings"]["password_set"] is True
    assert res["settings"]["security"] == "starttls" and res["settings"]["source"]["security"] == "env_file"
    assert res["changed"] is True and res["test_message"]["sent"] is True
    assert len(server.messages) == 1
    message = server.messages[0]
    assert message["from"] == "noreply@ferreteria.test" and message["to"] == ["ops@ferreteria.test"]
    assert res["test_message"]["message_id"] in message["data"] and "Auto-Submitted: auto-generated" in message["data"]
    assert server.auth_attempts == [USER, USER]
    no_secret(res)
    no_secret(dry)


def test_wrong_password_is_one_critical_finding_and_never_shown(tmp_path, pki, server_factory):
    server = server_factory(pki=pki, mode="starttls", users={USER: "the-right-one-77"})
    path = env_file(tmp_path, SMTP_HOST="localhost", SMTP_PORT=server.port, SMTP_USE_TLS="1",
                    SMTP_USER=USER, SMTP_PASSWORD=PASSWORD)
    res = run_module("smtp_check", {"env_file": path, "ca_path": str(pki.ca_file), "to_address": "ops@ferreteria.test"})
    assert res["rc"] == 0 and res["status"] == "critical", res
    assert codes(res) == ["smtp_auth_failed"] and res["auth"]["ok"] is False and res["auth"]["code"] == 535
    assert res["envelope"]["attempted"] is False
    no_secret(res)
    failed = run_module("smtp_check", {"env_file": path, "ca_path": str(pki.ca_file), "fail_on": "critical"})
    assert failed.get("failed") is True and "smtp_auth_failed" in failed["msg"] and "Traceback" not in failed["raw"]
    no_secret(failed)


def test_untrusted_certificate_fails_the_starttls_step(tmp_path, pki, server_factory):
    server = server_factory(pki=pki, mode="starttls")
    path = env_file(tmp_path, SMTP_HOST="localhost", SMTP_PORT=server.port, SMTP_USE_TLS="true")
    res = run_module("smtp_check", {"env_file": path})
    assert res["rc"] == 0 and codes(res) == ["smtp_tls_failed"], res
    assert "certificate verify failed" in res["findings"][0]["message"] or "certificate" in res["tls"]["error"]
    loose = run_module("smtp_check", {"env_file": path, "validate_certs": False})
    assert loose["status"] == "ok" and loose["tls"]["verified"] is False, loose


def test_smtps_from_the_start(tmp_path, pki, server_factory):
    server = server_factory(pki=pki, mode="smtps")
    path = env_file(tmp_path, SMTP_HOST="localhost", SMTP_PORT=server.port, SMTP_USE_SSL="True")
    res = run_module("smtp_check", {"env_file": path, "ca_path": str(pki.ca_file), "to_address": "ops@ferreteria.test"})
    assert res["rc"] == 0 and res["status"] == "ok", res
    assert res["settings"]["security"] == "tls" and res["tls"]["used"] is True and res["tls"]["verified"] is True
    assert res["tls"]["offered"] is None


def test_refused_recipient_and_required_auth(tmp_path, server_factory):
    server = server_factory(refuse=["nobody@ferreteria.test"])
    path = env_file(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=server.port)
    res = run_module("smtp_check", {"env_file": path, "to_address": "nobody@ferreteria.test"})
    assert codes(res) == ["smtp_recipient_rejected"] and res["envelope"]["code"] == 550, res
    locked = server_factory(users={USER: PASSWORD}, auth_required=True)
    res = run_module("smtp_check", {"env_file": env_file(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=locked.port),
                                    "to_address": "ops@ferreteria.test"})
    assert codes(res) == ["smtp_auth_required"] and res["envelope"]["code"] == 530, res


def test_starttls_asked_of_a_server_without_it_and_plaintext_warned(tmp_path, pki, server_factory):
    plain = server_factory()
    res = run_module("smtp_check", {"env_file": env_file(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=plain.port),
                                    "security": "starttls"})
    assert codes(res) == ["smtp_starttls_missing"] and res["settings"]["source"]["security"] == "option", res
    offered = server_factory(pki=pki, mode="starttls")
    res = run_module("smtp_check", {"env_file": env_file(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=offered.port)})
    assert res["status"] == "warning" and codes(res) == ["smtp_plaintext"], res


def test_nothing_listening_unset_host_and_options_over_the_env_file(tmp_path):
    port = free_port()
    res = run_module("smtp_check", {"env_file": env_file(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=port), "timeout": 3})
    assert res["rc"] == 0 and codes(res) == ["smtp_unreachable"] and res["reachable"] is False, res
    assert "127.0.0.1:%d" % port in res["findings"][0]["message"]
    unset = run_module("smtp_check", {"env_file": env_file(tmp_path, SMTP_PORT=25)})
    assert codes(unset) == ["smtp_not_configured"], unset
    mail_names = {"host": "MAIL_SERVER", "port": "MAIL_PORT"}
    flask = run_module("smtp_check", {"env_file": env_file(tmp_path, MAIL_SERVER="127.0.0.1", MAIL_PORT=port),
                                      "env_names": mail_names, "timeout": 3})
    assert flask["settings"]["env_names_present"] == ["MAIL_PORT", "MAIL_SERVER"] and codes(flask) == ["smtp_unreachable"]
    dns = run_module("smtp_check", {"host": "no-such-host.invalid", "port": 25, "timeout": 3})
    assert codes(dns) == ["smtp_dns"] and dns["settings"]["source"]["host"] == "option", dns


def test_bad_input_is_one_message_without_traceback(tmp_path):
    missing = run_module("smtp_check", {"env_file": str(tmp_path / "missing.env")})
    assert missing.get("failed") is True and "cannot read the env file" in missing["msg"], missing
    badport = run_module("smtp_check", {"env_file": env_file(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT="twenty-five")})
    assert badport.get("failed") is True and "not a number" in badport["msg"], badport
    names = run_module("smtp_check", {"env_names": {"hostname": "X"}})
    assert names.get("failed") is True and "unknown keys hostname" in names["msg"]
    gone = run_module("smtp_check", {"host": "127.0.0.1", "netns_pid": 999999999})
    assert gone.get("failed") is True and "is it running" in gone["msg"], gone
    for res in (missing, badport, names, gone):
        assert "Traceback" not in res["raw"]


def test_the_check_runs_from_the_network_namespace_of_the_app(tmp_path, server_factory):
    """A process in a network namespace of its own (unshare -n: only a loopback, down) cannot reach the server
    the host reaches: checked from its namespace, 127.0.0.1 is its own loopback, as it is for a container."""
    server = server_factory()
    path = env_file(tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=server.port)
    proc = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        time.sleep(0.5)
        from_host = run_module("smtp_check", {"env_file": path})
        from_app = run_module("smtp_check", {"env_file": path, "netns_pid": proc.pid, "timeout": 3})
    finally:
        proc.kill()
        proc.wait()
    assert from_host["status"] == "ok", from_host
    assert codes(from_app) == ["smtp_unreachable"], from_app
