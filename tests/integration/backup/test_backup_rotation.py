# SPDX-License-Identifier: GPL-3.0-or-later
"""backup remediate's rotation (roles/backup/tasks/_rotate_plan.yml) against local files and the throwaway cluster.

It keeps the newest backup_keep_last *verified* backups (backup_verify finds them valid, their .sha256 included),
never deletes the newest verified one nor anything newer than it, deletes an unverified backup only when it is
older than the newest verified one and beyond the keep count, and lists each file it deletes with why.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time

import pytest

from playbook_runner import run_playbook

# newest first: (name, kind); kinds: good (valid dump), good+sha (valid, matching .sha256),
# badsha (valid dump whose .sha256 does not match), cut (truncated archive)
LAYOUT = [
    ("db-20250107T000000Z.dump", "cut"),       # newer than the newest verified one: kept
    ("db-20250106T000000Z.dump", "cut"),       # newer than the newest verified one: kept
    ("db-20250105T000000Z.dump", "good+sha"),  # the newest verified one: kept
    ("db-20250104T000000Z.dump", "badsha"),    # unverified, older, beyond the keep count: deleted
    ("db-20250103T000000Z.dump", "good"),      # verified, within the 3 verified kept (new one, 05, 03)
    ("db-20250102T000000Z.dump", "good+sha"),  # verified, beyond the 3 verified kept: deleted
    ("db-20250101T000000Z.dump", "cut"),       # unverified, older: deleted
]
KEPT = ["db-20250107T000000Z.dump", "db-20250106T000000Z.dump", "db-20250105T000000Z.dump",
        "db-20250103T000000Z.dump"]
DELETED = ["db-20250104T000000Z.dump", "db-20250102T000000Z.dump", "db-20250101T000000Z.dump"]


@pytest.fixture
def rotation_env(pg_cluster, source_db, corpus, tmp_path, collections_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    good, cut = corpus["custom.dump"][0], corpus["custom_truncated.dump"][0]

    def lay_out(layout):
        now = time.time()
        for index, (name, kind) in enumerate(layout):
            path = backups / name
            shutil.copy(cut if kind == "cut" else good, path)
            if kind in ("good+sha", "badsha"):
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if kind == "good+sha" else "0" * 64
                (backups / (name + ".sha256")).write_text("%s  %s\n" % (digest, name))
            stamp = now - (index + 2) * 86400
            os.utime(path, (stamp, stamp))

    def run(extra=None):
        variables = {
            "sre_db_name": source_db, "sre_db_host": pg_cluster.host, "sre_db_port": pg_cluster.port,
            "sre_db_user": pg_cluster.user, "sre_db_password": pg_cluster.password, "sre_backup_dir": str(backups),
            "sre_backup_pattern": "*.dump", "backup_pg_dump": str(pg_cluster.bindir / "pg_dump"),
            "backup_name_prefix": "db",
        }
        variables.update(extra or {})
        return run_playbook("backup_remediate", tmp_path=tmp_path, target="localhost", extra_vars=variables,
                            secrets=[pg_cluster.password])

    return backups, lay_out, run


def _names(backups, pattern="*.dump"):
    return sorted(p.name for p in backups.glob(pattern))


def _plan_line(output, name):
    """The plan's 'delete <path>: <why>' entry for name (the YAML callback wraps long lines: whitespace folded)."""
    flat = " ".join(output.split())
    start = flat.find("/%s: " % name)
    assert start >= 0 and "delete " in flat[max(0, start - 300):start], "no plan entry for %s in:\n%s" % (name, output)
    end = flat.find(" - ", start)
    return flat[start:end if end > 0 else start + 400]


def test_unconfirmed_plan_lists_each_deletion_with_why(rotation_env):
    backups, lay_out, run = rotation_env
    lay_out(LAYOUT)
    before = sorted(p.name for p in backups.iterdir())
    result = run({"backup_keep_last": 3})
    assert result.rc == 0 and result.changed() == 0, result.output
    assert "Not confirmed" in result.output and "delete 3 old backup(s)" in result.output, result.output
    assert sorted(p.name for p in backups.iterdir()) == before
    assert "not verified (" in _plan_line(result.output, DELETED[0])
    assert "older than the newest verified backup db-20250105T000000Z.dump" in _plan_line(result.output, DELETED[0])
    assert "verified, beyond the newest 3 verified backup(s)" in _plan_line(result.output, DELETED[1])
    assert "not verified (" in _plan_line(result.output, DELETED[2])
    for name in KEPT:
        assert "/%s: " % name not in " ".join(result.output.split()), name


def test_confirmed_rotation_keeps_verified_and_newer_backups(rotation_env):
    backups, lay_out, run = rotation_env
    lay_out(LAYOUT)
    result = run({"backup_keep_last": 3, "sre_confirm": "yes"})
    assert result.rc == 0 and result.changed() > 0, result.output
    new = [name for name in _names(backups) if name not in dict(LAYOUT)]
    assert len(new) == 1, _names(backups)
    assert _names(backups) == sorted(KEPT + new)
    assert _names(backups, "*.sha256") == sorted(["db-20250105T000000Z.dump.sha256", new[0] + ".sha256"])
    assert "Rotation deleted 5 file(s)" in result.output, result.output  # 3 backups, 2 .sha256 files


def test_keep_last_one_never_deletes_the_newest_verified_backup(rotation_env):
    backups, lay_out, run = rotation_env
    lay_out(LAYOUT)
    result = run({"backup_keep_last": 1, "sre_confirm": "yes"})
    assert result.rc == 0, result.output
    remaining = _names(backups)
    assert {"db-20250107T000000Z.dump", "db-20250106T000000Z.dump", "db-20250105T000000Z.dump"} <= set(remaining)
    assert not {"db-20250104T000000Z.dump", "db-20250103T000000Z.dump", "db-20250102T000000Z.dump",
                "db-20250101T000000Z.dump"} & set(remaining), remaining


def test_no_verified_backup_on_disk_deletes_nothing(rotation_env):
    backups, lay_out, run = rotation_env
    lay_out([("db-2025010%dT000000Z.dump" % day, "cut") for day in range(5, 0, -1)])
    result = run({"backup_keep_last": 1})
    assert result.rc == 0 and result.changed() == 0, result.output
    assert "rotation deletes nothing: no backup on disk verifies" in result.output, result.output
    assert "old backup(s)" not in result.output, result.output
    assert len(_names(backups)) == 5
