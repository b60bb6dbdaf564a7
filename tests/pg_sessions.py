# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for tests and benchmarks that hold PostgreSQL sessions open.

A module of its own, not tests/conftest.py: several conftest.py files exist under tests/, and
`from conftest import ...` gets whichever of them was imported first.
"""

from __future__ import annotations

import threading
from pathlib import Path

import playbook_runner

REPO = Path(__file__).resolve().parents[1]


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


def run_playbook(cluster, name, tmp_path, evars, check=False):
    """ansible-playbook playbooks/<name> against localhost with evars (a JSON vars file, so no value is on
    the command line), through playbook_runner.run_playbook. Asserts the recap is there and the cluster
    password never shows; returns (rc, changed, failed, output)."""
    result = playbook_runner.run_playbook(name, tmp_path=tmp_path, extra_vars=evars, check=check,
                                          secrets=[cluster.password])
    recap = result.host("localhost")
    assert recap, result.output
    return result.rc, recap.changed, recap.failed, result.output
