# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/high_resource_*.yml against the running lab: lab-systemd's processes, the swap plan, Fly memory (FAKE flyctl)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CONTAINER = "sre-lab-systemd"
SWAP = "/swapfile.sre-runbooks-test"

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        subprocess.run(["docker", "inspect", CONTAINER], capture_output=True, check=False).returncode != 0,
        reason="docker inspect %s failed: the lab is not running (lab/up.sh)" % CONTAINER),
]


def playbook(tmp_path, name, extra=None, check=False, host="lab-systemd"):
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/%s.yml" % name, "-l", host,
           "-e", json.dumps(extra or {}), "-v"] + (["--check"] if check else [])
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", SRE_INCIDENT_DIR=str(tmp_path / "incidents"),
               FAKE_FLY_STATE=str(tmp_path / "fly" / "state.json"))
    proc = subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    recap = re.search(host + r"\s+: ok=\d+\s+changed=(\d+)", out)
    return proc.returncode, int(recap.group(1)) if recap else None, " ".join(out.split())


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
