# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/tls_cert_diagnose.yml with ansible-playbook against localhost: loopback TLS servers and files.

Under --check it reports changed=0 and the same findings; tls_cert_fail_on makes it fail with the reason.
"""

from __future__ import annotations

import pytest

from playbook_runner import run_playbook
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
    extra = {
        "sre_tls_endpoints": [{"host": "127.0.0.1", "port": site["ok"], "server_name": "localhost"},
                              "127.0.0.1:%d" % site["soon"]],
        "sre_tls_paths": [site["disk"]], "tls_cert_ca_cert": site["ca"],
    }
    extra.update(extra_vars)
    return run_playbook("tls_cert_diagnose", tmp_path=site["base"], target="localhost", extra_vars=extra, check=check,
                        venv_on_path=True)


def _recap(run):
    recap = run.host("localhost")
    assert recap, run.stdout[-2000:]
    return [recap.ok, recap.changed, recap.unreachable, recap.failed]


def test_diagnose_check_mode_changes_nothing(site):
    run = _diagnose(site, check=True)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    _ok, changed, _unreachable, failed = _recap(run)
    assert changed == 0 and failed == 0
    out = " ".join(run.stdout.split())  # the callback folds long lines (a long basetemp path) at a space
    assert "127.0.0.1:%d: ok, CN=localhost issued by CN=Test Intermediate CA" % site["ok"] in out
    assert "127.0.0.1:%d: critical" % site["soon"] in out and "(3 days)" in out
    assert "%s/fullchain.pem: warning" % site["disk"] in out
    assert "Status: critical (3 certificates)" in out
    assert "Soonest expiry: 127.0.0.1:%d in 3 days" % site["soon"] in out


def test_diagnose_without_check_is_the_same(site):
    checked, applied = _diagnose(site, check=True), _diagnose(site, check=False)
    assert applied.rc == 0 and _recap(applied)[1] == 0

    def summary(stdout):
        return [line.strip() for line in stdout.splitlines() if "Status:" in line or "Soonest expiry:" in line]

    assert summary(applied.stdout) == summary(checked.stdout) != []


def test_diagnose_fail_on_critical(site):
    run = _diagnose(site, check=True, tls_cert_fail_on="critical")
    assert run.rc != 0
    assert "TLS certificates: status critical" in run.stdout and "expires in 3 days" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
