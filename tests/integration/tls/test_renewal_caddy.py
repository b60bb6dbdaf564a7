# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_cert remediate (caddy kind) for real: pebble (a test ACME server) and Caddy on loopback.

pebble runs with PEBBLE_VA_ALWAYS_VALID=1 (no challenge is really fetched) and issues 10-minute certificates,
so the served certificate is due (0 days left); Caddy runs from a JSON config in a temp dir (own admin
endpoint, storage, ports) with a renewal window of 99.9 % of the lifetime, so a forced reload makes it renew.
The role reloads Caddy (caddy reload --force, no systemd here) and must see a later not_after served; with the
ACME server gone the renewal fails and the run ends with the reason while the old certificate stays served.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port, run_module
from playbook_runner import run_playbook
from tls_support import Pki, write_chain

NAME = "caddy.example.test"


def _wait_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("port %d did not open" % port)


def _served(port, ca=None):
    args = {"endpoints": [{"host": "127.0.0.1", "port": port, "server_name": NAME}], "timeout": 2}
    if ca:
        args["ca_cert"] = ca
    return run_module("cert_check", args)["certificates"][0]


@pytest.fixture()
def caddy_site():
    if not shutil.which("pebble") or not shutil.which("caddy"):
        pytest.skip("pebble and caddy are needed")
    base = Path(tempfile.mkdtemp(prefix="sre-caddy-"))
    pki = Pki()
    certfile, keyfile = write_chain(base, "pebble", pki.leaf(300, sans=("localhost", "127.0.0.1")), pki.intermediate)
    bundle = base / "pebble-tls.pem"
    bundle.write_bytes(pki.root.pem + pki.intermediate.pem)
    acme, mgmt, admin, https = free_port(), free_port(), free_port(), free_port()
    (base / "pebble.json").write_text(json.dumps({"pebble": {
        "listenAddress": "127.0.0.1:%d" % acme, "managementListenAddress": "127.0.0.1:%d" % mgmt,
        "certificate": str(certfile), "privateKey": str(keyfile), "httpPort": free_port(), "tlsPort": free_port(),
        "ocspResponderURL": "", "externalAccountBindingRequired": False, "certificateValidityPeriod": 600}}))
    env = dict(os.environ, PEBBLE_VA_ALWAYS_VALID="1", PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
    procs = {"pebble": subprocess.Popen(["pebble", "-config", str(base / "pebble.json")], env=env,
                                        stdout=open(base / "pebble.log", "w"), stderr=subprocess.STDOUT)}
    config = base / "caddy.json"
    config.write_text(json.dumps({
        "admin": {"listen": "127.0.0.1:%d" % admin},
        "storage": {"module": "file_system", "root": str(base / "storage")},
        "logging": {"logs": {"default": {"writer": {"output": "file", "filename": str(base / "caddy.log")}}}},
        "apps": {
            "http": {"http_port": free_port(), "https_port": https, "servers": {"site": {
                "listen": ["127.0.0.1:%d" % https], "automatic_https": {"disable_redirects": True},
                "routes": [{"match": [{"host": [NAME]}],
                            "handle": [{"handler": "static_response", "body": "ok"}]}]}}},
            "tls": {"certificates": {"automate": [NAME]}, "automation": {"policies": [{
                "subjects": [NAME], "renewal_window_ratio": 0.999,
                "issuers": [{"module": "acme", "ca": "https://127.0.0.1:%d/dir" % acme,
                             "trusted_roots_pem_files": [str(bundle)],
                             "challenges": {"http": {"alternate_port": free_port()},
                                            "tls-alpn": {"disabled": True}}}]}]}},
        }}))
    try:
        _wait_port(acme)
        caddy_env = dict(os.environ, HOME=str(base), XDG_DATA_HOME=str(base / "xdg"), XDG_CONFIG_HOME=str(base / "xdg"))
        procs["caddy"] = subprocess.Popen(["caddy", "run", "--config", str(config)], env=caddy_env, cwd=base,
                                          stdout=open(base / "caddy.out", "w"), stderr=subprocess.STDOUT)
        _wait_port(https)
        with urllib.request.urlopen("https://127.0.0.1:%d/roots/0" % mgmt, timeout=10,
                                    context=ssl.create_default_context(cafile=str(bundle))) as answer:
            (base / "acme-root.pem").write_bytes(answer.read())
        deadline = time.monotonic() + 120  # Caddy obtains its first certificate in the background (slow when loaded)
        while _served(https).get("error_category") and time.monotonic() < deadline:
            time.sleep(0.3)
        yield {"base": base, "https": https, "admin": admin, "config": config, "procs": procs,
               "ca": str(base / "acme-root.pem")}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)


def _remediate(site, check=False):
    extra = {
        "tls_cert_endpoints": [{"host": "127.0.0.1", "port": site["https"], "server_name": NAME}],
        "tls_cert_ca_cert": site["ca"], "tls_cert_proxy_kind": "caddy", "tls_cert_caddy_reload": "command",
        "tls_cert_caddy_config": str(site["config"]),
        "tls_cert_caddy_args": ["--address", "127.0.0.1:%d" % site["admin"]],
        "tls_cert_recheck_retries": 10, "tls_cert_recheck_delay": 1,
        "sre_confirm": "yes",
    }
    return run_playbook("tls_cert_remediate", tmp_path=site["base"], target="localhost", extra_vars=extra,
                        check=check, venv_on_path=True)


def test_caddy_renews_on_reload_and_serves_a_later_certificate(caddy_site):
    before = _served(caddy_site["https"], caddy_site["ca"])
    assert before.get("error") is None, before
    assert before["days_left"] == 0 and before["chain_valid"] is True and before["status"] == "critical"
    assert before["issuer"].startswith("CN=Pebble Intermediate CA")

    planned = _remediate(caddy_site, check=True)
    assert planned.returncode == 0, planned.stdout[-3000:]
    assert "Due for renewal" in planned.stdout and "changed=0" in planned.stdout
    assert _served(caddy_site["https"])["not_after"] == before["not_after"]

    time.sleep(1.1)  # not_after has a one-second resolution
    run = _remediate(caddy_site)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    after = _served(caddy_site["https"], caddy_site["ca"])
    assert after["not_after"] > before["not_after"] and after["serial"] != before["serial"]
    assert after["chain_valid"] is True and after["hostname_match"] is True
    assert "now expires %s" % after["not_after"] in run.stdout


def test_caddy_renewal_failure_keeps_the_old_certificate_and_says_why(caddy_site):
    before = _served(caddy_site["https"], caddy_site["ca"])
    assert before.get("error") is None, before
    pebble = caddy_site["procs"]["pebble"]
    pebble.terminate()
    pebble.wait(10)  # the ACME server is gone: Caddy cannot renew
    time.sleep(1.1)
    run = _remediate(caddy_site)
    assert run.returncode != 0
    out = run.stdout.replace("\n", " ")
    assert "did not take effect: the old certificate stays served" in out, run.stdout[-3000:]
    assert "not_after before %s" % before["not_after"] in " ".join(out.split())
    assert _served(caddy_site["https"])["not_after"] == before["not_after"]
