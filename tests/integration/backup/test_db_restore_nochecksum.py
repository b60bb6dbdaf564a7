# SPDX-License-Identifier: GPL-3.0-or-later
"""db_restore of backups that have no .sha256 beside them (issue 12): SaaSResto's
``/var/backups/saasresto/latest_backup.sql.gz`` and Ferreteria's ``/var/backups/ferreteria/daily/*.sql.gz``
(``pg_dump | gzip``, as their backup scripts write them). They are restored after the full read of backup_verify,
and the plan says "no checksum file: verified by full read"; a truncated or corrupt one is refused with one clear
message before anything stops, the live data untouched (fingerprinted: rows and md5 of every table).

A real throwaway cluster, the superuser login of the other db_restore tests, the app not managed
(db_restore_manage_app: false; test_db_restore_hosted.py covers the target interface).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import time

import pytest

from playbook_runner import run_playbook

LIVE = "restodb"
CHANGES = """
INSERT INTO public.customers SELECT g, 'late customer ' || g, NULL, now() FROM generate_series(3001, 3100) g;
UPDATE shop.orders SET total = total + 1 WHERE id % 3 = 0;
"""
OLDER = "DELETE FROM shop.orders WHERE id > 4000;"  # the older daily backup holds less


def databases(cluster):
    return sorted(cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE '%s%%'" % LIVE).split())


@pytest.fixture(scope="module")
def dumps(pg_cluster, source_db, backup_helpers, tmp_path_factory):
    """pg_dump | gzip of source_db, and of a copy with fewer orders (the older daily backup)."""
    plain = backup_helpers.dump(pg_cluster, source_db, None)
    pg_cluster.psql('DROP DATABASE IF EXISTS "%s_older"' % LIVE)
    pg_cluster.psql('CREATE DATABASE "%s_older" TEMPLATE %s' % (LIVE, source_db))
    pg_cluster.psql(OLDER, dbname=LIVE + "_older")
    older_fp = backup_helpers.fingerprints(pg_cluster, LIVE + "_older")
    older = backup_helpers.dump(pg_cluster, LIVE + "_older", None)
    pg_cluster.psql('DROP DATABASE "%s_older"' % LIVE)
    return {"plain": gzip.compress(plain, 6), "older": gzip.compress(older, 6), "older_fp": older_fp,
            "backup_fp": backup_helpers.fingerprints(pg_cluster, source_db)}


@pytest.fixture
def live(pg_cluster, source_db, backup_helpers):
    for name in databases(pg_cluster):
        pg_cluster.psql('DROP DATABASE "%s" WITH (FORCE)' % name)
    pg_cluster.psql('CREATE DATABASE "%s" TEMPLATE %s' % (LIVE, source_db))
    pg_cluster.psql(CHANGES, dbname=LIVE)
    return backup_helpers.fingerprints(pg_cluster, LIVE)


def restore(cluster, tmp_path, extra):
    variables = {
        "sre_db_name": LIVE, "sre_confirm": "yes", "sre_state_dir": str(tmp_path / "state"),
        "db_restore_login_host": cluster.host, "db_restore_login_port": cluster.port,
        "db_restore_login_user": cluster.user, "db_restore_login_password": cluster.password,
        "db_restore_pg_restore": str(cluster.bindir / "pg_restore"), "db_restore_psql": str(cluster.bindir / "psql"),
        "db_restore_manage_app": False,
    }
    variables.update(extra)
    r = run_playbook("db_restore", tmp_path=tmp_path, target="localhost", extra_vars=variables,
                     secrets=[cluster.password])
    return r.rc, r.output, " ".join(r.output.replace("''", "'").split())


def saasresto_dir(tmp_path, data):
    d = tmp_path / "var" / "backups" / "saasresto"
    d.mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    (d / "latest_backup.sql.gz").write_bytes(data)
    return d


def ferreteria_daily(tmp_path, dumps, newest=None):
    """daily/ferreteria_db_<date>_020000.sql.gz, the newest last (by modification time, as backup_db.sh leaves them)."""
    d = tmp_path / "var" / "backups" / "ferreteria" / "daily"
    d.mkdir(parents=True)
    now = time.time()
    files = [("ferreteria_db_20250101_020000.sql.gz", dumps["older"], now - 2 * 86400),
             ("ferreteria_db_20250102_020000.sql.gz", dumps["older"], now - 86400),
             ("ferreteria_db_20250103_020000.sql.gz", newest if newest is not None else dumps["plain"], now - 60)]
    for name, data, mtime in files:
        (d / name).write_bytes(data)
        os.utime(d / name, (mtime, mtime))
    return d


def test_saasresto_latest_backup_without_checksum_is_restored_after_a_full_read(
        pg_cluster, backup_helpers, dumps, live, tmp_path):
    d = saasresto_dir(tmp_path, dumps["plain"])
    extra = {"db_restore_backup_dir": str(d), "db_restore_backup_pattern": "latest_backup.sql.gz"}
    rc, out, flat = restore(pg_cluster, tmp_path, dict(extra, sre_confirm="no"))
    assert rc == 0 and "Checksum: no checksum file: verified by full read" in flat, out[-4000:]
    assert "latest_backup.sql.gz (plain" in flat and "with psql" in flat, flat[-4000:]
    assert backup_helpers.fingerprints(pg_cluster, LIVE) == live and databases(pg_cluster) == [LIVE]

    rc, out, flat = restore(pg_cluster, tmp_path, extra)
    assert rc == 0, out[-6000:]
    assert "Checksum: no checksum file: verified by full read" in flat
    assert "Restored restodb from %s" % (d / "latest_backup.sql.gz") in flat, flat[-3000:]
    assert backup_helpers.fingerprints(pg_cluster, LIVE) == dumps["backup_fp"]
    kept = [n for n in databases(pg_cluster) if n != LIVE]
    assert len(kept) == 1 and "_pre_restore_" in kept[0]
    assert list(d.iterdir()) == [d / "latest_backup.sql.gz"]  # no checksum file written beside it


def test_ferreteria_newest_daily_backup_without_checksum_is_restored(pg_cluster, backup_helpers, dumps, live, tmp_path):
    d = ferreteria_daily(tmp_path, dumps)
    rc, out, flat = restore(pg_cluster, tmp_path, {"db_restore_backup_dir": str(d),
                                                   "db_restore_backup_pattern": "*.sql.gz"})
    assert rc == 0, out[-6000:]
    assert "Checksum: no checksum file: verified by full read" in flat
    assert "Restore restodb from %s" % (d / "ferreteria_db_20250103_020000.sql.gz") in flat, flat[-4000:]
    assert backup_helpers.fingerprints(pg_cluster, LIVE) == dumps["backup_fp"]


@pytest.mark.parametrize("damage", ["truncated", "bitflip"])
def test_corrupt_backup_without_checksum_is_refused_and_nothing_changes(pg_cluster, backup_helpers, dumps, live,
                                                                        tmp_path, damage):
    data = dumps["plain"]
    if damage == "truncated":
        bad = data[: len(data) * 6 // 10]
    else:
        buf = bytearray(data)
        buf[len(buf) // 2] ^= 0x10
        bad = bytes(buf)
    d = ferreteria_daily(tmp_path, dumps, newest=bad)
    newest = d / "ferreteria_db_20250103_020000.sql.gz"
    rc, out, flat = restore(pg_cluster, tmp_path, {"db_restore_backup_dir": str(d),
                                                   "db_restore_backup_pattern": "*.sql.gz"})
    assert rc != 0, out[-4000:]
    assert "Refusing to restore restodb from %s: the backup is not valid" % newest in flat, flat[-4000:]
    assert ("truncated" if damage == "truncated" else "compression_error") in flat
    assert "Nothing was stopped or changed" in flat and "Traceback" not in out
    # one message (repeated by the failing task, the final failure and the incident summary), no other error
    assert len(set(re.findall(r"Refusing to restore .*?Nothing was stopped or changed\.", flat))) == 1, flat[-4000:]
    assert "Note the state before writes stop" not in out  # refused before anything stops
    # never falls back silently to an older backup; the live data is what it was
    assert backup_helpers.fingerprints(pg_cluster, LIVE) == live and databases(pg_cluster) == [LIVE]
    assert not list(d.glob("*.sha256"))


def test_checksum_required_refuses_a_backup_without_one(pg_cluster, backup_helpers, dumps, live, tmp_path):
    d = saasresto_dir(tmp_path, dumps["plain"])
    rc, out, flat = restore(pg_cluster, tmp_path, {"db_restore_backup": str(d / "latest_backup.sql.gz"),
                                                   "db_restore_allow_no_checksum": False})
    assert rc != 0 and "it has no checksum file" in flat and "db_restore_allow_no_checksum" in flat, flat[-4000:]
    assert "Nothing was stopped or changed" in flat
    assert backup_helpers.fingerprints(pg_cluster, LIVE) == live and databases(pg_cluster) == [LIVE]


def test_a_backup_with_its_checksum_still_wins_in_a_directory(pg_cluster, backup_helpers, dumps, live, tmp_path):
    """The backup runbook writes a .sha256 only after verifying: the newest such backup is preferred to a newer one
    without (as before), and the plan says the checksum matched."""
    d = ferreteria_daily(tmp_path, dumps)
    verified = d / "ferreteria_db_20250102_020000.sql.gz"
    (d / (verified.name + ".sha256")).write_text("%s  %s\n" % (hashlib.sha256(verified.read_bytes()).hexdigest(),
                                                               verified.name))
    rc, out, flat = restore(pg_cluster, tmp_path, {"db_restore_backup_dir": str(d),
                                                   "db_restore_backup_pattern": "*.sql.gz"})
    assert rc == 0, out[-6000:]
    assert "Restore restodb from %s" % verified in flat and "Checksum: sha256 matches" in flat, flat[-4000:]
    assert backup_helpers.fingerprints(pg_cluster, LIVE) == dumps["older_fp"]
