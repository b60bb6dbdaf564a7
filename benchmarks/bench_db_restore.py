# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark playbooks/db_restore.yml end to end against a bare ``pg_restore -j 2`` into an empty database.

Same backup, same throwaway cluster, same run. The playbook keeps every safety step on: deep verification
of the backup (every data block, sha256 against its .sha256), disk-room check, restore beside the live
database with ``pg_restore -j 2``, table check and exact row counts of the restored copy, a smoke query,
closing and terminating sessions, the swap by renaming, and the report. Only the app stop/start
(sre.runbooks.target) is off, as there is no app here.                          goal: ratio <= 1.3

The backup is ``pg_dump -Fc`` of a generated database (--rows rows, default 16M: a 1.8 GB database, a
restore of about half a minute; --quick uses 400k rows, where the playbook's fixed cost of a few seconds
dominates and the ratio is not meaningful) and is cached in /var/cache/sre-runbooks/bench/ (BENCH_CACHE
overrides). Both measurements run with the live database present, after a CHECKPOINT.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("BENCH_CACHE", "/var/cache/sre-runbooks/bench"))
PG_BIN = Path(os.environ.get("PG_BINDIR", sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backup_verify import ensure_link, make_custom  # noqa: E402


def log(msg):
    print(msg, flush=True)


class Cluster:
    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="bench-restore-", dir="/tmp"))
        os.chmod(self.base, 0o777)
        self.data, self.sock = self.base / "data", self.base / "sock"
        self.sock.mkdir()
        os.chmod(self.sock, 0o777)
        self.port = str(20000 + (os.getpid() + 7) % 20000)

    def as_pg(self, argv):
        return subprocess.run(["runuser", "-u", "postgres", "--"] + argv, check=True, capture_output=True)

    def start(self):
        self.as_pg([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync"])
        self.as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"), "-w", "-o",
                    "-p %s -k %s -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c max_wal_size=4GB"
                    % (self.port, self.sock), "start"])
        return self

    def stop(self):
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                        "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def psql(self, sql, db="postgres"):
        return subprocess.run([str(PG_BIN / "psql"), "-h", str(self.sock), "-p", self.port, "-U", "postgres", "-d", db, "-X",
                               "-v", "ON_ERROR_STOP=1", "-Atqc", sql], check=True, capture_output=True, text=True).stdout

    def restore(self, db, backup, jobs=2):
        subprocess.run([str(PG_BIN / "pg_restore"), "-h", str(self.sock), "-p", self.port, "-U", "postgres", "-j", str(jobs),
                        "--exit-on-error", "-d", db, str(backup)], check=True, capture_output=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small backup (400k rows) for CI")
    parser.add_argument("--rows", type=int, default=None, help="rows of the generated table (default 16M, quick 400k)")
    opts = parser.parse_args()
    ensure_link()
    rows = opts.rows or (400000 if opts.quick else 16000000)
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / ("custom_%dk.dump" % (rows // 1000))
    if not cached.exists():
        log("generating %s (pg_dump -Fc of %d rows; once, cached)" % (cached, rows))
        make_custom(cached, rows)
    cluster = Cluster().start()
    work = Path(tempfile.mkdtemp(prefix="bench-restore-work-"))
    try:
        backups = work / "backups"
        backups.mkdir()
        backup = backups / "bench-20250101T000000Z.dump"
        shutil.copy(cached, backup)
        (backups / (backup.name + ".sha256")).write_text("%s  %s\n" % (hashlib.sha256(backup.read_bytes()).hexdigest(), backup.name))

        # the live database the playbook replaces (present for both measurements: same conditions)
        cluster.psql("CREATE DATABASE bench")
        cluster.restore("bench", backup)
        cluster.psql("INSERT INTO customers SELECT -g, 'new' FROM generate_series(1, 10) g", db="bench")

        # baseline: a bare pg_restore -j 2 into an empty database
        cluster.psql("CREATE DATABASE baseline")
        cluster.psql("CHECKPOINT")
        start = time.perf_counter()
        cluster.restore("baseline", backup)
        base = time.perf_counter() - start
        cluster.psql("DROP DATABASE baseline")
        cluster.psql("CHECKPOINT")

        variables = {
            "sre_db_name": "bench", "sre_confirm": "yes", "db_restore_login_host": str(cluster.sock),
            "db_restore_login_port": int(cluster.port), "db_restore_login_user": "postgres",
            "db_restore_pg_restore": str(PG_BIN / "pg_restore"), "db_restore_jobs": 2,
            "db_restore_backup_dir": str(backups), "db_restore_backup_pattern": "*.dump", "db_restore_manage_app": False,
            "db_restore_smoke_queries": ["SELECT EXISTS (SELECT 1 FROM items)"], "ansible_python_interpreter": sys.executable,
        }
        varfile = work / "vars.json"
        varfile.write_text(json.dumps(variables))
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", SRE_INCIDENT_DIR=str(work / "incidents"))
        if os.environ.get("BENCH_PROFILE"):
            env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks,sre.runbooks.incident"
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", "target=localhost",
               "-e", "@%s" % varfile, "playbooks/db_restore.yml"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True, check=False)
        ours = time.perf_counter() - start
        if proc.returncode != 0:
            log(proc.stdout[-4000:] + proc.stderr[-2000:])
            raise SystemExit("db_restore.yml failed")
        restored = cluster.psql("SELECT count(*) FROM customers WHERE id < 0", db="bench").strip()
        if restored != "0":
            raise SystemExit("the live database was not replaced by the backup")
        size = cluster.psql("SELECT pg_size_pretty(pg_database_size('bench'))").strip()
        log("backup %s (%.0f MiB), restored database %s, %d rows in the main table"
            % (cached.name, backup.stat().st_size / 1048576.0, size, rows))
        log("  baseline pg_restore -j 2 into an empty database: %.2fs" % base)
        log("  db_restore.yml end to end (verify, disk check, restore -j 2, checks, swap, report): %.2fs" % ours)
        if os.environ.get("BENCH_PROFILE"):
            log(proc.stdout[-5000:])
        ratio = ours / base
        log("  ratio = %.2f (goal <= 1.3)" % ratio)
        return 0 if ratio <= 1.3 else 1
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
