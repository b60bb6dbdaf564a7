# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the incident-record tests: a vaulted inventory with a canary, a local webhook.

Not a conftest.py: a second module named conftest would shadow tests/conftest.py for `from conftest import`.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from playbook_runner import run_playbook

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BIN = Path(sys.executable).parent
CANARY = "canary-Zq7pW3xK9vLm2026"
VAULT_PASSWORD = "vault-pass-for-tests-4711"


def make_inventory(base: Path) -> Path:
    """hosts + group_vars/all/{vars.yml, vault.yml (ansible-vault encrypted, holds the canary)}."""
    inv = base / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.ini").write_text(
        "[local]\nlocalhost ansible_connection=local ansible_python_interpreter=\"{{ ansible_playbook_python }}\"\n")
    (inv / "group_vars" / "all" / "vars.yml").write_text(
        "---\nsre_db_name: appdb\nsre_db_password: \"{{ vault_sre_db_password }}\"\n")
    vault = inv / "group_vars" / "all" / "vault.yml"
    vault.write_text("---\nvault_sre_db_password: %s\nvault_api_token: token-%s\n" % (CANARY, CANARY[::-1]))
    pwfile = base / "vault-pass"
    pwfile.write_text(VAULT_PASSWORD + "\n")
    subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(pwfile),
                    "--encrypt-vault-id", "default", str(vault)],
                   check=True, capture_output=True, cwd=str(REPO))
    assert CANARY not in vault.read_text()
    return inv


@pytest.fixture
def playbook_env(tmp_path, collections_path):
    """run(playbook, extra_vars=None, check=False, verbosity=0, env=None, limit=None) -> PlaybookResult:
    a fixture playbook on the vaulted inventory, from the repository root (so its ansible.cfg enables the
    callback), SRE_INCIDENT_WEBHOOK unset unless env sets it, the Ansible log in run.log."""
    inv = make_inventory(tmp_path)
    incident_dir = tmp_path / "incidents"
    log = tmp_path / "ansible.log"

    def run(playbook, extra_vars=None, check=False, verbosity=0, env=None, limit=None):
        return run_playbook(FIXTURES / playbook, tmp_path=tmp_path, inventory=inv,
                            vault_password_file=tmp_path / "vault-pass", extra_vars=extra_vars, check=check,
                            verbosity=verbosity, incident_dir=incident_dir, log_path=log, limit=limit,
                            env=dict({"SRE_INCIDENT_WEBHOOK": None, "SRE_INCIDENT_WEBHOOK_NOTICES": None},
                                     **(env or {})))

    run.tmp = tmp_path
    run.incident_dir = incident_dir
    run.log = log
    return run


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server API)
        length = int(self.headers.get("Content-Length") or 0)
        self.server.bodies.append(self.rfile.read(length).decode("utf-8"))
        self.send_response(self.server.status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    """A Slack-like webhook on 127.0.0.1 that keeps every body it receives (and answers server.status, 200)."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    server.bodies = []
    server.status = 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = "http://127.0.0.1:%d/hook" % server.server_address[1]
    server.payloads = lambda: [json.loads(body) for body in server.bodies]
    yield server
    server.shutdown()
    server.server_close()
