# SPDX-License-Identifier: GPL-3.0-or-later
"""high_resource on localhost (no lab): the temporary swap step never formats or overwrites a file that is
already there, a refused swapon is a finding with changed=0 run after run, diagnose tolerates only a
kernel log that is not available (a real journalctl error fails the run), and diagnose names the memory-heaviest
queries of the app's database (the throwaway cluster runs on this host, so each backend's memory is read). The way
back: remediate records what it replaces (the FAKE Fly app's memory and count, a swap file it made) and
high_resource_rollback puts it back once.

Swap is really enabled (a few MB, swapped off again) only where this host allows swapon; the refused path
uses tmpfs (/dev/shm), where the kernel refuses swap files."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pg_sessions import run_in_background
from playbook_runner import run_playbook

REPO = Path(__file__).resolve().parents[3]
FLYCTL = REPO / "lab" / "fake-flyctl" / "flyctl"
LABEL = "sre-runbooks"


def run(tmp_path, playbook, variables, check=False, env=None):
    r = run_playbook(playbook, tmp_path=tmp_path, target="localhost", extra_vars=variables, check=check, verbosity=1,
                     env=dict({"FAKE_FLY_STATE": str(tmp_path / "fly" / "state.json")}, **(env or {})))
    return r.rc, r.changed(), " ".join(r.output.split())


@pytest.fixture
def swap_step(tmp_path, collections_path):
    """run(swap_file, mb=8, apply=True, check=False) -> (rc, changed, out): the role's swap step alone."""
    book = tmp_path / "swap.yml"
    book.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.include_role:\n        name: sre.runbooks.high_resource\n"
                    "        tasks_from: remediate/swap_file.yml\n")

    def go(swap_file, mb=8, apply=True, check=False):
        return run(tmp_path, book, {"high_resource_swap_file": str(swap_file), "high_resource_swap_mb": mb,
                                    "confirm_granted": apply}, check=check)

    return go


def active(path):
    return str(path) in [line.split()[0] for line in Path("/proc/swaps").read_text().splitlines()[1:]]


def blkid(path):
    proc = subprocess.run(["blkid", "-p", "-o", "export", str(path)], capture_output=True, text=True, check=False)
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def swapon_allowed():
    """Whether this host lets root enable a swap file in the temp directory (probe with 1 MB, swapped off)."""
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory(dir=tempfile.gettempdir()) as tmp:
        probe = Path(tmp) / "probe"
        probe.write_bytes(b"\0" * (1 << 20))
        probe.chmod(0o600)
        if subprocess.run(["mkswap", str(probe)], capture_output=True, check=False).returncode != 0:
            return False
        if subprocess.run(["swapon", str(probe)], capture_output=True, check=False).returncode != 0:
            return False
        subprocess.run(["swapoff", str(probe)], check=True)
        return True


def test_refused_swapon_is_a_finding_unchanged_every_run(swap_step):
    if subprocess.run(["stat", "-f", "-c", "%T", "/dev/shm"], capture_output=True, text=True,
                      check=False).stdout.strip() != "tmpfs" or os.geteuid() != 0:
        pytest.skip("needs root and a tmpfs /dev/shm (tmpfs refuses swap files)")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        swap = Path(tmp) / "swapfile"
        for dummy in range(2):  # idempotent: the same finding, nothing changed, no file left
            rc, changed, out = swap_step(swap)
            assert rc == 0 and changed == 0, out
            assert "swap_refused" in out and "swapon %s was refused (swapon:" % swap in out, out
            assert "the file made for it was removed" in out and not swap.exists() and not active(swap)


def test_an_existing_file_is_never_formatted_or_overwritten(swap_step, tmp_path):
    data = tmp_path / "data.img"
    data.write_bytes(b"precious data, not swap\n" * 1000)
    before = (data.read_bytes(), data.stat().st_mtime_ns)
    foreign = tmp_path / "other.swap"
    foreign.write_bytes(b"\0" * (1 << 20))
    foreign.chmod(0o600)
    subprocess.run(["mkswap", "--label", "someone-else", str(foreign)], capture_output=True, check=True)
    uuid = blkid(foreign)["UUID"]

    for path, what in ((data, "signature none"), (foreign, "signature swap, label someone-else")):
        for check in (True, False):
            rc, changed, out = swap_step(path, check=check)
            assert rc == 0 and changed == 0, out
            assert "swap_file_exists" in out and "(%s)" % what in out and "not touched" in out, out
            assert not active(path)
    assert (data.read_bytes(), data.stat().st_mtime_ns) == before
    assert blkid(foreign)["UUID"] == uuid and blkid(foreign)["LABEL"] == "someone-else"


def test_plan_only_without_confirm_or_under_check(swap_step, tmp_path):
    swap = tmp_path / "planned.swap"
    rc, changed, out = swap_step(swap, apply=False)
    assert rc == 0 and changed == 0 and "Would create a 8 MB swap file at %s and enable it (not confirmed)." % swap in out
    rc, changed, out = swap_step(swap, check=True)
    assert rc == 0 and changed == 0 and "(check mode)." in out and not swap.exists(), out


@pytest.fixture
def real_swap(tmp_path):
    if not swapon_allowed():
        pytest.skip("this host refuses swapon in %s (the refused path is tested on tmpfs)" % tempfile.gettempdir())
    swap = tmp_path / "sre.swap"
    yield swap
    if active(swap):
        subprocess.run(["swapoff", str(swap)], check=True)


def test_created_once_then_ok_and_our_inactive_file_is_enabled_not_reformatted(swap_step, real_swap):
    rc, changed, out = swap_step(real_swap)
    assert rc == 0 and changed == 1 and active(real_swap), out
    assert oct(real_swap.stat().st_mode & 0o777) == "0o600" and real_swap.stat().st_size == 8 << 20
    sig = blkid(real_swap)
    assert sig["TYPE"] == "swap" and sig["LABEL"] == LABEL

    rc, changed, out = swap_step(real_swap)
    assert rc == 0 and changed == 0 and "is already active" in out, out

    subprocess.run(["swapoff", str(real_swap)], check=True)  # as after a reboot: ours, not active
    rc, changed, out = swap_step(real_swap, check=True)
    assert rc == 0 and changed == 0 and "Would enable the existing sre.runbooks swap file" in out and not active(real_swap)
    rc, changed, out = swap_step(real_swap)
    assert rc == 0 and changed == 1 and "not reformatted" in out and active(real_swap), out
    assert blkid(real_swap)["UUID"] == sig["UUID"]


# ---------------------------------------------------------------- diagnose: the kernel log

@pytest.fixture
def diagnose(tmp_path, collections_path):
    """high_resource_diagnose on localhost with the host checks on; the target is the FAKE Fly app (the host
    checks are what is tested, the target only has to answer)."""
    base = {"sre_target_kind": "fly", "sre_app_name": "hotdash-production", "sre_flyctl": str(FLYCTL),
            "high_resource_host_checks": True}

    def go(extra=None, path_dir=None, check=True):
        env = {"PATH": "%s:%s" % (path_dir, os.environ["PATH"])} if path_dir else None
        return run(tmp_path, REPO / "playbooks" / "high_resource_diagnose.yml", dict(base, **(extra or {})),
                   check=check, env=env)

    return go


def fake_tool(directory, name, stderr, rc):
    directory.mkdir(exist_ok=True)
    tool = directory / name
    tool.write_text("#!/bin/sh\necho '%s' >&2\nexit %d\n" % (stderr, rc))
    tool.chmod(0o755)


def test_kernel_log_not_available_is_a_finding(diagnose, tmp_path):
    fake = tmp_path / "bin"
    fake_tool(fake, "journalctl", "No journal files were found.", 1)
    fake_tool(fake, "dmesg", "dmesg: read kernel buffer failed: Operation not permitted", 1)
    rc, changed, out = diagnose(path_dir=fake)
    assert rc == 0 and changed == 0, out
    assert "OOM-killer events: kernel log not readable." in out, out
    assert "kernel_log_not_readable" in out and "Operation not permitted" in out and "No journal files" in out, out


def test_a_real_kernel_log_error_is_not_hidden(diagnose, tmp_path):
    rc, dummy, out = diagnose({"high_resource_oom_since": "not-a-time"})
    assert rc != 0 and "Failed to parse timestamp" in out, out

    fake = tmp_path / "bin"
    fake_tool(fake, "journalctl", "No journal files were found.", 1)
    fake_tool(fake, "dmesg", "dmesg: invalid option -- 'T'", 1)
    rc, dummy, out = diagnose(path_dir=fake)
    assert rc != 0 and "invalid option" in out, out


# ---------------------------------------------------------------- diagnose: the memory-heaviest queries

def test_the_memory_heaviest_query_is_named(diagnose, pg_cluster):
    """A session holding a 300 MB value while it sleeps is the finding memory_heavy_query, with its pid, in --check;
    an unreachable database is a finding and the diagnosis still succeeds."""
    db = {"sre_db_host": pg_cluster.host, "sre_db_port": pg_cluster.port, "sre_db_user": "postgres",
          "sre_db_password": pg_cluster.password, "sre_db_name": "postgres", "high_resource_query_mem_mb_warn": 200}
    conn = pg_cluster.connect(application_name="high-resource-test")
    conn.autocommit = True
    pid = conn.get_backend_pid()
    worker = run_in_background(conn, "SELECT length(x), pg_sleep(20) FROM (SELECT repeat('x', g) AS x "
                                     "FROM generate_series(300000000, 300000000) g) s")
    try:
        deadline = time.time() + 20
        while pg_cluster.psql("SELECT wait_event FROM pg_stat_activity WHERE pid = %d" % pid).strip() != "PgSleep":
            assert time.time() < deadline, "the heavy query did not start"
            time.sleep(0.2)
        rc, changed, out = diagnose(db)
        assert rc == 0 and changed == 0, out
        assert "memory_heavy_query" in out and "the heaviest pid %d" % pid in out, out
        assert "Memory-heaviest queries of the database: pid %d 28" % pid in out, out  # 286 MB and some
        assert pg_cluster.password not in out
    finally:
        pg_cluster.psql("SELECT pg_cancel_backend(%d)" % pid)
        worker.join(10)
        conn.close()
    rc, changed, out = diagnose(dict(db, sre_db_port=1))
    assert rc == 0 and changed == 0, out
    assert "queries_not_read" in out and "not read (the database is unreachable or refused" in out, out


# ---------------------------------------------------------------- the way back

def fly_scale(tmp_path):
    state = json.loads((tmp_path / "fly" / "state.json").read_text())["apps"]["hotdash-production"]["machines"]
    return len(state), sorted(set(m["config"]["guest"]["memory_mb"] for m in state))


def test_rollback_puts_the_fly_scale_back_once(tmp_path, collections_path):
    """FAKE flyctl: two remediates (memory 1024 -> 2048 -> 4096, count 2 -> 3); the record keeps the first values;
    rollback plans, --check changes nothing, then puts 2 x 1024 MB back and removes the record; a second rollback
    has nothing to do."""
    record = tmp_path / "state" / "high_resource" / "hotdash-production.json"
    base = {"sre_target_kind": "fly", "sre_app_name": "hotdash-production", "sre_flyctl": str(FLYCTL),
            "sre_state_dir": str(tmp_path / "state"), "target_state_dir": str(tmp_path / "state"),
            "sre_proxy_kind": "none", "target_health_retries": 1, "target_health_delay": 0}

    def go(name, extra=None, check=False):
        return run(tmp_path, REPO / "playbooks" / ("high_resource_%s.yml" % name), dict(base, **(extra or {})), check=check)

    rc, changed, out = go("rollback", {"sre_confirm": "yes"})
    assert rc == 0 and changed == 0 and "Nothing to roll back for hotdash-production" in out, out
    assert not record.exists()
    env = dict(os.environ, FAKE_FLY_STATE=str(tmp_path / "fly" / "state.json"))
    subprocess.run([str(FLYCTL), "scale", "show", "--json", "-a", "hotdash-production"], env=env, check=True,
                   capture_output=True)  # the FAKE app's state, as it starts
    before = fly_scale(tmp_path)
    assert before == (2, [1024]), before
    rc, changed, out = go("remediate", {"sre_confirm": "yes", "high_resource_fly_memory_mb": 2048})
    assert rc == 0 and changed == 1 and fly_scale(tmp_path) == (2, [2048]), out
    assert json.loads(record.read_text())["before"] == {"fly_memory_mb": 1024}
    rc, changed, out = go("remediate", {"sre_confirm": "yes", "high_resource_fly_memory_mb": 4096,
                                        "high_resource_fly_count": 3})
    assert rc == 0 and changed == 2 and fly_scale(tmp_path) == (3, [4096]), out
    doc = json.loads(record.read_text())
    assert doc["before"] == {"fly_memory_mb": 1024, "fly_count": 2} and doc["runbook"] == "high_resource", doc
    assert doc["after"] == {"fly_memory_mb": 4096, "fly_count": 3}, doc
    assert oct(record.stat().st_mode & 0o777) == "0o640"

    rc, changed, out = go("rollback")
    assert rc == 0 and changed == 0 and "Not confirmed: nothing is changed" in out, out
    assert "Fly: memory back to 1024 MB per machine" in out and "Fly: back to 2 machines" in out, out
    rc, changed, out = go("rollback", {"sre_confirm": "yes"}, check=True)
    assert rc == 0 and changed == 0 and fly_scale(tmp_path) == (3, [4096]) and record.exists(), out
    rc, changed, out = go("rollback", {"sre_confirm": "yes"})
    assert rc == 0 and changed >= 2 and fly_scale(tmp_path) == (2, [1024]), out
    assert not record.exists()
    rc, changed, out = go("rollback", {"sre_confirm": "yes"})
    assert rc == 0 and changed == 0 and "Nothing to roll back" in out, out

    # a record of another incident (the setting was changed since, or the record is old) starts afresh
    go("remediate", {"sre_confirm": "yes", "high_resource_fly_memory_mb": 2048})
    env_scale = [str(FLYCTL), "scale", "memory", "3072", "-a", "hotdash-production"]
    subprocess.run(env_scale, env=env, check=True, capture_output=True)  # by hand, outside the collection
    go("remediate", {"sre_confirm": "yes", "high_resource_fly_memory_mb": 4096})
    assert json.loads(record.read_text())["before"] == {"fly_memory_mb": 3072}
    doc = json.loads(record.read_text())
    record.write_text(json.dumps(dict(doc, first_change_epoch=doc["first_change_epoch"] - 25 * 3600)))
    go("remediate", {"sre_confirm": "yes", "high_resource_fly_memory_mb": 1024})
    assert json.loads(record.read_text())["before"] == {"fly_memory_mb": 4096}


def test_rollback_removes_the_swap_file_it_made_and_only_that(tmp_path, real_swap, collections_path):
    """A confirmed remediate makes and enables a swap file; rollback swaps it off and removes it. A file put at the
    recorded path by someone else is never touched (swap_file_not_ours)."""
    base = {"sre_target_kind": "systemd", "sre_app_name": "swaptest", "sre_state_dir": str(tmp_path / "state"),
            "high_resource_swap_file": str(real_swap), "high_resource_host_checks": False,
            "high_resource_queries": False, "sre_confirm": "yes", "target_health_url": "",
            "target_health_retries": 1, "target_health_delay": 0}
    book = tmp_path / "phase.yml"
    book.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.include_role:\n        name: sre.runbooks.high_resource\n"
                    "        tasks_from: remediate/swap_file.yml\n      when: phase == 'remediate'\n"
                    "    - ansible.builtin.include_role:\n        name: sre.runbooks.high_resource\n"
                    "        tasks_from: rollback.yml\n      when: phase == 'rollback'\n")
    rc, changed, out = run(tmp_path, book, dict(base, phase="remediate", high_resource_swap_mb=8, confirm_granted=True))
    assert rc == 0 and changed == 1 and active(real_swap), out
    record = tmp_path / "state" / "high_resource" / "swaptest.json"
    assert json.loads(record.read_text())["before"] == {"swap_file": str(real_swap)}
    rc, changed, out = run(tmp_path, book, dict(base, phase="rollback", sre_confirm="no"))
    assert rc == 0 and changed == 0 and active(real_swap), out
    assert "swap off and remove the swap file %s (made by sre.runbooks, label %s)" % (real_swap, LABEL) in out, out
    rc, changed, out = run(tmp_path, book, dict(base, phase="rollback"))
    assert rc == 0 and changed == 1 and not active(real_swap) and not real_swap.exists() and not record.exists(), out

    # someone else's file at the recorded path: left alone, and the record stays for a person to look at
    record.write_text(json.dumps({"runbook": "high_resource", "before": {"swap_file": str(real_swap)}}))
    real_swap.write_bytes(b"not swap")
    rc, changed, out = run(tmp_path, book, dict(base, phase="rollback"))
    assert rc == 0 and "swap_file_not_ours" in out and real_swap.read_bytes() == b"not swap", out
    assert record.exists()
