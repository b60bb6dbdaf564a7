# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for tests and benchmarks that hold PostgreSQL sessions open.

A module of its own, not tests/conftest.py: several conftest.py files exist under tests/, and
`from conftest import ...` gets whichever of them was imported first.
"""

from __future__ import annotations

import threading


def run_in_background(conn, sql, threads=None):
    """Run sql on conn in a daemon thread (it blocks, sleeps or waits on a lock); the errors of a session
    that gets cancelled or terminated are expected and swallowed. Returns the thread (also appended to
    threads when given)."""
    import psycopg2

    def run():
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        except psycopg2.Error:
            pass
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if threads is not None:
        threads.append(thread)
    return thread
