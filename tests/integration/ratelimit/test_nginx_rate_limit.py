# SPDX-License-Identifier: GPL-3.0-or-later
"""nginx_rate_limit against a real nginx on loopback (a throwaway prefix, its own master, port and logs).

Real 429s fill the error log with "limiting requests" lines; the module counts them per zone and client (the query
string, which carries a token here, never comes back), raises the zone's rate (backup kept outside the conf
directory, nginx -t, reload: requests pass), exempts loopback with an allow-list block, refuses a change nginx -t
refuses (the file as it was), and puts the configuration back once."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import run_module

NGINX = "/usr/sbin/nginx"
TOKEN = "rl-token-5d1f0c"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def nginx(tmp_path):
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed (scripts/bootstrap.sh installs it)")
    prefix = tmp_path / "nginx"
    (prefix / "conf.d").mkdir(parents=True)
    (prefix / "tmp").mkdir()
    port = free_port()
    (prefix / "nginx.conf").write_text(
        "pid %(p)s/nginx.pid;\nerror_log %(p)s/error.log info;\nuser root;\nevents { worker_connections 64; }\n"
        "http {\n  access_log %(p)s/access.log;\n  client_body_temp_path %(p)s/tmp;\n  proxy_temp_path %(p)s/tmp;\n"
        "  fastcgi_temp_path %(p)s/tmp;\n  uwsgi_temp_path %(p)s/tmp;\n  scgi_temp_path %(p)s/tmp;\n"
        "  include %(p)s/conf.d/*.conf;\n}\n" % {"p": prefix})
    # conf.d/app.conf is a link to available/app.conf, as sites-enabled/* are on Debian: the link must stay one
    (prefix / "available").mkdir()
    conf = prefix / "conf.d" / "app.conf"
    conf.symlink_to(prefix / "available" / "app.conf")
    conf.write_text("limit_req_zone $binary_remote_addr zone=api:1m rate=1r/m;\n"
                    "server {\n    listen 127.0.0.1:%d;\n    location / {\n        limit_req zone=api;\n"
                    "        limit_req_status 429;\n        root %s;\n        try_files /ok.txt =404;\n    }\n}\n"
                    % (port, prefix / "www"))  # (a "return" would answer before limit_req looks)
    (prefix / "www").mkdir()
    (prefix / "www" / "ok.txt").write_text("ok\n")
    (prefix / "available" / "app.conf").chmod(0o644)
    wrapper = tmp_path / "nginx-wrap"
    wrapper.write_text("#!/bin/sh\nexec %s -p %s -c %s/nginx.conf \"$@\"\n" % (NGINX, prefix, prefix))
    wrapper.chmod(0o755)
    subprocess.run([str(wrapper)], check=True, capture_output=True)
    box = {"prefix": prefix, "conf": conf, "port": port, "wrapper": str(wrapper), "state": tmp_path / "state"}
    yield box
    pid = (prefix / "nginx.pid").read_text().strip() if (prefix / "nginx.pid").exists() else ""
    subprocess.run([str(wrapper), "-s", "stop"], capture_output=True, check=False)
    if pid.isdigit():
        for dummy in range(50):
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)


def codes(box, n, gap=0.0):
    out = []
    for dummy in range(n):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/api/items?token=%s" % (box["port"], TOKEN), timeout=5) as r:
                out.append(r.status)
        except urllib.error.HTTPError as exc:
            out.append(exc.code)
        time.sleep(gap)
    return out


def limits(box, check_mode=False, diff=False, **args):
    base = {"nginx_bin": box["wrapper"], "reload_command": [box["wrapper"], "-s", "reload"],
            "error_log": [str(box["prefix"] / "error.log")], "state_dir": str(box["state"]), "since": "10m"}
    base.update(args)
    res = run_module("nginx_rate_limit", base, check_mode=check_mode, diff=diff)
    assert "Traceback" not in res["raw"] and TOKEN not in res["raw"], res["raw"]
    return res


def reloaded(box, before):
    """Wait until the master has reloaded (new worker pids)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        if workers(box) and workers(box) != before:
            return True
        time.sleep(0.1)
    return False


def workers(box):
    master = (box["prefix"] / "nginx.pid").read_text().strip()
    out = subprocess.run(["ps", "-ww", "--ppid", master, "-o", "pid="], capture_output=True, text=True,
                         check=False).stdout
    return sorted(out.split())


def test_rejections_counted_rate_raised_allow_listed_and_put_back(nginx):
    box = nginx
    original = box["conf"].read_text()
    assert codes(box, 5) == [200, 429, 429, 429, 429]
    res = limits(box)
    assert res["rc"] == 0 and res["changed"] is False and res["rejected"] == 4, res["raw"]
    zone = res["zones"][0]
    assert (zone["name"], zone["rate"], zone["rejected"], zone["clients"], zone["file"]) == (
        "api", "1r/m", 4, 1, str(box["conf"])), zone
    assert zone["used_in"] == [{"file": str(box["conf"]), "line": 5, "burst": None, "nodelay": False}]
    assert res["top_clients"] == [{"client": "127.0.0.1", "rejected": 4, "zones": ["api"], "share_pct": 100.0}]
    assert res["top_requests"] == [{"request": "GET /api/items", "rejected": 4}]
    found = {f["code"] for f in res["findings"]}
    assert {"rate_limited", "abusive_client"} <= found and res["status"] == "warning", res["findings"]

    # --check: the plan and the diff, nothing written
    res = limits(box, check_mode=True, diff=True, zone="api", rate="6000r/m")
    assert res["changed"] is True and res["would_change"] == [str(box["conf"])] and res["changed_files"] == []
    assert "rate=6000r/m" in res["diff"][0]["after"] and box["conf"].read_text() == original
    assert not box["state"].exists()

    before = workers(box)
    res = limits(box, zone="api", rate="6000r/m")
    assert res["rc"] == 0 and res["changed"] is True, res["raw"]
    assert "rate=6000r/m;" in box["conf"].read_text() and res["zones"][0]["rate"] == "6000r/m"
    backup = Path(res["changed_files"][0]["backup"])
    assert backup.read_text() == original and stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert str(box["state"]) in str(backup) and stat.S_IMODE(box["conf"].stat().st_mode) == 0o644
    assert "syntax is ok" in res["nginx_test"] and reloaded(box, before) and box["conf"].is_symlink()
    assert codes(box, 3, gap=0.05) == [200, 200, 200]
    assert limits(box, zone="api", rate="6000r/m")["changed"] is False  # already so

    # loopback exempt: the 1 r/m rate back in the file, and still no 429
    before = workers(box)
    res = limits(box, zone="api", rate="1r/m", allow=["127.0.0.1"])
    assert res["rc"] == 0 and res["zones"][0]["allowed"] == ["127.0.0.1/32"], res["raw"]
    assert reloaded(box, before) and codes(box, 4) == [200, 200, 200, 200]

    # a change nginx -t refuses: the file is as it was, one message
    refusing = box["prefix"].parent / "nginx-refuses"
    refusing.write_text("#!/bin/sh\ncase \"$1\" in -t) echo 'nginx: [emerg] refused for the test' >&2; exit 1;; esac\n"
                        "exec %s \"$@\"\n" % box["wrapper"])
    refusing.chmod(0o755)
    now = box["conf"].read_text()
    res = limits(box, zone="api", rate="5r/s", nginx_bin=str(refusing))
    assert res["rc"] == 1 and "nginx -t refused the change" in res["msg"] and "refused for the test" in res["msg"]
    assert box["conf"].read_text() == now

    # the way back: as before the first change, once
    before = workers(box)
    res = limits(box, restore=True)
    assert res["rc"] == 0 and res["changed"] is True and box["conf"].read_text() == original, res["raw"]
    assert box["conf"].is_symlink()
    assert res["restored"] == [{"file": str(box["conf"]), "backup": str(backup)}]
    assert reloaded(box, before)
    time.sleep(1)
    assert codes(box, 3)[1:] == [429, 429]
    assert limits(box, restore=True)["changed"] is False
    records = sorted(p.name for p in box["state"].iterdir())
    assert "changes.json" not in records and any(name.endswith(".restored") for name in records), records


def test_bad_input_is_one_message(nginx, tmp_path):
    box = nginx
    res = limits(box, zone="nope", rate="5r/s")
    assert res["rc"] == 1 and "zone nope is not defined in the nginx configuration (zones: api)" in res["msg"]
    res = limits(box, zone="api", rate="fast")
    assert res["rc"] == 1 and "rate must look like 20r/s" in res["msg"]
    res = limits(box, zone="api", allow=["not-an-ip"])
    assert res["rc"] == 1 and "not an address or network: 'not-an-ip'" in res["msg"]
    res = limits(box, rate="5r/s")
    assert res["rc"] == 1 and "rate and allow need zone" in res["msg"]
    res = limits(box, since="soon")
    assert res["rc"] == 1 and "invalid duration 'soon'" in res["msg"]
    res = limits(box, nginx_bin=str(tmp_path / "missing-nginx"))
    assert res["rc"] == 1 and "missing-nginx (nginx_bin): not found here" in res["msg"], res["msg"]
    res = limits(box, error_log=[str(tmp_path / "none.log")])
    assert res["rc"] == 0 and "error_log_unreadable" in {f["code"] for f in res["findings"]}
    assert json.dumps(res).count("Traceback") == 0


def test_a_file_edited_by_hand_after_the_change_is_not_put_back(nginx):
    box = nginx
    res = limits(box, zone="api", rate="100r/s")
    assert res["rc"] == 0 and res["changed"] is True, res["raw"]
    edited = box["conf"].read_text().replace("rate=100r/s", "rate=7r/s")
    box["conf"].write_text(edited)
    res = limits(box, restore=True)
    assert res["rc"] == 1 and "was edited after the rate_limit change (by hand?): nothing was put back" in res["msg"]
    assert box["conf"].read_text() == edited and (box["state"] / "changes.json").exists()
