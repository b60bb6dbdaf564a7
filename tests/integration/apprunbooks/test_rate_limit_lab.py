# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/rate_limit_*.yml on the CookCam twin (lab-pm2): its own nginx, with the zones of runbook 001 section 5
(api 10r/s burst 10, webhooks 30r/s), under systemd.

A burst of requests from inside the twin gets real 429s; diagnose counts them per zone and client; an unconfirmed
remediate only plans; a confirmed one raises the api zone (nginx -t, reload: the same burst passes) with a deadline,
and the systemd timer it leaves puts the file back by itself; an allow-list for loopback is put back by the
rollback, and a second rollback has nothing to do."""

from __future__ import annotations

import re
import subprocess
import time

from app_support import lab_marks, lab_playbook

HOST, CONTAINER = "lab-pm2", "sre-lab-pm2"
CONF = "/etc/nginx/sites-enabled/cookcam-api.conf"
pytestmark = lab_marks(CONTAINER)

BURST = ("import urllib.request, urllib.error\n"
         "codes = []\n"
         "for i in range(40):\n"
         "    try:\n"
         "        codes.append(urllib.request.urlopen('http://127.0.0.1/health?k=%d' % i, timeout=5).status)\n"
         "    except urllib.error.HTTPError as exc:\n"
         "        codes.append(exc.code)\n"
         "print(codes.count(429))\n")


def in_twin(*argv, check=True):
    proc = subprocess.run(["docker", "exec", CONTAINER, *argv], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 or not check, proc.stdout + proc.stderr
    return proc.stdout


def rejected_of_a_burst():
    return int(in_twin("python3", "-c", BURST).strip())


def playbook(tmp_path, name, extra=None, check=False):
    rc, changed, out = lab_playbook(tmp_path, name, extra, check=check, host=HOST)
    return rc, changed, " ".join(out.split())


def test_rejections_then_a_raise_that_reverts_itself_and_an_allow_list_rolled_back(tmp_path):
    original = in_twin("cat", CONF)
    assert "zone=api:10m rate=10r/s" in original
    try:
        time.sleep(1.5)  # the zone's bucket empties
        assert rejected_of_a_burst() >= 10
        rc, changed, out = playbook(tmp_path, "rate_limit_diagnose", {"rate_limit_since": "5m"}, check=True)
        assert rc == 0 and changed == 0, out
        assert "rate_limited" in out and "abusive_client" in out and "Top clients: 127.0.0.1" in out, out
        assert re.search(r"Zones: api 10r/s \(\d+ rejected from 1 clients; %s:2\)" % CONF, out), out

        raise_it = {"rate_limit_zone": "api", "rate_limit_rate": "500r/s", "rate_limit_revert_after": "45s"}
        rc, changed, out = playbook(tmp_path, "rate_limit_remediate", raise_it)
        assert rc == 0 and changed == 0 and "Not confirmed: nothing is changed" in out, out
        assert "zone api: rate 10r/s -> 500r/s in %s" % CONF in out and in_twin("cat", CONF) == original, out
        rc, changed, out = playbook(tmp_path, "rate_limit_remediate", dict(raise_it, sre_confirm="yes"), check=True)
        assert rc == 0 and changed == 0 and in_twin("cat", CONF) == original, out

        rc, changed, out = playbook(tmp_path, "rate_limit_remediate", dict(raise_it, sre_confirm="yes"))
        assert rc == 0 and changed == 1 and "nginx -t passed, reloaded, back by itself at" in out, out
        assert "zone=api:10m rate=500r/s" in in_twin("cat", CONF)
        assert in_twin("stat", "-c", "%a", CONF).strip() == "644"
        time.sleep(1)
        assert rejected_of_a_burst() == 0
        rc, changed, out = playbook(tmp_path, "rate_limit_diagnose", check=True)
        assert "A change of the rate_limit runbook is in place" in out and "change_in_place" in out, out

        # nobody comes back: the timer puts the file back, tests and reloads
        deadline = time.time() + 150
        while time.time() < deadline and in_twin("cat", CONF) != original:
            time.sleep(2)
        status = in_twin("systemctl", "status", "sre-rate-limit-revert.service", check=False)
        assert in_twin("cat", CONF) == original, status
        time.sleep(2)
        assert rejected_of_a_burst() >= 10
        rc, changed, out = playbook(tmp_path, "rate_limit_rollback", {"sre_confirm": "yes"})
        assert rc == 0 and changed == 0 and "Nothing to roll back on lab-pm2" in out, out

        # loopback exempt until the rollback
        allow = {"rate_limit_zone": "api", "rate_limit_allow": ["127.0.0.0/8"], "rate_limit_revert_after": "",
                 "sre_confirm": "yes"}
        rc, changed, out = playbook(tmp_path, "rate_limit_remediate", allow)
        assert rc == 0 and changed == 1, out
        assert "zone=api_sre_allow:10m" in in_twin("cat", CONF) and "zone=api_sre_allow burst=10" in in_twin("cat", CONF)
        time.sleep(1)
        assert rejected_of_a_burst() == 0
        rc, changed, out = playbook(tmp_path, "rate_limit_rollback")
        assert rc == 0 and changed == 0 and "Not confirmed" in out and "zone=api_sre_allow" in in_twin("cat", CONF), out
        rc, changed, out = playbook(tmp_path, "rate_limit_rollback", {"sre_confirm": "yes"})
        assert rc == 0 and changed == 1 and in_twin("cat", CONF) == original, out
        rc, changed, out = playbook(tmp_path, "rate_limit_rollback", {"sre_confirm": "yes"})
        assert rc == 0 and changed == 0 and "Nothing to roll back" in out, out
    finally:
        if in_twin("cat", CONF) != original:
            subprocess.run(["docker", "exec", "-i", CONTAINER, "sh", "-c", "cat > %s && nginx -s reload" % CONF],
                           input=original, text=True, check=False)
        in_twin("systemctl", "stop", "sre-rate-limit-revert.timer", check=False)
        in_twin("rm", "-rf", "/var/lib/sre-runbooks/rate_limit", check=False)


def test_bad_zone_is_one_message(tmp_path):
    bad_zone = {"rate_limit_zone": "nope", "rate_limit_rate": "5r/s", "sre_confirm": "yes"}
    rc, changed, out = playbook(tmp_path, "rate_limit_remediate", bad_zone)
    assert rc != 0 and changed == 0, out
    assert "zone nope is not defined in the nginx configuration (zones: api, webhooks). Nothing was changed." in out, out
    rc, changed, out = playbook(tmp_path, "rate_limit_remediate", {"rate_limit_zone": "api", "rate_limit_rate": "fast"})
    assert rc != 0 and "rate_limit_rate (like 20r/s)" in out, out
