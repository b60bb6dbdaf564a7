# SPDX-License-Identifier: GPL-3.0-or-later
"""db_restore safety (issue 11): one run at a time, a journal, swap back of the newest swap only, names within
PostgreSQL's 63 bytes, retention that never drops the newest restore's copy, the _failed_ copy kept after a
failed swap, what an interrupted run left.

Same set-up as test_db_restore.py: a real throwaway cluster, a verified backup, a live database holding the
backup's data plus later changes, a stand-in "app" (HTTP server in this process) whose /health queries the live
database; the target interface is skipped (db_restore_manage_app: false). Every test has its own
sre_state_dir (the lock and the journal) under tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import pytest

from playbook_runner import run_playbook as _run_playbook
from restore_support import CustomersApp, StateFiles, open_fingerprints

H = {}
CHANGES = """
INSERT INTO public.customers SELECT g, 'late customer ' || g, NULL, now() FROM generate_series(3001, 3100) g;
UPDATE shop.orders SET total = total + 1 WHERE id % 3 = 0;
"""
SHORT = "safedb"
LONG = "restore_safety_database_with_a_long_nam"  # 39 characters: <db>_pre_restore_<stamp> would be 66 bytes
LONG40 = LONG + "e"


@pytest.fixture(autouse=True, scope="module")
def _helpers(backup_helpers, collections_path):
    H.update(dump=backup_helpers.dump, fingerprints=backup_helpers.fingerprints)


class App(CustomersApp):
    """A stand-in app: its /health counts the customers of the live database (whatever its name)."""

    def __init__(self, cluster):
        super().__init__(cluster, SHORT)

    def code_for(self, path):
        return 503 if path == "/broken" else self.health()


@pytest.fixture(scope="module")
def app(pg_cluster):
    a = App(pg_cluster)
    yield a
    a.server.shutdown()


@pytest.fixture(scope="module")
def backups(pg_cluster, source_db, tmp_path_factory):
    """A verified backup (with its .sha256) and a corrupt one, in two directories."""
    d = tmp_path_factory.mktemp("safety-backups")
    path = d / "safedb-20250101T000000Z.dump"
    H["dump"](pg_cluster, source_db, path, "-Fc")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (d / (path.name + ".sha256")).write_text("%s  %s\n" % (digest, path.name))
    bad = bytearray(path.read_bytes())
    bad[len(bad) * 3 // 4] ^= 0x10
    corrupt = tmp_path_factory.mktemp("safety-corrupt") / "safedb-corrupt.dump"
    corrupt.write_bytes(bytes(bad))
    return {"dir": d, "path": path, "sha256": digest, "corrupt": corrupt}


def names(cluster, db):
    return sorted(cluster.psql("SELECT datname FROM pg_database WHERE left(datname, %d) = '%s'"
                               % (min(len(db), 20), db[:20])).split())


def make_live(cluster, db, backups, source_db):
    for name in names(cluster, db):
        cluster.psql('DROP DATABASE "%s" WITH (FORCE)' % name)
    cluster.psql('CREATE DATABASE "%s"' % db)
    subprocess.run([str(cluster.bindir / "pg_restore"), "-h", str(cluster.sockdir), "-p", str(cluster.port),
                    "-U", "postgres", "-d", db, str(backups["path"])], check=True, capture_output=True)
    cluster.psql(CHANGES, dbname=db)
    return {"live": fingerprints(cluster, db), "backup": fingerprints(cluster, source_db)}


def fingerprints(cluster, db):
    return open_fingerprints(cluster, db, H["fingerprints"])


@pytest.fixture
def live(pg_cluster, source_db, backups):
    return make_live(pg_cluster, SHORT, backups, source_db)


class Runner(StateFiles):
    def __init__(self, cluster, app, backups, tmp_path, db=SHORT):
        self.cluster, self.app, self.backups, self.tmp_path, self.db = cluster, app, backups, tmp_path, db
        self.state = tmp_path / "state"
        self.dir = self.state / "db_restore"
        self.key = "%s@%s_%s" % (db, cluster.host, cluster.port)

    def lines(self):
        return [json.loads(x) for x in self.journal.read_text().splitlines()] if self.journal.exists() else []

    def runs(self):
        """The newest state of every run, oldest run first."""
        out = {}
        for line in self.lines():
            out[line["action"] + "-" + line["run"]] = line
        return list(out.values())

    def __call__(self, playbook, extra=None, check=False):
        variables = {
            "sre_db_name": self.db, "sre_confirm": "yes", "sre_state_dir": str(self.state),
            "db_restore_login_host": self.cluster.host, "db_restore_login_port": self.cluster.port,
            "db_restore_login_user": self.cluster.user, "db_restore_login_password": self.cluster.password,
            "db_restore_pg_restore": str(self.cluster.bindir / "pg_restore"),
            "db_restore_psql": str(self.cluster.bindir / "psql"),
            "db_restore_backup_dir": str(self.backups["dir"]), "db_restore_backup_pattern": "*.dump",
            "db_restore_manage_app": False, "db_restore_health_url": self.app.url(), "db_restore_health_retries": 1,
            "db_restore_health_delay": 0,
        }
        variables.update(extra or {})
        self.app.db = self.db
        r = _run_playbook(playbook, tmp_path=self.tmp_path, target="localhost", extra_vars=variables, check=check,
                          secrets=[self.cluster.password])
        return r.rc, r.output.replace("\n", " ")

    def kept(self, kind="pre_restore"):
        """The kept copies of this database (not those of another one with a similar name)."""
        return [n for n in names(self.cluster, self.db) if "_%s_" % kind in n
                and (n.startswith(self.db + "_") or len(self.db) > 30)]


@pytest.fixture
def run(pg_cluster, app, backups, tmp_path):
    return Runner(pg_cluster, app, backups, tmp_path)


def control_host():
    return subprocess.run("hostname -f 2>/dev/null || hostname", shell=True, capture_output=True, text=True,
                          check=False).stdout.strip()


def write_lock(run, **fields):
    run.dir.mkdir(parents=True, exist_ok=True)
    holder = {"owner": "alice@ci-runner-7", "control_host": "ci-runner-7", "pid": 4242, "action": "restore",
              "db": run.db, "play": "Runbook db_restore, restore", "playbook_dir": "/srv/awx/project/playbooks",
              "job": "", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "started_epoch": int(time.time()), "token": "theirs"}
    holder.update(fields)
    run.lock.write_text(json.dumps(holder) + "\n")
    return run.lock.read_text()


def test_held_lock_refuses_restore_swap_back_and_retention(run, live):
    """A lock held by a run on another control host refuses every confirmed run, naming the holder."""
    held = write_lock(run)
    for playbook in ("db_restore", "db_restore_swap_back", "db_restore_retention"):
        rc, out = run(playbook, {"db_restore_retention_days": 0, "db_restore_retention_keep": 0})
        assert rc != 0, out
        assert "another run holds the lock" in out and "alice@ci-runner-7" in out, out
        assert json.loads(held)["started"] in out and "pid 4242" in out and "Nothing was changed" in out, out
        assert run.lock.read_text() == held
        assert names(run.cluster, SHORT) == [SHORT] and fingerprints(run.cluster, SHORT) == live["live"]
    # a plan-only run says who holds it and changes nothing
    rc, out = run("db_restore", {"sre_confirm": "no"})
    assert rc == 0 and "is held by alice@ci-runner-7" in out and "Not confirmed" in out, out
    assert run.lock.read_text() == held


def test_live_holder_is_never_broken(run, live):
    """A holder still running on this control host (an ansible-playbook process) is not broken, even when asked."""
    proc = subprocess.Popen(["bash", "-c", "exec -a ansible-playbook sleep 120"])
    try:
        time.sleep(0.3)
        held = write_lock(run, owner="bob@" + control_host(), control_host=control_host(), pid=proc.pid)
        rc, out = run("db_restore", {"db_restore_break_lock": True})
        assert rc != 0 and "another run holds the lock" in out and "bob@" in out, out
        assert run.lock.read_text() == held and fingerprints(run.cluster, SHORT) == live["live"]
    finally:
        proc.kill()
        proc.wait()


def test_stale_lock_is_reported_and_kept_until_broken(run, live):
    dead = subprocess.Popen(["true"])
    dead.wait()
    held = write_lock(run, owner="carol@" + control_host(), control_host=control_host(), pid=dead.pid)
    rc, out = run("db_restore")
    assert rc != 0 and "stale lock" in out and "carol@" in out and "is gone on this control host" in out, out
    assert "-e db_restore_break_lock=yes -e sre_confirm=yes" in out and "It was kept, not taken over" in out, out
    assert run.lock.read_text() == held and names(run.cluster, SHORT) == [SHORT]

    old = write_lock(run, started_epoch=int(time.time()) - 7 * 3600, started="2020-01-01T00:00:00Z")
    rc, out = run("db_restore_swap_back")
    assert rc != 0 and "stale lock" in out and "older than db_restore_lock_stale_after=21600" in out, out
    assert run.lock.read_text() == old

    # breaking needs the confirmation too
    rc, out = run("db_restore", {"db_restore_break_lock": True, "sre_confirm": "no"})
    assert rc == 0 and run.lock.read_text() == old, out
    rc, out = run("db_restore", {"db_restore_break_lock": True})
    assert rc == 0 and "Plan (db_restore break lock)" in out, out
    assert not run.lock.exists() and fingerprints(run.cluster, SHORT) == live["backup"]
    actions = [line["action"] for line in run.lines()]
    assert actions[0] == "break_lock" and run.lines()[0]["broken"]["owner"] == "alice@ci-runner-7"


def test_journal_and_swap_back_of_the_newest_swap_only(run, live, backups):
    rc, out = run("db_restore")
    assert rc == 0, out
    assert not run.lock.exists()
    first = run.runs()[-1]
    kept = run.kept()
    assert len(kept) == 1
    assert first["action"] == "restore" and first["outcome"] == "ok" and first["swapped"] is True, first
    assert first["backup"] == str(backups["path"]) and first["sha256"] == backups["sha256"]
    assert first["kept"] == kept[0] and first["run"] in kept[0] and first["shortened"] is False
    assert first["restored_as"].startswith(SHORT + "_restore_") and first["failed_name"].startswith(SHORT + "_failed_")
    assert [line["stage"] for line in run.lines()] == ["start", "writes stopped", "restoring", "swapped", "done"]
    assert oct(run.journal.stat().st_mode & 0o777) == "0o640"

    # a restore refused at preflight is recorded; swap back then refuses: it never puts back the older copy
    time.sleep(1.1)
    rc, out = run("db_restore", {"db_restore_backup": str(backups["corrupt"])})
    assert rc != 0 and "Refusing to restore" in out, out
    refused = run.runs()[-1]
    assert refused["outcome"] == "refused" and refused["swapped"] is False and refused["backup"] == str(backups["corrupt"])
    assert refused["run"] != first["run"]
    rc, out = run("db_restore_swap_back")
    assert rc != 0 and "did not swap" in out and refused["run"] in out and "db_restore_swap_back_from" in out, out
    assert fingerprints(run.cluster, SHORT) == live["backup"] and run.kept() == kept

    # the explicit override still works
    rc, out = run("db_restore_swap_back", {"db_restore_swap_back_from": kept[0]})
    assert rc == 0, out
    assert fingerprints(run.cluster, SHORT) == live["live"]
    assert run.runs()[-1]["action"] == "swap_back" and run.runs()[-1]["outcome"] == "ok"


def test_swap_back_undoes_the_newest_swap_and_only_once(run, live):
    rc, out = run("db_restore")
    assert rc == 0, out
    restore = run.runs()[-1]
    rc, out = run("db_restore_swap_back")
    assert rc == 0 and restore["run"] in out, out
    assert fingerprints(run.cluster, SHORT) == live["live"]
    back = run.runs()[-1]
    assert back["action"] == "swap_back" and back["undid"] == restore["run"] and back["back"] == restore["kept"]
    assert run.kept("undone") == [back["undone_as"]]
    rc, out = run("db_restore_swap_back")
    assert rc != 0 and "already swapped back" in out, out
    assert fingerprints(run.cluster, SHORT) == live["live"]


def test_unconfirmed_swap_back_and_retention_change_nothing(run, live):
    rc, out = run("db_restore")
    assert rc == 0, out
    before = (names(run.cluster, SHORT), fingerprints(run.cluster, SHORT), run.journal.read_text())
    for extra, check in (({"sre_confirm": "no"}, False), ({}, True)):
        rc, out = run("db_restore_swap_back", extra, check=check)
        assert rc == 0 and "Plan (db_restore swap back)" in out, out
        rc, out = run("db_restore_retention", dict(extra, db_restore_retention_days=0, db_restore_retention_keep=0),
                      check=check)
        assert rc == 0 and "Plan (db_restore retention)" in out, out
        assert (names(run.cluster, SHORT), fingerprints(run.cluster, SHORT), run.journal.read_text()) == before
        assert not run.lock.exists()


def test_retention_never_drops_the_newest_restores_copy(run, live):
    rc, out = run("db_restore")
    assert rc == 0, out
    time.sleep(1.1)
    rc, out = run("db_restore")
    assert rc == 0, out
    newest = run.runs()[-1]["kept"]
    older = [k for k in run.kept() if k != newest]
    assert len(older) == 1
    # a newer _undone_ copy and a copy of another database with a similar name
    time.sleep(1.1)
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    run.cluster.psql('CREATE DATABASE "%s_undone_%s"' % (SHORT, stamp))
    run.cluster.psql('CREATE DATABASE "%s2_pre_restore_20200101000000"' % SHORT)
    time.sleep(1.1)
    try:
        rc, out = run("db_restore_retention", {"db_restore_retention_days": 0, "db_restore_retention_keep": 0})
        assert rc == 0, out
        assert "never dropped: " + newest in out, out
        assert run.kept() == [newest] and run.kept("undone") == []
        assert "%s2_pre_restore_20200101000000" % SHORT in names(run.cluster, SHORT)
        assert fingerprints(run.cluster, SHORT) == live["backup"]
        assert fingerprints(run.cluster, newest) == live["backup"]  # what the first restore put in place
    finally:
        run.cluster.psql('DROP DATABASE IF EXISTS "%s2_pre_restore_20200101000000"' % SHORT)


def test_long_name_restores_swaps_back_and_is_cleaned(pg_cluster, app, backups, source_db, tmp_path):
    for db in (LONG40,):
        data = make_live(pg_cluster, db, backups, source_db)
        run = Runner(pg_cluster, app, backups, tmp_path, db=db)
        rc, out = run("db_restore")
        assert rc == 0, out
        assert fingerprints(pg_cluster, db) == data["backup"]
        record = run.runs()[-1]
        kept = [n for n in names(pg_cluster, db) if n != db]
        assert kept == [record["kept"]] and len(kept[0].encode()) <= 63, kept
        assert record["shortened"] is True and "_pre_restore_" + record["run"] in kept[0]
        assert kept[0].startswith(record["names"]["pre_restore"]) and record["names"]["pre_restore"] != db
        rc, out = run("db_restore_swap_back")
        assert rc == 0, out
        assert fingerprints(pg_cluster, db) == data["live"]
        undone = [n for n in names(pg_cluster, db) if n != db]
        assert len(undone) == 1 and "_undone_" in undone[0] and len(undone[0].encode()) <= 63
        rc, out = run("db_restore_retention", {"db_restore_retention_days": 0, "db_restore_retention_keep": 0})
        assert rc == 0, out
        assert names(pg_cluster, db) == [db]
        pg_cluster.psql('DROP DATABASE "%s" WITH (FORCE)' % db)


def test_too_long_a_name_is_one_clear_message(pg_cluster, app, backups, tmp_path):
    run = Runner(pg_cluster, app, backups, tmp_path, db="x" * 64)
    rc, out = run("db_restore")
    assert rc != 0 and "at most 63 bytes" in out, out


def test_failed_health_after_swap_keeps_the_restored_copy(run, live):
    rc, out = run("db_restore", {"db_restore_health_url": run.app.url("/broken")})
    assert rc != 0 and "Swapped back" in out and "never dropped automatically" in out, out
    record = run.runs()[-1]
    assert record["outcome"] == "failed" and record["swapped"] is True and record["swapped_back"] is True
    assert run.kept("failed") == [record["failed_kept"]]
    assert fingerprints(run.cluster, SHORT) == live["live"]
    assert fingerprints(run.cluster, record["failed_kept"]) == live["backup"]
    rc, out = run("db_restore_swap_back")
    assert rc != 0 and "already swapped back itself" in out, out
    assert not run.lock.exists()


def test_interrupted_run_leftovers_are_found_and_dealt_with(run, live):
    """A run killed after making the live database read-only and while restoring: the next run says so, makes the
    live database writable again, drops the half-restored copy, and restores."""
    run.dir.mkdir(parents=True, exist_ok=True)
    stamp = "20200101000000"
    half = "%s_restore_%s" % (SHORT, stamp)
    run.journal.write_text(json.dumps({"action": "restore", "run": stamp, "db": SHORT, "owner": "dave@gone",
                                       "outcome": "running", "stage": "restoring", "read_only_set": True,
                                       "app_stopped": True, "swapped": False, "restored_as": half}) + "\n")
    run.cluster.psql('ALTER DATABASE "%s" SET default_transaction_read_only = on' % SHORT)
    run.cluster.psql('CREATE DATABASE "%s"' % half)
    rc, out = run("db_restore", {"sre_confirm": "no"})
    assert rc == 0 and "Left by an interrupted run" in out and half in out and "dave@gone" in out, out
    assert "made writable again" in out and half in names(run.cluster, SHORT)
    rc, out = run("db_restore")
    assert rc == 0, out
    assert half not in names(run.cluster, SHORT)
    kept = run.kept()
    assert len(kept) == 1 and fingerprints(run.cluster, SHORT) == live["backup"]
    setting = run.cluster.psql("SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
                               " WHERE d.datname = '%s'" % kept[0]).strip()
    assert setting == "0"
    assert any(r["run"] == stamp and r["outcome"] == "interrupted" for r in run.runs())


def test_killed_run_leaves_a_stale_lock_and_the_next_run_cleans_up(run, live, tmp_path):
    """ansible-playbook killed (SIGKILL, with its workers) while pg_restore runs: the live data is intact, the lock
    is reported stale (its process is gone) and kept; breaking it, the next run finds the half-restored copy,
    drops it and restores."""
    wrapper = tmp_path / "pg_restore_kills_ansible"
    # kills the processes from pg_restore's parent up to the first ansible-playbook, and nothing if the walk reaches
    # this test's own process first (never the test runner or what started it). The command line is read from /proc:
    # `ps -o args=` cuts it at 80 columns without a terminal, and a long venv path hides the word ansible-playbook.
    wrapper.write_text("#!/bin/bash\n%s --section=pre-data \"$@\"\n"
                       "p=$PPID; pids=\"\"; found=\"\"\n"
                       "while [ \"${p:-1}\" -gt 1 ] && [ \"$p\" != %d ]; do pids=\"$pids $p\"\n"
                       "  case \"$(tr '\\0' ' ' < /proc/$p/cmdline)\" in *ansible-playbook*) found=1; break;; esac\n"
                       "  p=$(ps -o ppid= -p $p | tr -d ' '); done\n"
                       "ps -ww -o pid,ppid,args -p \"${pids# }\" > %s 2>&1\n"
                       "[ -n \"$found\" ] || exit 3\n"
                       "kill -9 $pids\nsleep 30\n"
                       % (run.cluster.bindir / "pg_restore", os.getpid(), tmp_path / "killed.txt"))
    wrapper.chmod(0o755)
    rc, out = run("db_restore", {"db_restore_pg_restore": str(wrapper)})
    assert rc != 0, out
    assert fingerprints(run.cluster, SHORT) == live["live"]
    half = [n for n in names(run.cluster, SHORT) if n.startswith(SHORT + "_restore_")]
    assert len(half) == 1 and run.lock.exists(), names(run.cluster, SHORT)
    state = run.runs()[-1]
    assert state["outcome"] == "running" and state["stage"] == "restoring" and state["restored_as"] == half[0]

    rc, out = run("db_restore")
    assert rc != 0 and "stale lock" in out and "is gone on this control host" in out, out
    assert half[0] in names(run.cluster, SHORT)
    rc, out = run("db_restore", {"db_restore_break_lock": True})
    assert rc == 0 and "Left by an interrupted run" in out and half[0] in out, out
    assert half[0] not in names(run.cluster, SHORT) and not run.lock.exists()
    assert fingerprints(run.cluster, SHORT) == live["backup"]
    assert [r["outcome"] for r in run.runs() if r["action"] == "restore"] == ["interrupted", "ok"]
