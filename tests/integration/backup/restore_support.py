# SPDX-License-Identifier: GPL-3.0-or-later
"""What the db_restore tests share: a free port, a stand-in app's health server, the databases of a name and
the fingerprints of a database that db_restore may have closed (ALLOW_CONNECTIONS false).

A module of its own with a unique name, not conftest.py: ``from conftest import ...`` gets whichever conftest.py
was imported first (see tests/playbook_runner.py).
"""

from __future__ import annotations

import http.server
import socket
import threading

import psycopg2


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_health(port, code_for):
    """An HTTP server on 127.0.0.1:port, in a daemon thread, answering GET with the status code_for(path)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            code = code_for(self.path)
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class CustomersApp:
    """A stand-in app: /health answers 200 after counting the customers of the live database self.db (a new
    connection each time), 503 when it cannot connect. Subclasses override code_for(path) for other paths."""

    def __init__(self, cluster, db):
        self.cluster, self.db, self.port = cluster, db, free_port()
        self.server = serve_health(self.port, self.code_for)

    def code_for(self, path):  # pylint: disable=unused-argument
        return self.health()

    def health(self):
        try:
            conn = self.cluster.connect(self.db)
        except psycopg2.Error:
            return 503
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM public.customers")
                return 200 if cur.fetchone()[0] > 0 else 500
        finally:
            conn.close()

    def url(self, path="/health"):
        return "http://127.0.0.1:%d%s" % (self.port, path)


def databases_like(cluster, prefix):
    """The sorted names of the databases whose name starts with prefix."""
    return sorted(cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE '%s%%'" % prefix).split())


def open_fingerprints(cluster, db, fingerprints):
    """fingerprints(cluster, db) of a database, opened for the time of it if db_restore had closed it."""
    closed = cluster.psql("SELECT NOT datallowconn FROM pg_database WHERE datname = '%s'" % db).strip() == "t"
    if closed:
        cluster.psql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS true' % db)
    try:
        return fingerprints(cluster, db)
    finally:
        if closed:
            cluster.psql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS false' % db)


class Watcher:
    """A daemon thread running self.loop() for the time of a with block; loop() ends when self.done is set."""

    def __init__(self):
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        return False


class StateFiles:
    """The lock and the journal of db_restore for self.key (<db>@<host>_<port>) under self.dir."""

    dir = key = None

    @property
    def lock(self):
        return self.dir / (self.key + ".lock")

    @property
    def journal(self):
        return self.dir / (self.key + ".journal.jsonl")
