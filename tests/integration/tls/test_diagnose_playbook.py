# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/tls_cert_diagnose.yml with ansible-playbook against localhost: loopback TLS servers and files.

Under --check it reports changed=0 and the same findings; tls_cert_fail_on makes it fail with the reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, ensure_collection_link
from tls_support import Pki, TlsServer, write_chain


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pki = Pki()
    base = tmp_path_factory.mktemp("diag")
    ok_cert, ok_key = write_chain(base, "ok", pki.leaf(90), pki.intermediate)
    soon_cert, soon_key = write_chain(base, "soon", pki.leaf(3), pki.intermediate)
    ok, soon = TlsServer(ok_cert, ok_key), TlsServer(soon_cert, soon_key)
    disk = base / "disk"
    disk.mkdir()
    (disk / "fullchain.pem").write_bytes(pki.leaf(20).pem + pki.intermediate.pem)
    ca = base / "ca.pem"
    ca.write_bytes(pki.root.pem)
    yield {"base": base, "ok": ok.port, "soon": soon.port, "disk": str(disk), "ca": str(ca)}
    ok.close()
    soon.close()


def _diagnose(site, check=True, **extra_vars):
    ensure_collection_link()
    extra = {
        "sre_tls_endpoints": [{"host": "127.0.0.1", "port": site["ok"], "server_name": "localhost"},
                              "127.0.0.1:%d" % site["soon"]],
        "sre_tls_paths": [site["disk"]], "tls_cert_ca_cert": site["ca"],
        "ansible_python_interpreter": sys.executable,
    }
    extra.update(extra_vars)
    env = dict(os.environ, SRE_INCIDENT_DIR=str(site["base"] / "incidents"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "playbooks/tls_cert_diagnose.yml", "-e", "target=localhost", "-e", json.dumps(extra)]
    if check:
        argv.append("--check")
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def _recap(stdout):
    match = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", stdout)
    assert match, stdout[-2000:]
    return [int(x) for x in match.groups()]


def test_diagnose_check_mode_changes_nothing(site):
    run = _diagnose(site, check=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    _ok, changed, _unreachable, failed = _recap(run.stdout)
    assert changed == 0 and failed == 0
    out = run.stdout
    assert "127.0.0.1:%d: ok, CN=localhost issued by CN=Test Intermediate CA" % site["ok"] in out
    assert "127.0.0.1:%d: critical" % site["soon"] in out and "(3 days)" in out
    assert "%s/fullchain.pem: warning" % site["disk"] in out
    assert "Status: critical (3 certificates)" in out
    assert "Soonest expiry: 127.0.0.1:%d in 3 days" % site["soon"] in out


def test_diagnose_without_check_is_the_same(site):
    checked, applied = _diagnose(site, check=True), _diagnose(site, check=False)
    assert applied.returncode == 0 and _recap(applied.stdout)[1] == 0

    def summary(stdout):
        return [line.strip() for line in stdout.splitlines() if "Status:" in line or "Soonest expiry:" in line]

    assert summary(applied.stdout) == summary(checked.stdout) != []


def test_diagnose_fail_on_critical(site):
    run = _diagnose(site, check=True, tls_cert_fail_on="critical")
    assert run.returncode != 0
    assert "TLS certificates: status critical" in run.stdout and "expires in 3 days" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
