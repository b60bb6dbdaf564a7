# SPDX-License-Identifier: GPL-3.0-or-later
"""db_restore's disk check (roles/db_restore/tasks/_preflight.yml) when the free space cannot be read.

A remote database server's data directory is not on the managed host, so df on it fails: the plan says so and
why, and a confirmed restore is refused (nothing stopped) unless db_restore_free_bytes gives the figure or
db_restore_skip_disk_check=true skips the check. The throwaway cluster is local, so "remote" is a df that
fails the way it does for a path that is not there. The local case keeps measuring the free space.
"""

from __future__ import annotations

import os

import pytest

import test_db_restore as base

# the fixtures and helpers of test_db_restore.py, reused (module-scoped there, so one instance here)
app = base.app
backup_dir = base.backup_dir
live = base.live
helpers = getattr(base, "_helpers")  # autouse: fills base.H

NOT_READABLE = "not readable from localhost"
POLICY = "the restore goes ahead only with db_restore_free_bytes set or db_restore_skip_disk_check=yes"


@pytest.fixture
def remote_df(tmp_path, monkeypatch):
    """df fails for the data directory, as it does on a host that does not hold it."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "df"
    fake.write_text("#!/bin/sh\nfor a; do last=$a; done\necho \"df: $last: No such file or directory\" >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", "%s%s%s" % (bindir, os.pathsep, os.environ.get("PATH", "")))
    return fake


def flat(text):
    return " ".join(text.split())


@pytest.mark.usefixtures("remote_df")
def test_unreadable_free_space_is_in_the_plan(pg_cluster, app, backup_dir, live, tmp_path):
    rc, out = base.run_playbook("db_restore", pg_cluster, app, {"db_restore_backup_dir": str(backup_dir),
                                                                "sre_confirm": "no"}, tmp_path=tmp_path)
    assert rc == 0 and "Not confirmed: nothing is changed" in out, out
    text = flat(out)
    assert "free space on %s: %s" % (pg_cluster.host, NOT_READABLE) in text, out
    assert "No such file or directory" in text and "a remote server" in text and POLICY in text, out
    base.assert_untouched(pg_cluster, app, live)


@pytest.mark.usefixtures("remote_df")
def test_unreadable_free_space_refuses_a_confirmed_restore(pg_cluster, app, backup_dir, live, tmp_path):
    rc, out = base.run_playbook("db_restore", pg_cluster, app, {"db_restore_backup_dir": str(backup_dir)},
                                tmp_path=tmp_path)
    text = flat(out)
    assert rc != 0 and "Refusing to restore %s: free space on" % base.LIVE in text, out
    assert NOT_READABLE in text and "Nothing was stopped or changed" in text, out
    assert "Note the state before writes stop" not in out
    base.assert_untouched(pg_cluster, app, live)


@pytest.mark.parametrize("override, shown", [({"db_restore_skip_disk_check": True}, "Disk: check skipped"),
                                             ({"db_restore_free_bytes": 10 ** 12}, "(db_restore_free_bytes)")])
@pytest.mark.usefixtures("remote_df")
def test_unreadable_free_space_goes_ahead_when_told(pg_cluster, app, backup_dir, live, tmp_path, override, shown):
    rc, out = base.run_playbook("db_restore", pg_cluster, app, dict(override, db_restore_backup_dir=str(backup_dir)),
                                tmp_path=tmp_path)
    assert rc == 0, out
    assert shown in flat(out) and NOT_READABLE not in flat(out), out
    assert base.table_fingerprints(pg_cluster, base.LIVE) == live["backup"]


def test_local_free_space_is_measured(pg_cluster, app, backup_dir, live, tmp_path):
    rc, out = base.run_playbook("db_restore", pg_cluster, app, {"db_restore_backup_dir": str(backup_dir),
                                                                "sre_confirm": "no"}, tmp_path=tmp_path)
    assert rc == 0, out
    text = flat(out)
    assert "Disk: needs about " in text and ", free " in text and "not readable" not in text, out
    base.assert_untouched(pg_cluster, app, live)
