# SPDX-License-Identifier: GPL-3.0-or-later
"""db_restore on a hosted, non-superuser database (CookCam and HotDash on Supabase, issue 12): the only login is a
DATABASE_URL (sre_db_dsn) whose role has LOGIN CREATEDB NOSUPERUSER and owns the app's database.

A real throwaway cluster: role ``app`` (CREATEDB, not a superuser, owns ``hosteddb``), and the running app's own role
``app_web``, whose sessions ``app`` may not end without pg_signal_backend. The app is HotDash's kind, Fly, through
the FAKE flyctl of the lab (lab/fake-flyctl, the one the target tests use): its machines are a JSON state file, and
the stand-in app of this module holds a session as ``app_web`` on the live database while a machine is started and
drops it when they are all stopped, as a real app would. Live data is fingerprinted (rows and md5 of every table)
before and after; a sampler reads every process's argv and environment while the playbook runs: the DSN's password
is never there, nor in the output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg2
import pytest

from conftest import PgCluster
from playbook_runner import run_playbook
from restore_support import Watcher, databases_like, free_port, open_fingerprints, serve_health

REPO = Path(__file__).resolve().parents[3]
FLYCTL = REPO / "lab" / "fake-flyctl" / "flyctl"
FLY_APP = "hotdash-production"
DB = "hosteddb"
SRC = "hosted_src"
APP_PW = "h0sted:p@ss/w0rd-7c1e"  # test-only; ':' '@' '/' exercise the URL's percent-encoding and the passfile
WEB_PW = "web-pw-5d2a"
SCHEMA = """
CREATE TABLE public.stripe_webhook_events (id bigint PRIMARY KEY, status text NOT NULL, event_type text NOT NULL,
                                           error_message text, created_at timestamptz NOT NULL);
INSERT INTO public.stripe_webhook_events SELECT g, CASE WHEN g % 17 = 0 THEN 'failed' ELSE 'processed' END,
       'invoice.paid', CASE WHEN g % 17 = 0 THEN 'timeout' END, '2025-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 2000) g;
CREATE TABLE public."Recipe" (id int PRIMARY KEY, "ownerId" int, title text);
INSERT INTO public."Recipe" SELECT g, g % 50, 'recipe ' || g FROM generate_series(1, 300) g;
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO app_web;
"""
CHANGES = """
INSERT INTO public.stripe_webhook_events SELECT g, 'processed', 'charge.refunded', NULL, now()
  FROM generate_series(2001, 2100) g;
DELETE FROM public."Recipe" WHERE id % 7 = 0;
"""


def dsn(cluster, db=DB):
    return "postgresql://app:%s@%s:%d/%s" % (urllib.parse.quote(APP_PW, safe=""), cluster.host, cluster.port, db)


def as_app(cluster, db, sql):
    conn = psycopg2.connect(host=cluster.host, port=cluster.port, user="app", password=APP_PW, dbname=db)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def databases(cluster):
    return databases_like(cluster, DB)


def fingerprints(cluster, db, helpers):
    return open_fingerprints(cluster, db, helpers.fingerprints)


class FlyApp:
    """The app behind the fake Fly machines: a session as app_web on the live database while a machine is started
    (reconnecting when it is cut), none while all are stopped; /health answers 200 after a query through it."""

    def __init__(self, cluster, state):
        self.cluster, self.state, self.conn, self.events = cluster, state, None, []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.port = free_port()
        self.server = serve_health(self.port, lambda path: self.health())
        threading.Thread(target=self.follow, daemon=True).start()

    def running(self):
        try:
            data = json.loads(self.state.read_text())
        except (OSError, ValueError):
            return None
        return any(m["state"] == "started" for m in data["apps"][FLY_APP]["machines"])

    def follow(self):
        while not self.stop_flag.is_set():
            running = self.running()
            with self.lock:
                if running is False and self.conn is not None:
                    self.conn.close()
                    self.conn = None
                    self.events.append("disconnected")
                elif running and (self.conn is None or self.conn.closed):
                    try:
                        self.conn = psycopg2.connect(host=self.cluster.host, port=self.cluster.port, user="app_web",
                                                     password=WEB_PW, dbname=DB, application_name="hotdash-web")
                        self.conn.autocommit = True
                        self.events.append("connected")
                    except psycopg2.Error:
                        self.conn = None
            time.sleep(0.05)

    def health(self):
        with self.lock:
            if self.conn is None or self.conn.closed:
                return 503
            try:
                with self.conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM public.stripe_webhook_events")
                    return 200 if cur.fetchone()[0] > 0 else 500
            except psycopg2.Error:
                self.conn = None
                return 503

    def connected_pid(self):
        with self.lock:
            return self.conn.get_backend_pid() if self.conn is not None and not self.conn.closed else None

    def reset(self):
        """Forget the session (its database was dropped under it): the follower connects again."""
        with self.lock:
            if self.conn is not None:
                self.conn.close()
            self.conn = None

    def url(self):
        return "http://127.0.0.1:%d/health" % self.port

    def serves(self):
        try:
            return urllib.request.urlopen(self.url(), timeout=5).status == 200
        except OSError:
            return False

    def close(self):
        self.stop_flag.set()
        self.server.shutdown()
        with self.lock:
            if self.conn is not None:
                self.conn.close()


class Sampler(Watcher):
    """Reads every process's argv and environment every 20 ms while a run lasts; hits holds where a secret showed."""

    def __init__(self, secrets):
        self.secrets = [s.encode() for s in secrets]
        self.hits, self.samples = [], 0
        super().__init__()

    def loop(self):
        me = str(os.getpid())
        while not self.done.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                for what in ("cmdline", "environ"):
                    try:
                        data = Path("/proc", pid, what).read_bytes()
                    except OSError:
                        continue
                    if any(s in data for s in self.secrets):
                        self.hits.append("%s %s: %s" % (pid, what, data[:80].replace(b"\0", b" ")))
            self.samples += 1
            time.sleep(0.02)


@pytest.fixture(scope="module")
def hosted(pg_cluster, backup_helpers, collections_path, tmp_path_factory):
    """Roles app (LOGIN CREATEDB NOSUPERUSER) and app_web, the backup of hosted_src made by app (pg_dump -Fc over
    the DSN, with its .sha256), the fake Fly state and the app following it."""
    c = pg_cluster
    for role, pw, extra in (("app", APP_PW, "CREATEDB NOSUPERUSER"), ("app_web", WEB_PW, "NOSUPERUSER")):
        if not c.psql("SELECT 1 FROM pg_roles WHERE rolname = '%s'" % role).strip():
            c.psql("CREATE ROLE %s LOGIN %s PASSWORD '%s'" % (role, extra, pw))
    for name in databases(c) + [SRC]:
        c.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    as_app(c, "postgres", "CREATE DATABASE %s" % SRC)
    as_app(c, SRC, SCHEMA)
    backups = tmp_path_factory.mktemp("hosted-backups")
    os.chmod(backups, 0o755)
    path = backups / "hosteddb-20250101T000000Z.dump"
    subprocess.run([str(c.bindir / "pg_dump"), "-Fc", "-f", str(path), "-d", dsn(c, SRC)], check=True,
                   capture_output=True)
    (backups / (path.name + ".sha256")).write_text("%s  %s\n" % (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                                 path.name))
    fly = tmp_path_factory.mktemp("hosted-fly")
    state = fly / "state.json"
    env = dict(os.environ, FAKE_FLY_STATE=str(state))
    env.pop("FAKE_FLY_REQUIRE_TOKEN_SHA256", None)
    subprocess.run([str(FLYCTL), "status", "--json", "-a", FLY_APP], env=env, capture_output=True, check=True)
    app = FlyApp(c, state)
    yield {"cluster": c, "backup": path, "dir": backups, "state": state, "app": app, "helpers": backup_helpers}
    app.close()
    for name in databases(c) + [SRC]:
        c.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


@pytest.fixture
def live(hosted):
    """A fresh hosteddb owned by app: the backup's data plus CHANGES; the app connected to it."""
    c, helpers = hosted["cluster"], hosted["helpers"]
    subprocess.run([str(FLYCTL), "machine", "start", "--app", FLY_APP] + machine_ids(hosted), capture_output=True,
                   env=dict(os.environ, FAKE_FLY_STATE=str(hosted["state"])), check=False)
    for name in databases(c):
        c.psql('DROP DATABASE "%s" WITH (FORCE)' % name)
    as_app(c, "postgres", "CREATE DATABASE %s" % DB)
    subprocess.run([str(c.bindir / "pg_restore"), "--exit-on-error", "-d", dsn(c), str(hosted["backup"])], check=True,
                   capture_output=True)
    as_app(c, DB, CHANGES)
    hosted["app"].reset()
    time.sleep(0.2)
    deadline = time.time() + 10
    while hosted["app"].connected_pid() is None and time.time() < deadline:
        time.sleep(0.1)
    assert hosted["app"].serves()
    return {"live": fingerprints(c, DB, helpers), "backup": fingerprints(c, SRC, helpers)}


def machine_ids(hosted):
    data = json.loads(hosted["state"].read_text())
    return [m["id"] for m in data["apps"][FLY_APP]["machines"]]


def machine_states(hosted):
    data = json.loads(hosted["state"].read_text())
    return sorted(m["state"] for m in data["apps"][FLY_APP]["machines"])


def restore(hosted, tmp_path, extra=None, check=False):
    """db_restore with nothing but the DSN as the login (no sre_db_name, host, port, user nor password)."""
    c = hosted["cluster"]
    variables = {
        "sre_db_dsn": dsn(c), "sre_confirm": "yes", "sre_state_dir": str(tmp_path / "state"),
        "db_restore_backup_dir": str(hosted["dir"]), "db_restore_backup_pattern": "*.dump",
        "db_restore_pg_restore": str(c.bindir / "pg_restore"), "db_restore_psql": str(c.bindir / "psql"),
        # a hosted server's data directory is not on this host (nor shown to a role that is not a superuser)
        "db_restore_skip_disk_check": True, "db_restore_session_wait": 10,
        "sre_target_kind": "fly", "sre_app_name": FLY_APP, "sre_fly_app": FLY_APP, "sre_flyctl": str(FLYCTL),
        "sre_proxy_kind": "none", "sre_app_health_url": hosted["app"].url(), "target_health_retries": 5,
        "target_health_delay": 1, "target_state_dir": str(tmp_path / "target"),
    }
    variables.update(extra or {})
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    with Sampler([APP_PW, urllib.parse.quote(APP_PW, safe="")]) as sampler:
        r = run_playbook("db_restore", tmp_path=tmp_path, target="localhost", extra_vars=variables, check=check,
                         secrets=[APP_PW, urllib.parse.quote(APP_PW, safe="")], timeout=600,
                         env={"FAKE_FLY_STATE": str(hosted["state"]), "TMPDIR": str(tmpdir),
                              "FAKE_FLY_REQUIRE_TOKEN_SHA256": None, "FAKE_FLY_FAULT": None})
    assert sampler.samples > 10 and sampler.hits == [], sampler.hits[:3]
    assert [p.name for p in tmpdir.iterdir() if "pgpass" in p.name] == []  # every passfile removed
    # the plan as one line: the YAML callback folds long items and doubles the quotes in them
    return r.rc, r.output, " ".join(r.output.replace("''", "'").split())


def owner_of(cluster, db):
    return cluster.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '%s'" % db).strip()


def test_dsn_only_non_superuser_restores_stopping_the_app_first(hosted, live, tmp_path):
    c, app = hosted["cluster"], hosted["app"]
    assert c.psql("SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = 'app'").strip() == "f|t"
    web_pid = app.connected_pid()
    assert web_pid is not None

    # the plan: what the login may do, read from the server, and what that means for the app
    rc, out, flat = restore(hosted, tmp_path, {"sre_confirm": "no"})
    assert rc == 0 and "Not confirmed: nothing is changed" in out, out[-4000:]
    assert "Login: app (from the DSN): not a superuser, CREATEDB, not a member of pg_signal_backend, owns hosteddb" \
        in flat, flat[-4000:]
    assert "cannot end other roles' sessions (not a member of pg_signal_backend" in flat, flat[-4000:]
    assert "the app is stopped first (sre.runbooks.target stop, kind fly), then started and health-checked" in flat
    assert "connected now: pid %d user app_web" % web_pid in flat, flat[-4000:]
    assert "Checksum: sha256 matches" in flat
    assert databases(c) == [DB] and fingerprints(c, DB, hosted["helpers"]) == live["live"]
    assert app.connected_pid() == web_pid and machine_states(hosted) == ["started", "started"]

    events_before = len(app.events)
    rc, out, flat = restore(hosted, tmp_path)
    assert rc == 0, out[-6000:]
    assert fingerprints(c, DB, hosted["helpers"]) == live["backup"]
    kept = [d for d in databases(c) if d != DB]
    assert len(kept) == 1 and kept[0].startswith(DB + "_pre_restore_"), databases(c)
    assert fingerprints(c, kept[0], hosted["helpers"]) == live["live"]
    assert owner_of(c, DB) == "app" and owner_of(c, kept[0]) == "app"
    # the app was stopped before anything was restored or renamed, started after the swap, and is healthy
    stop_at = out.index("Stop each started Fly machine")
    assert stop_at < out.index("Create the database the backup is restored into") < out.index("Swap in one transaction")
    assert out.index("Swap in one transaction") < out.index("Start each stopped Fly machine") \
        < out.index("Run the health step for this kind of target")
    assert app.events[events_before:][:2] == ["disconnected", "connected"], app.events
    assert machine_states(hosted) == ["started", "started"] and app.serves()
    new_pid = app.connected_pid()
    assert new_pid is not None and new_pid != web_pid
    assert c.psql("SELECT datname FROM pg_stat_activity WHERE pid = %d" % new_pid).strip() == DB
    journal = next((tmp_path / "state" / "db_restore").glob("*.journal.jsonl")).read_text().splitlines()
    last = json.loads(journal[-1])
    assert last["outcome"] == "ok" and last["swapped"] is True and last["app_stopped"] is True


def test_unmanaged_app_with_a_session_the_role_cannot_end_is_refused(hosted, live, tmp_path):
    c, app = hosted["cluster"], hosted["app"]
    web_pid = app.connected_pid()
    rc, out, flat = restore(hosted, tmp_path, {"db_restore_manage_app": False})
    assert rc != 0, out[-4000:]
    assert "Refusing to restore hosteddb: 1 session(s) of other roles" in flat and "pid %d user app_web" % web_pid \
        in flat, flat[-4000:]
    assert "GRANT pg_signal_backend TO app" in flat and "Nothing was stopped or changed" in flat
    assert databases(c) == [DB] and fingerprints(c, DB, hosted["helpers"]) == live["live"]
    assert app.connected_pid() == web_pid and app.serves()


def test_with_pg_signal_backend_the_role_ends_the_sessions_itself(hosted, live, tmp_path):
    c, app = hosted["cluster"], hosted["app"]
    c.psql("GRANT pg_signal_backend TO app")
    try:
        web_pid = app.connected_pid()
        rc, out, flat = restore(hosted, tmp_path, {"db_restore_manage_app": False})
        assert rc == 0, out[-6000:]
        assert "CREATEDB, member of pg_signal_backend, owns hosteddb" in flat, flat[-4000:]
        assert "Sessions: the login ends the live database's sessions at the swap" in flat
        assert "Stop each started Fly machine" not in out
        assert fingerprints(c, DB, hosted["helpers"]) == live["backup"]
        # the app's session was ended by the swap (the app reconnects to the restored database)
        assert c.psql("SELECT count(*) FROM pg_stat_activity WHERE pid = %d" % web_pid).strip() == "0"
    finally:
        c.psql("REVOKE pg_signal_backend FROM app")


def test_role_without_createdb_is_refused_before_anything_stops(hosted, live, tmp_path):
    c, app = hosted["cluster"], hosted["app"]
    c.psql("ALTER ROLE app NOCREATEDB")
    try:
        rc, out, flat = restore(hosted, tmp_path)
        assert rc != 0, out[-4000:]
        assert "Refusing to restore hosteddb: the login app (from the DSN): not a superuser, no CREATEDB" in flat, \
            flat[-4000:]
        assert "ALTER ROLE app CREATEDB" in flat and "Nothing was stopped or changed" in flat
        assert "Stop each started Fly machine" not in out
    finally:
        c.psql("ALTER ROLE app CREATEDB")
    assert databases(c) == [DB] and fingerprints(c, DB, hosted["helpers"]) == live["live"]
    assert machine_states(hosted) == ["started", "started"] and app.serves()


def test_a_live_database_named_postgres_is_restored_from_template1(backup_helpers, collections_path, tmp_path):
    """A Supabase project's DATABASE_URL ends in /postgres: the live database is the one the role would work from.
    A cluster of its own (its postgres database is replaced): the role works from template1 instead."""
    base = Path(tempfile.mkdtemp(prefix="sre-pg-supabase-", dir="/var/tmp"))
    base.chmod(0o711)
    c = PgCluster(base / "pg", free_port(), {"shared_preload_libraries": "''"}).start()
    try:
        c.psql("CREATE ROLE app LOGIN CREATEDB NOSUPERUSER PASSWORD '%s'" % APP_PW)
        c.psql("CREATE ROLE app_web LOGIN PASSWORD '%s'" % WEB_PW)
        c.psql("ALTER DATABASE postgres OWNER TO app")
        as_app(c, "postgres", SCHEMA)
        path = base / "backups" / "supabase-20250101.dump"
        path.parent.mkdir()
        subprocess.run([str(c.bindir / "pg_dump"), "-Fc", "-f", str(path), "-d", dsn(c, "postgres")], check=True,
                       capture_output=True)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        (path.parent / (path.name + ".sha256")).write_text("%s  %s\n" % (digest, path.name))
        before = backup_helpers.fingerprints(c, "postgres")
        as_app(c, "postgres", CHANGES)
        changed = backup_helpers.fingerprints(c, "postgres")
        assert changed != before
        variables = {
            "sre_db_dsn": dsn(c, "postgres"), "sre_confirm": "yes", "sre_state_dir": str(tmp_path / "state"),
            "db_restore_backup_dir": str(path.parent), "db_restore_backup_pattern": "*.dump",
            "db_restore_pg_restore": str(c.bindir / "pg_restore"), "db_restore_psql": str(c.bindir / "psql"),
            "db_restore_skip_disk_check": True, "db_restore_manage_app": False,
        }
        r = run_playbook("db_restore", tmp_path=tmp_path, target="localhost", extra_vars=variables,
                         secrets=[APP_PW, urllib.parse.quote(APP_PW, safe="")], timeout=600)
        assert r.rc == 0, r.output[-6000:]
        assert backup_helpers.fingerprints(c, "postgres") == before
        kept = c.psql("SELECT datname FROM pg_database WHERE datname LIKE 'postgres_pre_restore_%'").split()
        assert len(kept) == 1
        c.psql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS true' % kept[0])
        assert backup_helpers.fingerprints(c, kept[0]) == changed
        assert owner_of(c, "postgres") == "app"
    finally:
        c.stop()
        shutil.rmtree(base, ignore_errors=True)
