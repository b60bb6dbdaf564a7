# SPDX-License-Identifier: GPL-3.0-or-later
"""pg_triage vs the source runbooks' psql sequence, on a cluster with 500 client backends, same run.

A throwaway cluster (max_connections 600, pg_stat_statements with track_planning) gets 500 client backends of
a non-superuser role: most idle, some idle in a transaction, some running a long pg_sleep and some blocked
behind a row lock (one holder, the others waiting on it: a blocking chain). Then, with the same DATABASE_URL
(TCP, scram-sha-256 password) for both:

  ours      one ``sre.runbooks.pg_triage`` call, run the way Ansible runs a module (a separate Python process
            reading an args file): saturation, counts, idle / idle in transaction / long running sessions,
            blocking chains, prepared transactions.
  baseline  the source runbooks' diagnosis, one ``psql "$DATABASE_URL" -c`` call each (runbooks 000, 001, 004):
              SELECT count(*) FROM pg_stat_activity;
              SHOW max_connections;
              SELECT * FROM pg_locks WHERE NOT granted;
              SELECT pid, now() - query_start AS duration, query FROM pg_stat_activity
               WHERE state = 'active' ORDER BY duration DESC;

Wall times are the best (and the median) of --runs alternating runs.             goal: ratio <= 0.5
The floor printed beside them is what any Ansible module pays before its first query (Python, ansible-core's
AnsibleModule, psycopg2), measured in the same runs.
Server-side time of the module's own queries: pg_stat_statements is reset, the module runs --runs times, and
the planning + execution time pg_stat_statements recorded for every statement (track_planning on; top-level
statements, the bench's own reset and read excluded) is divided by the runs. It excludes connecting,
authentication and the network.                                                  goal: < 50 ms
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import PgCluster, free_port, run_module  # noqa: E402
from pg_sessions import run_in_background  # noqa: E402

ROLE = "bench_app"
BASELINE_SQL = [
    "SELECT count(*) FROM pg_stat_activity;",
    "SHOW max_connections;",
    "SELECT * FROM pg_locks WHERE NOT granted;",
    "SELECT pid, now() - pg_stat_activity.query_start AS duration, query FROM pg_stat_activity "
    "WHERE state = 'active' ORDER BY duration DESC;",
]


def log(msg):
    print(msg, flush=True)


class Load:
    """The 500 client backends: idle, idle in transaction, sleeping, and blocked behind one row lock."""

    def __init__(self, cluster, idle, in_xact, sleeping, blocked):
        self.cluster = cluster
        self.plan = [("idle", idle), ("idle_in_transaction", in_xact), ("sleeping", sleeping), ("blocked", blocked)]
        self.conns = []
        self.threads = []

    def _connect(self, kind):
        # the filler sessions log in over the Unix socket (trust): opening 500 is quick
        conn = psycopg2.connect(host=str(self.cluster.sockdir), port=self.cluster.port, user=ROLE, dbname="postgres",
                                application_name="bench-%s" % kind)
        conn.autocommit = kind in ("idle", "sleeping")
        return conn

    def _background(self, conn, sql):
        run_in_background(conn, sql, self.threads)

    def start(self):
        kinds = [kind for kind, count in self.plan for dummy in range(count)]
        with ThreadPoolExecutor(16) as pool:
            conns = list(pool.map(self._connect, kinds))
        self.conns = conns
        holder = None
        for kind, conn in zip(kinds, conns):
            if kind == "idle_in_transaction":
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM bench_t")
            elif kind == "sleeping":
                self._background(conn, "SELECT pg_sleep(3600)")
            elif kind == "blocked":
                if holder is None:
                    holder = conn
                    with conn.cursor() as cur:
                        cur.execute("UPDATE bench_t SET v = v + 1 WHERE id = 1")
                else:
                    self._background(conn, "UPDATE bench_t SET v = v + 1 WHERE id = 1")
        deadline = time.time() + 60
        want = sum(count for kind, count in self.plan)
        while time.time() < deadline:
            counts = self.cluster.psql(
                "SELECT count(*), count(*) FILTER (WHERE wait_event_type = 'Lock') FROM pg_stat_activity "
                "WHERE application_name LIKE 'bench-%'").strip().split("|")
            if int(counts[0]) == want and int(counts[1]) == dict(self.plan)["blocked"] - 1:
                return
            time.sleep(0.2)
        raise SystemExit("the load did not settle: %s backends, %s blocked" % tuple(counts))

    def stop(self):
        for conn in self.conns:
            try:
                conn.cancel()
                conn.close()
            except psycopg2.Error:
                pass


def time_module(url):
    start = time.perf_counter()
    res = run_module("pg_triage", {"dsn": url, "idle_after": "1s", "idle_in_transaction_after": "1s",
                                   "long_query_after": "1s", "blocked_after": "1s"})
    took = time.perf_counter() - start
    if res.get("rc") != 0 or res.get("status") in (None, "unreachable"):
        raise SystemExit("pg_triage failed: %s" % res.get("raw", "")[-2000:])
    return took, res


def time_baseline(url):
    start = time.perf_counter()
    lines = 0
    for sql in BASELINE_SQL:
        proc = subprocess.run(["psql", url, "-X", "-c", sql], capture_output=True, text=True, check=True)
        lines += len(proc.stdout.splitlines())
    return time.perf_counter() - start, lines


def time_floor():
    """What any module of this collection pays before its first line: Python, ansible-core's AnsibleModule, psycopg2."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import ansible.module_utils.basic, psycopg2"], check=True)
    return time.perf_counter() - start


def server_side_ms(admin, runs, url):
    """Planning + execution ms per module run, from pg_stat_statements (reset before the runs)."""
    with admin.cursor() as cur:
        cur.execute("SELECT pg_stat_statements_reset()")
    for dummy in range(runs):
        time_module(url)
    with admin.cursor() as cur:
        cur.execute("""SELECT calls, total_plan_time, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 70)
                       FROM pg_stat_statements
                       WHERE query NOT LIKE '%%pg_stat_statements%%' AND toplevel
                       ORDER BY total_plan_time + total_exec_time DESC""")
        rows = cur.fetchall()
    return sum(r[1] + r[2] for r in rows) / runs, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 backends and 5 runs instead of 500 and 15")
    parser.add_argument("--backends", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    backends = args.backends or (100 if args.quick else 500)
    runs = args.runs or (5 if args.quick else 15)
    blocked = max(backends // 10, 2)
    sleeping = max(backends // 25, 1)
    in_xact = max(backends // 5, 1)
    idle = backends - blocked - sleeping - in_xact

    base = Path(tempfile.mkdtemp(prefix="bench-triage-", dir="/tmp"))
    os.chmod(base, 0o755)
    cluster = PgCluster(base / "pg", free_port(), {"max_connections": str(backends + 100),
                                                   "pg_stat_statements.track_planning": "on"}).start()
    load = None
    try:
        cluster.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; CREATE ROLE %s LOGIN; "
                     "CREATE TABLE bench_t (id int PRIMARY KEY, v int); INSERT INTO bench_t VALUES (1, 0); "
                     "GRANT ALL ON bench_t TO %s" % (ROLE, ROLE))
        url = "postgresql://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable" % (cluster.password, cluster.port)
        load = Load(cluster, idle, in_xact, sleeping, blocked)
        log("opening %d client backends (%d idle, %d idle in transaction, %d running pg_sleep, %d behind one "
            "row lock) ..." % (backends, idle, in_xact, sleeping, blocked))
        load.start()
        time.sleep(1.2)

        # warm up both (page cache, pyc files), then alternate
        dummy, res = time_module(url)
        time_baseline(url)
        ours, theirs, floor = [], [], []
        for dummy in range(runs):
            took, res = time_module(url)
            ours.append(took)
            took, lines = time_baseline(url)
            theirs.append(took)
            floor.append(time_floor())
        chains = res["blocking"]
        log("pg_triage saw %d client backends, %d idle in transaction, %d long running, %d blocking chain(s)%s"
            % (res["connections"]["total"], len(res["sessions"]["idle_in_transaction"]),
               len(res["sessions"]["long_running"]), len(chains),
               (" (root blocks %d)" % len(chains[0]["blocked_pids"])) if chains else ""))

        admin = cluster.connect()
        admin.autocommit = True
        per_run, rows = server_side_ms(admin, runs, url)
        admin.close()
    finally:
        if load:
            load.stop()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)

    best, median = min(ours) / min(theirs), statistics.median(ours) / statistics.median(theirs)
    log("")
    log("backends = %d, runs = %d" % (backends, runs))
    log("pg_triage (one module call) = best %.3f s, median %.3f s" % (min(ours), statistics.median(ours)))
    log("baseline (4 psql \"$DATABASE_URL\" -c calls: count, SHOW max_connections, pg_locks, long running) = "
        "best %.3f s, median %.3f s" % (min(theirs), statistics.median(theirs)))
    log("ratio = %.3f best / %.3f median (goal <= 0.5)" % (best, median))
    log("floor (python -c 'import ansible.module_utils.basic, psycopg2', paid by any module before it connects) = "
        "best %.3f s, median %.3f s: %.2f of the baseline on its own"
        % (min(floor), statistics.median(floor), min(floor) / min(theirs)))
    log("server-side time of the module's queries = %.1f ms per run (goal < 50 ms; pg_stat_statements "
        "planning + execution, %d runs)" % (per_run, runs))
    for calls, plan, exe, query in rows:
        log("  %4d calls  %8.1f ms plan  %8.1f ms exec  %s" % (calls, plan, exe, query))


if __name__ == "__main__":
    main()
