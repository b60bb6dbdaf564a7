# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_cert remediate (nginx kind) for real: pebble (a test ACME server), certbot, nginx, all on loopback.

pebble runs with PEBBLE_VA_ALWAYS_VALID=1 (no challenge is really fetched); certbot uses the standalone
authenticator on a free port and its own config dir; nginx runs with its own config and prefix, reloaded by
signal. The role must renew, reload and see a later not_after; when nginx serves a copy that certbot does
not update, it must fail with the reason and leave the old certificate served.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import free_port, run_module
from playbook_runner import run_playbook
from tls_support import Pki, write_chain

pytestmark = pytest.mark.slow

NAME = "renew.example.test"


def _wait_port(port, timeout=15):
    import socket

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("port %d did not open" % port)


@pytest.fixture(scope="module")
def acme():
    for tool in ("pebble", "certbot", "nginx"):
        if not shutil.which(tool) and not Path("/usr/sbin/%s" % tool).exists():
            pytest.skip("%s not installed" % tool)
    base = Path(tempfile.mkdtemp(prefix="sre-renew-"))
    pki = Pki()
    certfile, keyfile = write_chain(base, "pebble", pki.leaf(300, sans=("localhost", "127.0.0.1")), pki.intermediate)
    bundle = base / "pebble-ca.pem"
    bundle.write_bytes(pki.root.pem + pki.intermediate.pem)
    port, mgmt = free_port(), free_port()
    (base / "pebble.json").write_text(json.dumps({"pebble": {
        "listenAddress": "127.0.0.1:%d" % port, "managementListenAddress": "127.0.0.1:%d" % mgmt,
        "certificate": str(certfile), "privateKey": str(keyfile),
        "httpPort": free_port(), "tlsPort": free_port(), "ocspResponderURL": "",
        "externalAccountBindingRequired": False}}))
    env = dict(os.environ, PEBBLE_VA_ALWAYS_VALID="1", PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
    pebble = subprocess.Popen(["pebble", "-config", str(base / "pebble.json"), "-strict=false"], env=env,
                              stdout=open(base / "pebble.log", "w"), stderr=subprocess.STDOUT)
    _wait_port(port)
    certbot_dirs = ["--config-dir", str(base / "le"), "--work-dir", str(base / "le-work"),
                    "--logs-dir", str(base / "le-logs")]
    certbot_env = dict(os.environ, REQUESTS_CA_BUNDLE=str(bundle))
    subprocess.run(["certbot", "certonly", "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
                    "--server", "https://127.0.0.1:%d/dir" % port, "--standalone",
                    "--http-01-address", "127.0.0.1", "--http-01-port", str(free_port()),
                    "-d", NAME] + certbot_dirs, env=certbot_env, check=True, capture_output=True, text=True)
    yield {"base": base, "certbot_dirs": certbot_dirs, "env": certbot_env,
           "live": base / "le" / "live" / NAME}
    pebble.terminate()
    pebble.wait(10)
    shutil.rmtree(base, ignore_errors=True)


def _nginx(base: Path, name: str, cert: Path, key: Path):
    prefix = base / name
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text("""
pid %(p)s/nginx.pid;
error_log %(p)s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %(p)s/tmp; proxy_temp_path %(p)s/tmp; fastcgi_temp_path %(p)s/tmp;
  uwsgi_temp_path %(p)s/tmp; scgi_temp_path %(p)s/tmp;
  server {
    listen 127.0.0.1:%(port)d ssl;
    server_name %(name)s;
    ssl_certificate %(cert)s;
    ssl_certificate_key %(key)s;
    location / { return 200 "ok\\n"; }
  }
}
""" % {"p": prefix, "port": port, "name": NAME, "cert": cert, "key": key})
    (prefix / "tmp").mkdir()
    subprocess.run(["nginx", "-c", str(conf), "-p", str(prefix)], check=True, capture_output=True)
    _wait_port(port)
    return port, ["-c", str(conf), "-p", str(prefix)]


def _stop_nginx(args):
    subprocess.run(["nginx"] + args + ["-s", "stop"], check=False, capture_output=True)


def _served_not_after(port):
    result = run_module("cert_check", {"endpoints": [{"host": "127.0.0.1", "port": port, "server_name": NAME}]})
    return result["certificates"][0]["not_after"]


def _remediate(acme, port, nginx_args, confirm=True):
    extra = {
        "tls_cert_endpoints": [{"host": "127.0.0.1", "port": port, "server_name": NAME}],
        "tls_cert_paths": [], "tls_cert_proxy_kind": "nginx", "tls_cert_renew_days": 100000,
        "tls_cert_certbot_cert_name": NAME,
        "tls_cert_certbot_extra_args": ["--force-renewal", "--no-random-sleep-on-renew"] + acme["certbot_dirs"],
        "tls_cert_nginx_args": nginx_args, "tls_cert_nginx_reload": "signal",
        "tls_cert_recheck_retries": 3, "tls_cert_recheck_delay": 1,
        "sre_confirm": confirm,
    }
    return run_playbook("tls_cert_remediate", tmp_path=acme["base"], target="localhost", extra_vars=extra,
                        env={"REQUESTS_CA_BUNDLE": acme["env"]["REQUESTS_CA_BUNDLE"]}, venv_on_path=True)


def test_unconfirmed_changes_nothing(acme):
    port, args = _nginx(acme["base"], "nginx-plan", acme["live"] / "fullchain.pem", acme["live"] / "privkey.pem")
    try:
        before = _served_not_after(port)
        run = _remediate(acme, port, args, confirm=False)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Not confirmed: nothing is changed." in run.stdout  # the guard (sre.runbooks.confirm)
        assert "changed=0" in run.stdout
        assert _served_not_after(port) == before
    finally:
        _stop_nginx(args)


def test_renewal_serves_a_later_certificate(acme):
    port, args = _nginx(acme["base"], "nginx-ok", acme["live"] / "fullchain.pem", acme["live"] / "privkey.pem")
    try:
        before = _served_not_after(port)
        time.sleep(1.1)  # not_after has a one-second resolution
        run = _remediate(acme, port, args)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        after = _served_not_after(port)
        assert after > before
        assert "now expires %s" % after in run.stdout
    finally:
        _stop_nginx(args)


def test_renewal_not_served_fails_with_reason(acme):
    # nginx serves a copy that certbot does not update: the renewal succeeds, the served certificate does not change
    copy = acme["base"] / "static"
    copy.mkdir()
    shutil.copy(acme["live"] / "fullchain.pem", copy / "fullchain.pem")
    shutil.copy(acme["live"] / "privkey.pem", copy / "privkey.pem")
    port, args = _nginx(acme["base"], "nginx-stale", copy / "fullchain.pem", copy / "privkey.pem")
    try:
        before = _served_not_after(port)
        time.sleep(1.1)
        run = _remediate(acme, port, args)
        assert run.returncode != 0
        assert "did not take effect: the old certificate stays served" in run.stdout, run.stdout[-3000:]
        assert "not_after before %s" % before in run.stdout.replace("\n", " ").replace("  ", " ")
        assert _served_not_after(port) == before
    finally:
        _stop_nginx(args)
