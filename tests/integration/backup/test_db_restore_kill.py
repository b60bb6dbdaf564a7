# SPDX-License-Identifier: GPL-3.0-or-later
"""db_restore killed at several points (issue 11, "Interrupted runs"): SIGKILL of ansible-playbook and every process
under it (its workers, the module, pg_restore) while the copy is being restored, right after the swap renamed the
databases, and during a swap back between its two renames. Each time the data is all there (fingerprints: rows and
md5 of every table), and a rerun or a swap back puts things right.

A real throwaway cluster and the set-up of test_db_restore_safety.py: a verified backup, a live database holding the
backup's data plus later changes, a stand-in app (an HTTP server in this process) whose /health queries the live
database. The kill is done from this process by a watcher thread at a point it can see: a marker the pg_restore
wrapper writes, the app's health URL being called (just after the swap), the swap back's journal line "live moved"
(while the second rename waits on a session held to the kept copy).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from playbook_runner import run_playbook
from restore_support import CustomersApp, StateFiles, Watcher, databases_like, open_fingerprints

DB = "killdb"
CHANGES = """
INSERT INTO public.customers SELECT g, 'late customer ' || g, NULL, now() FROM generate_series(3001, 3100) g;
UPDATE shop.orders SET total = total + 1 WHERE id % 3 = 0;
"""


def ansible_tree():
    """The ansible-playbook processes this test process started, and every process under them."""
    procs = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path("/proc", pid, "stat").read_text()
            cmd = Path("/proc", pid, "cmdline").read_bytes()
        except OSError:
            continue
        procs[int(pid)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmd)
    tree = {p for p, (ppid, cmd) in procs.items() if ppid == os.getpid() and b"ansible-playbook" in cmd}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, dummy) in procs.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


class Killer(Watcher):
    """SIGKILLs the whole ansible-playbook tree as soon as when() is true (polled every 10 ms)."""

    def __init__(self, when, timeout=240):
        self.when, self.timeout, self.killed = when, timeout, []
        super().__init__()

    def loop(self):
        deadline = time.time() + self.timeout
        while not self.done.is_set() and time.time() < deadline:
            if self.when():
                tree = ansible_tree()
                for pid in tree:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.killed = sorted(tree)
                return
            time.sleep(0.01)


class App(CustomersApp):
    """/health: 200 after a query of the live database. /slow: tells the test it was called, then waits."""

    def __init__(self, cluster):
        self.called = threading.Event()
        self.release = threading.Event()
        super().__init__(cluster, DB)

    def code_for(self, path):
        if path == "/slow":
            self.called.set()
            self.release.wait(60)
        return self.health()


@pytest.fixture(scope="module")
def app(pg_cluster):
    a = App(pg_cluster)
    yield a
    a.release.set()
    a.server.shutdown()


@pytest.fixture(scope="module")
def backup(pg_cluster, source_db, backup_helpers, tmp_path_factory):
    d = tmp_path_factory.mktemp("kill-backups")
    path = d / "killdb-20250101T000000Z.dump"
    backup_helpers.dump(pg_cluster, source_db, path, "-Fc")
    (d / (path.name + ".sha256")).write_text("%s  %s\n" % (hashlib.sha256(path.read_bytes()).hexdigest(), path.name))
    return path


def names(cluster):
    return databases_like(cluster, DB)


def fingerprints(cluster, helpers, db):
    return open_fingerprints(cluster, db, helpers.fingerprints)


@pytest.fixture
def live(pg_cluster, source_db, backup, backup_helpers):
    for name in names(pg_cluster):
        pg_cluster.psql('DROP DATABASE "%s" WITH (FORCE)' % name)
    pg_cluster.psql('CREATE DATABASE "%s"' % DB)
    subprocess.run([str(pg_cluster.bindir / "pg_restore"), "-h", str(pg_cluster.sockdir), "-p", str(pg_cluster.port),
                    "-U", "postgres", "-d", DB, str(backup)], check=True, capture_output=True)
    pg_cluster.psql(CHANGES, dbname=DB)
    return {"live": fingerprints(pg_cluster, backup_helpers, DB), "backup": backup_helpers.fingerprints(pg_cluster, source_db)}


class Runner(StateFiles):
    def __init__(self, cluster, app, backup, tmp_path):
        self.cluster, self.app, self.backup, self.tmp_path = cluster, app, backup, tmp_path
        self.dir = tmp_path / "state" / "db_restore"
        self.key = "%s@%s_%s" % (DB, cluster.host, cluster.port)

    def lines(self):
        try:
            text = self.journal.read_text()
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # a line being written
                pass
        return out

    def runs(self):
        out = {}
        for line in self.lines():
            out[line["action"] + "-" + line["run"]] = line
        return list(out.values())

    def __call__(self, playbook, extra=None):
        variables = {
            "sre_db_name": DB, "sre_confirm": "yes", "sre_state_dir": str(self.tmp_path / "state"),
            "db_restore_login_host": self.cluster.host, "db_restore_login_port": self.cluster.port,
            "db_restore_login_user": self.cluster.user, "db_restore_login_password": self.cluster.password,
            "db_restore_pg_restore": str(self.cluster.bindir / "pg_restore"),
            "db_restore_psql": str(self.cluster.bindir / "psql"),
            "db_restore_backup_dir": str(self.backup.parent), "db_restore_backup_pattern": "*.dump",
            "db_restore_manage_app": False, "db_restore_health_url": self.app.url(), "db_restore_health_retries": 1,
            "db_restore_health_delay": 0,
        }
        variables.update(extra or {})
        r = run_playbook(playbook, tmp_path=self.tmp_path, target="localhost", extra_vars=variables,
                         secrets=[self.cluster.password], timeout=600)
        return r.rc, r.output, " ".join(r.output.replace("''", "'").split())


@pytest.fixture
def run(pg_cluster, app, backup, tmp_path):
    return Runner(pg_cluster, app, backup, tmp_path)


def test_killed_while_restoring_the_copy(run, live, backup_helpers, tmp_path):
    c = run.cluster
    marker = tmp_path / "restoring"
    wrapper = tmp_path / "pg_restore_slow"
    wrapper.write_text("#!/bin/bash\n%s --section=pre-data \"$@\" || exit $?\ntouch %s\nsleep 120\n"
                       % (c.bindir / "pg_restore", marker))
    wrapper.chmod(0o755)
    with Killer(marker.exists) as killer:
        rc, out, dummy = run("db_restore", {"db_restore_pg_restore": str(wrapper)})
    assert killer.killed and rc == -signal.SIGKILL, out[-3000:]
    assert not any(p in ansible_tree() for p in killer.killed)
    assert fingerprints(c, backup_helpers, DB) == live["live"]
    half = [n for n in names(c) if n.startswith(DB + "_restore_")]
    assert len(half) == 1 and names(c) == sorted([DB] + half), names(c)
    state = run.runs()[-1]
    assert state["outcome"] == "running" and state["stage"] == "restoring" and run.lock.exists()

    # the rerun (breaking the lock its dead process left) drops the half copy and restores
    rc, out, flat = run("db_restore", {"db_restore_break_lock": True})
    assert rc == 0 and "Left by an interrupted run" in flat and half[0] in flat, out[-4000:]
    assert fingerprints(c, backup_helpers, DB) == live["backup"]
    kept = [n for n in names(c) if n != DB]
    assert len(kept) == 1 and "_pre_restore_" in kept[0]
    assert fingerprints(c, backup_helpers, kept[0]) == live["live"] and not run.lock.exists()


def test_killed_right_after_the_swap(run, live, backup_helpers, app):
    c = run.cluster
    app.called.clear()
    app.release.clear()
    try:
        with Killer(app.called.is_set) as killer:
            rc, out, dummy = run("db_restore", {"db_restore_health_url": app.url("/slow")})
    finally:
        app.release.set()
    assert killer.killed and rc == -signal.SIGKILL, out[-3000:]
    state = run.runs()[-1]
    assert state["stage"] == "swapped" and state["swapped"] is True and state["outcome"] == "running", state
    # nothing lost: the live name holds the complete restored copy, the data from before is kept
    assert fingerprints(c, backup_helpers, DB) == live["backup"]
    assert fingerprints(c, backup_helpers, state["kept"]) == live["live"]
    assert names(c) == sorted([DB, state["kept"]])

    # a swap back (breaking the dead run's lock) puts the data from before back
    rc, out, flat = run("db_restore_swap_back", {"db_restore_break_lock": True})
    assert rc == 0, out[-4000:]
    assert fingerprints(c, backup_helpers, DB) == live["live"]
    back = run.runs()[-1]
    assert back["action"] == "swap_back" and back["outcome"] == "ok" and back["undid"] == state["run"]
    assert not run.lock.exists()


def test_killed_during_the_swap_back(run, live, backup_helpers):
    c = run.cluster
    rc, out, dummy = run("db_restore")
    assert rc == 0, out[-4000:]
    restore = run.runs()[-1]
    kept = restore["kept"]
    # a session on the kept copy makes the swap back's second rename wait (5 s, then fail): the kill lands there
    c.psql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS true' % kept)
    holder = c.connect(kept)
    c.psql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS false' % kept)

    def live_moved():
        return any(line["action"] == "swap_back" and line.get("stage") == "live moved" for line in run.lines())

    try:
        with Killer(live_moved) as killer:
            rc, out, dummy = run("db_restore_swap_back")
    finally:
        holder.close()
    assert killer.killed and rc == -signal.SIGKILL, out[-3000:]
    state = run.runs()[-1]
    assert state["action"] == "swap_back" and state["stage"] == "live moved", state
    # no live database for the moment, but nothing lost: both copies are there under the journal's names
    assert DB not in names(c) and sorted(names(c)) == sorted([kept, state["undone_as"]])
    assert fingerprints(c, backup_helpers, kept) == live["live"]
    assert fingerprints(c, backup_helpers, state["undone_as"]) == live["backup"]

    # a restore is refused with what to do; the next swap back finishes the interrupted one
    rc, out, flat = run("db_restore", {"db_restore_break_lock": True})
    assert rc != 0 and "there is no live database" in flat and state["undone_as"] in flat, out[-4000:]
    assert "Nothing was stopped or changed" in flat and DB not in names(c)
    rc, out, flat = run("db_restore_swap_back")
    assert rc == 0, out[-4000:]
    assert "Finished the interrupted swap back %s" % state["run"] in flat, flat[-3000:]
    assert fingerprints(c, backup_helpers, DB) == live["live"]
    assert c.psql("SELECT datallowconn FROM pg_database WHERE datname = '%s'" % DB).strip() == "t"
    assert names(c) == sorted([DB, state["undone_as"]]) and not run.lock.exists()
    finished = run.runs()[-1]
    assert finished["outcome"] == "ok" and finished["finishes"] == state["run"] and finished["undid"] == restore["run"]
    assert any(r["run"] == state["run"] and r["outcome"] == "interrupted" for r in run.runs())
    # the refused restore above is now the newest one: a further swap back has nothing to undo
    rc, out, flat = run("db_restore_swap_back")
    assert rc != 0 and "did not swap" in flat and "Nothing was changed" in flat, out[-3000:]
    assert fingerprints(c, backup_helpers, DB) == live["live"]
