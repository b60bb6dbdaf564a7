# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/high_resource_*.yml against the running lab: lab-systemd's processes, the swap plan, Fly memory (FAKE flyctl),
the pm2 limit and its way back on the pm2 twin."""

from __future__ import annotations

import json
import re
import subprocess

from app_support import LAB_CONTAINER as CONTAINER, lab_marks, lab_playbook

SWAP = "/swapfile.sre-runbooks-test"

pytestmark = lab_marks(CONTAINER)


def playbook(tmp_path, name, extra=None, check=False, host="lab-systemd"):
    """lab_playbook at -v, with the output's whitespace folded (the assertions read it as one line)."""
    rc, changed, out = lab_playbook(tmp_path, name, extra, check=check, verbosity=1, host=host)
    return rc, changed, " ".join(out.split())


def test_diagnose_lists_top_processes(tmp_path):
    rc, changed, out = playbook(tmp_path, "high_resource_diagnose", check=True)
    assert rc == 0 and changed == 0, out
    assert re.search(r"Top processes by memory \(pid comm %cpu %mem rss\): \d+ \S+ [0-9.]+ [0-9.]+ \d+", out), out
    assert "postgres" in out and "OOM-killer events:" in out and "Instances of systemd saasresto" in out, out


def test_swap_is_only_planned_in_check_mode_or_without_confirm(tmp_path):
    extra = {"high_resource_swap_mb": 64, "high_resource_swap_file": SWAP}
    rc, changed, out = playbook(tmp_path, "high_resource_remediate", dict(extra, sre_confirm="yes"), check=True)
    assert rc == 0 and changed == 0 and "Would create a 64 MB swap file at %s and enable it (check mode)" % SWAP in out, out
    rc, changed, out = playbook(tmp_path, "high_resource_remediate", extra)
    assert rc == 0 and changed == 0 and "(not confirmed)" in out, out
    assert subprocess.run(["docker", "exec", CONTAINER, "test", "-e", SWAP], check=False).returncode == 1


def test_fly_memory_is_scaled_once_with_the_fake_flyctl(tmp_path):
    extra = {"high_resource_fly_memory_mb": 2048, "sre_confirm": "yes"}
    rc, changed, out = playbook(tmp_path, "high_resource_remediate", extra, host="lab-fly", check=True)
    assert rc == 0 and changed == 0 and "2 machines of 1024 MB" in out, out
    rc, changed, out = playbook(tmp_path, "high_resource_remediate", extra, host="lab-fly")
    assert rc == 0 and changed == 1, out
    rc, changed, out = playbook(tmp_path, "high_resource_remediate", extra, host="lab-fly")
    assert rc == 0 and changed == 0 and "2 machines of 2048 MB" in out, out


def pm2_limit():
    """cookcam-api's max_memory_restart in bytes (0: none), from pm2 jlist in the pm2 twin."""
    out = subprocess.run(["docker", "exec", "sre-lab-pm2", "sh", "-c", "PM2_HOME=/root/.pm2 pm2 jlist"],
                         capture_output=True, text=True, check=True).stdout
    procs = json.loads(out[out.index("["):out.rindex("]") + 1])
    return [p for p in procs if p["name"] == "cookcam-api"][0]["pm2_env"].get("max_memory_restart") or 0


def test_pm2_limit_goes_back_with_the_rollback(tmp_path):
    """On the pm2 twin: remediate sets max_memory_restart (recorded first), the rollback puts the limit it found back
    (pm2 restart, pm2 save) and removes the record; a second rollback has nothing to do."""
    before = pm2_limit()
    wanted = "450M" if before != 450 * 1048576 else "350M"
    record = "/var/lib/sre-runbooks/high_resource/cookcam-api.json"
    subprocess.run(["docker", "exec", "sre-lab-pm2", "rm", "-f", record], check=True)
    try:
        rc, changed, out = playbook(tmp_path, "high_resource_remediate", {"sre_confirm": "yes",
                                    "high_resource_pm2_max_memory_restart": wanted}, host="lab-pm2")
        assert rc == 0 and changed >= 1 and pm2_limit() == int(wanted[:-1]) * 1048576, out
        rc, changed, out = playbook(tmp_path, "high_resource_rollback", host="lab-pm2")
        assert rc == 0 and changed == 0 and "pm2: max_memory_restart back to" in out and "Not confirmed" in out, out
        rc, changed, out = playbook(tmp_path, "high_resource_rollback", {"sre_confirm": "yes"}, host="lab-pm2")
        assert rc == 0 and changed == 2 and pm2_limit() == before, out  # the restart with the limit, pm2 save
        rc, changed, out = playbook(tmp_path, "high_resource_rollback", {"sre_confirm": "yes"}, host="lab-pm2")
        assert rc == 0 and changed == 0 and "Nothing to roll back for cookcam-api" in out, out
    finally:
        subprocess.run(["docker", "exec", "sre-lab-pm2", "rm", "-f", record], check=False)
