# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for plugins/modules/host_checks.py: the port probe, df's figures, meminfo and unit states."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.modules import host_checks  # noqa: E402


def test_probe_port_open_and_closed():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        assert host_checks.probe_port("127.0.0.1", port, 1) == (True, None)
    finally:
        listener.close()
    # the port just freed: refused at once, retried until the timeout, then reported closed with the reason
    sleeps = []
    is_open, error = host_checks.probe_port("127.0.0.1", port, 0.5, sleep=sleeps.append)
    assert is_open is False
    assert error.startswith("127.0.0.1:%d: " % port) and "refused" in error.lower()


def test_probe_port_retries_until_timeout():
    ticks = iter([0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 1.9, 1.9, 2.5])
    sleeps = []
    is_open, error = host_checks.probe_port("127.0.0.1", 1, 2, sleep=sleeps.append, clock=lambda: next(ticks))
    assert is_open is False and error
    assert len(sleeps) == 2


def test_meminfo():
    text = "MemTotal:       1000000 kB\nMemFree:          10000 kB\nMemAvailable:      40000 kB\nHugePages_Total: 0\n"
    assert host_checks.parse_meminfo(text) == {
        "total_bytes": 1024000000, "available_bytes": 40960000, "available_pct": 4.0}
    old = "MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 5 kB\nCached: 5 kB\n"
    assert host_checks.parse_meminfo(old)["available_pct"] == 20.0


def test_meminfo_of_this_host():
    mem = host_checks.parse_meminfo(open("/proc/meminfo").read())
    assert mem["total_bytes"] > mem["available_bytes"] > 0
    assert 0 < mem["available_pct"] < 100


@pytest.mark.parametrize("props, state", [
    ({"LoadState": "loaded", "ActiveState": "active", "SubState": "running"}, "running"),
    ({"LoadState": "loaded", "ActiveState": "inactive", "SubState": "dead"}, "stopped"),
    ({"LoadState": "loaded", "ActiveState": "failed", "SubState": "failed"}, "failed"),
    ({"LoadState": "loaded", "ActiveState": "active", "SubState": "exited"}, "stopped"),
    ({"LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead"}, "missing"),
])
def test_unit_state(props, state):
    assert host_checks.unit_state(props) == state


def test_parse_show_splits_units():
    text = ("Id=caddy.service\nLoadState=loaded\nActiveState=active\nSubState=running\n\n"
            "Id=nope.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n")
    units = host_checks.parse_show(text)
    assert [u["Id"] for u in units] == ["caddy.service", "nope.service"]
    assert [host_checks.unit_state(u) for u in units] == ["running", "missing"]


def test_df_entry_rounds_up_as_df():
    class St:
        f_frsize = 4096
        f_blocks = 1000
        f_bfree = 100
        f_bavail = 50
    entry = host_checks.df_entry("/dev/sda1", "/", St)
    # used 900 blocks of 950 usable: 94.7 %, df prints 95 %
    assert entry["pct"] == 95
    assert entry["size"] == 4096000 and entry["used"] == 900 * 4096 and entry["avail"] == 50 * 4096
    assert entry["summary"] == "/ 95% used, 0 MiB free"


def test_disks_against_df(tmp_path):
    entries, missing = host_checks.read_disks([str(tmp_path), "/", str(tmp_path / "gone")], open("/proc/mounts").read())
    assert missing == [str(tmp_path / "gone")]
    df = subprocess.run(["df", "-P", "-B1", str(tmp_path), "/"], capture_output=True, text=True, check=True)
    rows = [line.split() for line in df.stdout.splitlines()[1:]]
    mounts = []
    for row in rows:
        if row[5] not in mounts:
            mounts.append(row[5])
    assert [e["mount"] for e in entries] == mounts
    for entry, row in zip(entries, rows):
        assert entry["fs"] == row[0]
        assert entry["size"] == int(row[1])
        assert abs(entry["pct"] - int(row[4].rstrip("%"))) <= 1


def test_mount_point_of_a_file():
    assert host_checks.mount_point("/proc/meminfo") == "/proc"
    assert os.path.ismount(host_checks.mount_point(__file__))


class RunOnly:
    """The part of AnsibleModule that read_init_scripts uses: run_command, for real."""

    def run_command(self, argv, environ_update=None):
        env = dict(os.environ, **(environ_update or {}))
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
        return proc.returncode, proc.stdout, proc.stderr


def test_init_scripts_without_systemd(tmp_path, monkeypatch):
    for name, rc in (("nginx", 0), ("caddy", 3), ("worker", 1)):
        script = tmp_path / name
        script.write_text("#!/bin/sh\n[ \"$1\" = status ] || exit 9\nexit %d\n" % rc)
        script.chmod(0o755)
    monkeypatch.setattr(host_checks, "INIT_D", str(tmp_path))
    states = host_checks.read_init_scripts(RunOnly(), ["nginx", "caddy.service", "worker", "absent"])
    assert states == {"nginx": "running", "caddy.service": "stopped", "worker": "failed", "absent": "missing"}
