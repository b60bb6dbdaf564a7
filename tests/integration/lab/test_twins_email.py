# SPDX-License-Identifier: GPL-3.0-or-later
"""email_diagnose on the Ferreteria twin (lab-compose, the compose project ferreteria), from the lab inventory
alone. Its .env.prod says SMTP_HOST=127.0.0.1 SMTP_PORT=25: the app's own loopback, inside the web container.
The check must run where the app runs: first with nothing listening there (smtp_unreachable, the top finding),
then with a real SMTP server (aiosmtpd) started inside the web container's network namespace only, which the docker
host cannot reach at 127.0.0.1:25: the mail path is then clean up to an accepted envelope, and nothing is sent; a
confirmed email_remediate sends exactly one test message there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from playbook_runner import LAB_INVENTORY, lab_marks, run_playbook

pytestmark = lab_marks()


def web_pid():
    ids = subprocess.run(["docker", "ps", "-q", "--filter", "label=com.docker.compose.project=ferreteria",
                          "--filter", "label=com.docker.compose.service=web"],
                         capture_output=True, text=True, check=False).stdout.split()
    assert len(ids) == 1, "the ferreteria web container is not running (lab/up.sh)"
    pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", ids[0]], capture_output=True, text=True,
                         check=True).stdout.strip()
    return int(pid)


def host_port_open(port):
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def diagnose(tmp_path, extra=None):
    r = run_playbook("email_diagnose", tmp_path=tmp_path, inventory=LAB_INVENTORY, limit="lab-compose", check=True,
                     extra_vars=dict({"email_to": "ops@ferreteria.test"}, **(extra or {})), timeout=300)
    assert r.rc == 0 and r.changed("lab-compose") == 0 and r.failed("lab-compose") == 0, r.output
    return r, r.last_record().get("findings") or []


@pytest.fixture()
def smtp_in_web_netns(tmp_path):
    """aiosmtpd (Debugging handler: each message it takes is printed to mail.log) on 127.0.0.1:25 in the web
    container's network namespace: nsenter -n only, so the server is this venv's Python on the docker host, listening
    on the container's loopback."""
    log = open(tmp_path / "mail.log", "w")  # pylint: disable=consider-using-with
    proc = subprocess.Popen(["nsenter", "-t", str(web_pid()), "-n", sys.executable, "-m", "aiosmtpd", "-n",
                             "-l", "127.0.0.1:25", "-c", "aiosmtpd.handlers.Debugging", "stdout"],
                            stdout=log, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    proc.mail_log = tmp_path / "mail.log"
    ready = False
    for dummy in range(100):
        probe = subprocess.run(["nsenter", "-t", str(web_pid()), "-n", sys.executable, "-c",
                                "import socket; socket.create_connection(('127.0.0.1', 25), 1).close()"],
                               capture_output=True, check=False)
        if probe.returncode == 0:
            ready = True
            break
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    assert ready, proc.stderr.read().decode() if proc.poll() is not None else "aiosmtpd did not listen"
    yield proc
    proc.terminate()
    proc.wait(10)
    log.close()


def test_no_mail_server_where_the_app_runs_is_the_top_finding(tmp_path):
    r, findings = diagnose(tmp_path)
    assert findings and findings[0]["code"] == "smtp_unreachable", findings
    assert "127.0.0.1:25" in findings[0]["message"], findings[0]
    out = " ".join(r.output.split())
    assert "Checked from the network of the app container (process %d)" % web_pid() in out, out[-3000:]
    assert "SMTP_HOST, SMTP_PORT" in out and "lab-only-flask-secret" not in out, out[-3000:]  # names, never values


def test_a_server_in_the_app_containers_network_only_is_reached(tmp_path, smtp_in_web_netns):
    assert not host_port_open(25)  # the docker host has no mail server: only the container's loopback has one
    r, findings = diagnose(tmp_path)
    codes = [f["code"] for f in findings]
    assert "smtp_unreachable" not in codes and "smtp_recipient_rejected" not in codes, findings
    # aiosmtpd without TLS: the app talks to it in plaintext, without credentials (the twin sets none)
    assert all(f["severity"] != "critical" for f in findings), findings
    out = " ".join(r.output.split())
    assert "connected to 127.0.0.1:25" in out and "envelope accepted" in out, out[-3000:]
    # from the host, the same settings reach nothing: the netns made the difference
    (tmp_path / "host").mkdir()
    r2, host_findings = diagnose(tmp_path / "host", {"email_from_app_network": False})
    assert host_findings and host_findings[0]["code"] == "smtp_unreachable", host_findings
    assert "Checked from the host" in " ".join(r2.output.split())
    assert smtp_in_web_netns.poll() is None
    assert "MESSAGE FOLLOWS" not in smtp_in_web_netns.mail_log.read_text()  # diagnose sent nothing


def test_remediate_sends_one_test_message_from_the_app_containers_network(tmp_path, smtp_in_web_netns):
    r = run_playbook("email_remediate", tmp_path=tmp_path, inventory=LAB_INVENTORY, limit="lab-compose",
                     extra_vars={"email_to": "ops@ferreteria.test", "email_subject": "lab twin check",
                                 "sre_confirm": "yes"}, timeout=300)
    out = " ".join(r.output.split())
    assert r.rc == 0 and r.failed("lab-compose") == 0, r.output
    assert "Test message accepted by the server for ops@ferreteria.test" in out, out[-3000:]
    mail = smtp_in_web_netns.mail_log.read_text()
    assert mail.count("MESSAGE FOLLOWS") == 1 and "Subject: lab twin check" in mail, mail
    assert "lab-only-flask-secret" not in out
