# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest fixtures: a real throwaway PostgreSQL cluster and a way to run modules.

Modules run the way Ansible runs them: a separate Python process reading
``{"ANSIBLE_MODULE_ARGS": {...}}`` from a file, with the collection importable from
``build/collections`` (``make collections-link`` creates it; the fixture creates it too).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = REPO / "build" / "collections"


sys.path.insert(0, str(Path(__file__).resolve().parent))
from playbook_runner import ensure_collection_link  # noqa: E402,F401  (one definition: tests/playbook_runner.py)


def _pg_bindir() -> Path:
    env = os.environ.get("PG_BINDIR")
    if env:
        return Path(env)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if not candidates:
        pytest.fail("PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)")
    return candidates[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgCluster:
    """A throwaway cluster: initdb + pg_ctl on a temp dir, run as the 'postgres' OS user when root."""

    password = "triage-secret-9f2c"  # test-only password, used to check it never leaks

    def __init__(self, base: Path, port: int, extra_conf: dict | None = None):
        self.bindir = _pg_bindir()
        self.base = base
        self.datadir = base / "data"
        self.sockdir = base / "sock"
        self.port = port
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.extra_conf = extra_conf or {}
        self.version = int(self.bindir.parent.name)

    def _as_owner(self, argv):
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def run(self, argv, **kwargs):
        return subprocess.run(self._as_owner(argv), check=True, capture_output=True, text=True, **kwargs)

    def start(self):
        self.base.mkdir(parents=True, exist_ok=True)
        self.sockdir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.sockdir, "postgres", "postgres")
        pwfile = self.base / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        self.run([str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--pwfile", str(pwfile), "-E", "UTF8", "--no-sync"])
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "'%s'" % self.sockdir,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_prepared_transactions": "10",
            "shared_preload_libraries": "'pg_stat_statements'",
        }
        conf.update(self.extra_conf)
        with open(self.datadir / "postgresql.conf", "a") as handle:
            for key, value in conf.items():
                handle.write("%s = %s\n" % (key, value))
        self.run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.base / "log"), "-w", "start"])
        return self

    def stop(self):
        try:
            self.run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"])
        except subprocess.CalledProcessError:
            pass

    def restart(self):
        self.run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.base / "log"), "-m", "fast", "-w", "restart"])

    def dsn(self, dbname="postgres", **extra):
        params = {"host": self.host, "port": self.port, "user": self.user, "password": self.password, "dbname": dbname}
        params.update(extra)
        return " ".join("%s=%s" % (k, v) for k, v in params.items())

    def connect(self, dbname="postgres", **extra):
        import psycopg2

        conn = psycopg2.connect(self.dsn(dbname, **extra))
        return conn

    def psql(self, sql, dbname="postgres"):
        return self.run([str(self.bindir.parent / "bin" / "psql") if (self.bindir / "psql").exists() else "psql",
                         "-h", str(self.sockdir), "-p", str(self.port), "-U", "postgres", "-d", dbname,
                         "-v", "ON_ERROR_STOP=1", "-Atc", sql]).stdout

    def login_args(self, dbname="postgres"):
        return {"login_host": self.host, "login_port": self.port, "login_user": self.user,
                "login_password": self.password, "login_db": dbname}


def cluster_base(prefix="sre-pg-") -> Path:
    """A fresh directory for a cluster outside pytest's temp root.

    initdb runs as 'postgres' and must traverse the path; pytest makes /tmp/pytest-of-root 0700 again
    at the start of every session, which would kill a cluster of a session already running.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    base.chmod(0o711)
    return base


@pytest.fixture(scope="session", autouse=True)
def pg_can_reach_tmp(tmp_path_factory):
    """Files the tests hand to 'postgres' (dumps for pg_restore, SQL files) sit under pytest's temp root,
    which pytest makes 0700: let other users traverse it (o+x only, no listing)."""
    if os.geteuid() != 0:
        return
    base = tmp_path_factory.getbasetemp()
    os.chmod(base, 0o711)
    # (a pytest-xdist worker's root is <basetemp>/popen-gwN: its parent is made 0700 too)
    if base.parent.name.startswith("pytest-of-") or os.environ.get("PYTEST_XDIST_WORKER"):
        os.chmod(base.parent, 0o711)


@pytest.fixture(scope="session")
def pg_cluster():
    """A running throwaway PostgreSQL cluster for the whole test session."""
    base = cluster_base()
    cluster = PgCluster(base / "pg", free_port(), {"max_connections": "120"}).start()
    yield cluster
    cluster.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def collections_path():
    return ensure_collection_link()


def run_module(name, args, check_mode=False, diff=False, timeout=600, env=None):
    """Run sre.runbooks.<name> as Ansible would and return its parsed JSON result.

    The result dict always has 'rc' (the module process exit code) and, on a crash, 'raw'
    with what the module printed, so tests can assert that there was no traceback.
    """
    ensure_collection_link()
    payload = dict(args)
    payload["_ansible_check_mode"] = check_mode
    payload["_ansible_diff"] = diff
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
        argfile = handle.name
    run_env = dict(os.environ)
    run_env["PYTHONPATH"] = str(COLLECTIONS) + os.pathsep + run_env.get("PYTHONPATH", "")
    if env:
        run_env.update(env)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "ansible_collections.sre.runbooks.plugins.modules.%s" % name, argfile],
            capture_output=True, text=True, timeout=timeout, env=run_env, cwd="/", check=False,
        )
    finally:
        os.unlink(argfile)
    out = proc.stdout.strip()
    try:
        result = json.loads(out[out.index("{"):]) if "{" in out else {}
    except ValueError:
        result = {}
    result["rc"] = proc.returncode
    result["raw"] = proc.stdout + proc.stderr
    return result


@pytest.fixture(scope="session")
def module_runner(collections_path):
    return run_module


# ---- nothing is skipped silently in `make test` ------------------------------------------------------
# Some tests skip where the machine cannot run them (no lab running, no tmpfs /dev/shm, swapon refused):
# handy by hand. scripts/test.sh starts the lab first and sets SRE_LAB_REQUIRED=1; then any skip fails
# the session with its reason, so a skip can never let a failure pass in CI.
_SKIPS: list[str] = []


def pytest_runtest_logreport(report):
    # (under pytest-xdist the controller gets each worker's report, its longrepr a tuple or a list)
    if report.skipped and isinstance(report.longrepr, (tuple, list)):
        _SKIPS.append("%s: %s" % (report.nodeid, report.longrepr[2]))


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("SRE_LAB_REQUIRED") == "1" and _SKIPS:
        sys.stderr.write("\nSRE_LAB_REQUIRED=1 (make test) but %d test(s) were skipped:\n  %s\n"
                         % (len(_SKIPS), "\n  ".join(_SKIPS[:10])))
        session.exitstatus = 1


# ---- two lanes for `make test` -----------------------------------------------------------------------
# scripts/test.sh runs the integration tests in two pytest processes side by side: the lab lane (every test
# module that drives Docker: the lab twins, the AWX jobs, compose targets, the lab's own scripts) runs alone
# against the one lab, one test at a time as before; the local lane (throwaway PostgreSQL clusters on their own
# ports, the FAKE flyctl on temp state, pebble, local files) runs beside it. A module is in the lab lane when its
# source names docker, the lab's marks, its inventory or its containers at all: a new test that touches the lab
# cannot land in the local lane by mistake. A module that names docker only for a FAKE docker on PATH (no engine, no
# lab) says so with a line `# sre-lane: local` and runs in the local lane.
_LANE_CACHE: dict[str, bool] = {}
_LAB_ONLY_WORDS = ("lab_marks", "LAB_INVENTORY", "sre-lab")
_LAB_WORDS = ("docker",) + _LAB_ONLY_WORDS
_LOCAL_DECLARED = re.compile(r"^# sre-lane: local\b", re.M)


def _in_lab_lane(path) -> bool:
    key = str(path)
    if key not in _LANE_CACHE:
        try:
            text = Path(key).read_text(encoding="utf-8")
            if _LOCAL_DECLARED.search(text):
                # declared local: still the lab lane if it names the lab itself
                _LANE_CACHE[key] = any(word in text for word in _LAB_ONLY_WORDS)
            else:
                _LANE_CACHE[key] = any(word in text for word in _LAB_WORDS)
        except OSError:
            _LANE_CACHE[key] = True
    return _LANE_CACHE[key]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _in_lab_lane(item.path):
            item.add_marker(pytest.mark.lab_lane)
