# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/db_restore*.yml against a real cluster on localhost, with faults injected.

The "app" is a tiny HTTP server in this process holding a connection to the live database (its
/health answers 200 after a query; /broken always 503). In every failure case the live data
afterwards is exactly what it was (row count and md5 of every table) and the app serves again.
The target interface is skipped (db_restore_manage_app: false); the lab covers it.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import subprocess
import threading
import urllib.request

import psycopg2
import pytest

from playbook_runner import run_playbook as _run_playbook
H = {}


@pytest.fixture(autouse=True, scope="module")
def _helpers(backup_helpers, collections_path):
    H.update(dump=backup_helpers.dump, fingerprints=backup_helpers.fingerprints)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def table_fingerprints(cluster, dbname):
    return H["fingerprints"](cluster, dbname)


LIVE = "shopdb"
CHANGES = """
INSERT INTO public.customers SELECT g, 'late customer ' || g, NULL, now() FROM generate_series(3001, 3100) g;
UPDATE shop.orders SET total = total + 1 WHERE id % 3 = 0;
DELETE FROM shop."Odd Name" WHERE k LIKE 'k1%';
"""


class App:
    """A stand-in app: keeps one connection to the live database, reconnects when it is cut."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.conn = None
        self.lock = threading.Lock()
        self.port = free_port()
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                code = 503 if self.path == "/broken" else app.health()
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok\n" if code == 200 else b"unhealthy\n")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def health(self):
        with self.lock:
            for dummy in range(2):
                try:
                    if self.conn is None or self.conn.closed:
                        self.conn = self.cluster.connect(LIVE)
                        self.conn.autocommit = True
                    with self.conn.cursor() as cur:
                        cur.execute("SELECT count(*) FROM public.customers")
                        return 200 if cur.fetchone()[0] > 0 else 500
                except psycopg2.Error:
                    self.conn = None
            return 503

    def url(self, path="/health"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def serves(self):
        try:
            return urllib.request.urlopen(self.url(), timeout=5).status == 200
        except OSError:
            return False


@pytest.fixture(scope="module")
def app(pg_cluster):
    a = App(pg_cluster)
    yield a
    a.server.shutdown()


@pytest.fixture(scope="module")
def backup_dir(pg_cluster, source_db, tmp_path_factory):
    """A verified backup (with .sha256, as the backup runbook leaves it) of the data before CHANGES."""
    d = tmp_path_factory.mktemp("backups")
    path = d / "shopdb-20250101T000000Z.dump"
    H["dump"](pg_cluster, source_db, path, "-Fc")
    (d / (path.name + ".sha256")).write_text("%s  %s\n" % (hashlib.sha256(path.read_bytes()).hexdigest(), path.name))
    return d


@pytest.fixture
def live(pg_cluster, source_db, backup_dir):
    """A fresh live database: the backup's data plus CHANGES (so a restore is visible). Returns fingerprints."""
    drop_all(pg_cluster)
    pg_cluster.psql('CREATE DATABASE %s' % LIVE)
    subprocess.run([str(pg_cluster.bindir / "pg_restore"), "-h", str(pg_cluster.sockdir), "-p", str(pg_cluster.port),
                    "-U", "postgres", "-d", LIVE, str(next(backup_dir.glob("*.dump")))], check=True, capture_output=True)
    pg_cluster.psql(CHANGES, dbname=LIVE)
    return {"live": table_fingerprints(pg_cluster, LIVE), "backup": table_fingerprints(pg_cluster, source_db)}


def drop_all(cluster):
    names = cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE '%s%%'" % LIVE).split()
    for name in names:
        cluster.psql('DROP DATABASE "%s" WITH (FORCE)' % name)


def databases(cluster):
    return sorted(cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE '%s%%'" % LIVE).split())


def run_playbook(name, cluster, app, extra=None, check=False, tmp_path=None):
    variables = {
        "sre_db_name": LIVE, "sre_confirm": "yes",
        "db_restore_login_host": cluster.host, "db_restore_login_port": cluster.port,
        "db_restore_login_user": cluster.user, "db_restore_login_password": cluster.password,
        "db_restore_pg_restore": str(cluster.bindir / "pg_restore"), "db_restore_psql": str(cluster.bindir / "psql"),
        "db_restore_manage_app": False, "db_restore_health_url": app.url(), "db_restore_health_retries": 2,
        "db_restore_health_delay": 0, "db_restore_smoke_queries": ["SELECT count(*) > 0 FROM public.customers"],
    }
    variables.update(extra or {})
    r = _run_playbook(name, tmp_path=tmp_path, target="localhost", extra_vars=variables, check=check,
                      secrets=[cluster.password])
    assert cluster.password not in r.output
    return r.rc, r.output


def assert_untouched(cluster, app, live):
    assert table_fingerprints(cluster, LIVE) == live["live"]
    assert databases(cluster) == [LIVE]
    assert app.serves()


def test_restore_swap_back_and_retention(pg_cluster, app, backup_dir, live, tmp_path):
    assert live["live"] != live["backup"]
    rc, out = run_playbook("db_restore", pg_cluster, app, {"db_restore_backup_dir": str(backup_dir),
                                                           "db_restore_backup_pattern": "*.dump"}, tmp_path=tmp_path)
    assert rc == 0, out
    assert table_fingerprints(pg_cluster, LIVE) == live["backup"]
    kept = [d for d in databases(pg_cluster) if d != LIVE]
    assert len(kept) == 1 and kept[0].startswith(LIVE + "_pre_restore_")
    assert pg_cluster.psql("SELECT datallowconn FROM pg_database WHERE datname = '%s'" % kept[0]).strip() == "f"
    pg_cluster.psql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS true' % kept[0])
    assert table_fingerprints(pg_cluster, kept[0]) == live["live"]
    pg_cluster.psql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS false' % kept[0])
    assert "Writes were stopped for" in out and "kept as database " + kept[0] in out and "shopdb-20250101T000000Z.dump" in out
    assert app.serves()

    rc, out = run_playbook("db_restore_swap_back", pg_cluster, app, tmp_path=tmp_path)
    assert rc == 0, out
    assert table_fingerprints(pg_cluster, LIVE) == live["live"]
    assert app.serves()
    assert any(d.startswith(LIVE + "_undone_") for d in databases(pg_cluster))

    rc, out = run_playbook("db_restore_retention", pg_cluster, app, {"db_restore_retention_days": 0,
                                                                     "db_restore_retention_keep": 0}, check=True, tmp_path=tmp_path)
    assert rc == 0 and len(databases(pg_cluster)) == 2, out
    rc, out = run_playbook("db_restore_retention", pg_cluster, app, {"db_restore_retention_days": 0,
                                                                     "db_restore_retention_keep": 0}, tmp_path=tmp_path)
    assert rc == 0, out
    assert databases(pg_cluster) == [LIVE]
    assert table_fingerprints(pg_cluster, LIVE) == live["live"]


def test_check_mode_and_no_confirmation_change_nothing(pg_cluster, app, backup_dir, live, tmp_path):
    base = {"db_restore_backup_dir": str(backup_dir)}
    rc, out = run_playbook("db_restore", pg_cluster, app, base, check=True, tmp_path=tmp_path)
    assert rc == 0 and "Plan (db_restore restore):" in out and "1. stop writes" in out, out
    assert "Check mode: nothing is changed" in out, out
    assert_untouched(pg_cluster, app, live)
    rc, out = run_playbook("db_restore", pg_cluster, app, dict(base, sre_confirm="no"), tmp_path=tmp_path)
    assert rc == 0 and "Not confirmed: nothing is changed" in out, out
    assert_untouched(pg_cluster, app, live)


def test_corrupt_backup_is_refused_before_anything_stops(pg_cluster, app, backup_dir, live, tmp_path):
    good = next(backup_dir.glob("*.dump")).read_bytes()
    bad = bytearray(good)
    bad[len(bad) * 3 // 4] ^= 0x10
    path = tmp_path / "shopdb-corrupt.dump"
    path.write_bytes(bytes(bad))
    rc, out = run_playbook("db_restore", pg_cluster, app, {"db_restore_backup": str(path)}, tmp_path=tmp_path)
    assert rc != 0
    assert "Refusing to restore" in out and "data_block_corrupt" in out and "Nothing was stopped" in out, out
    assert "Note the state before writes stop" not in out
    assert_untouched(pg_cluster, app, live)


def test_pg_restore_killed_midway_leaves_live_data(pg_cluster, app, backup_dir, live, tmp_path):
    wrapper = tmp_path / "pg_restore_dies"
    wrapper.write_text("#!/bin/bash\n%s --section=pre-data \"$@\"\nkill -9 $$\n" % (pg_cluster.bindir / "pg_restore"))
    wrapper.chmod(0o755)
    rc, out = run_playbook("db_restore", pg_cluster, app, {"db_restore_backup_dir": str(backup_dir),
                                                           "db_restore_pg_restore": str(wrapper)}, tmp_path=tmp_path)
    assert rc != 0 and "Restore the archive with pg_restore" in out and "never renamed" in out, out
    assert_untouched(pg_cluster, app, live)


def test_failed_health_after_swap_swaps_back(pg_cluster, app, backup_dir, live, tmp_path):
    rc, out = run_playbook("db_restore", pg_cluster, app, {"db_restore_backup_dir": str(backup_dir),
                                                           "db_restore_health_url": app.url("/broken")}, tmp_path=tmp_path)
    assert rc != 0 and "Check the health URL" in out and "Swapped back" in out, out
    # The restored copy (which the app may have written to) is kept under a _failed_ name, never dropped.
    failed = [d for d in databases(pg_cluster) if d != LIVE]
    assert len(failed) == 1 and failed[0].startswith(LIVE + "_failed_"), databases(pg_cluster)
    pg_cluster.psql('ALTER DATABASE "%s" ALLOW_CONNECTIONS true' % failed[0])  # kept closed to connections
    assert table_fingerprints(pg_cluster, failed[0]) == live["backup"]
    pg_cluster.psql('DROP DATABASE "%s" WITH (FORCE)' % failed[0])
    assert_untouched(pg_cluster, app, live)


def test_disk_too_small_is_refused(pg_cluster, app, backup_dir, live, tmp_path):
    rc, out = run_playbook("db_restore", pg_cluster, app, {"db_restore_backup_dir": str(backup_dir),
                                                           "db_restore_free_bytes": 100000}, tmp_path=tmp_path)
    assert rc != 0 and "disk is too small" in out.replace("\n", " ") or "only 100000 bytes are free" in out, out
    assert "Note the state before writes stop" not in out
    assert_untouched(pg_cluster, app, live)
