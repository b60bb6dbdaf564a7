# SPDX-License-Identifier: GPL-3.0-or-later
"""What the pg integration tests ask the throwaway cluster about the sessions they hold open.

Defined once here for test_pg_triage.py, test_slow_queries.py and test_blast_radius.py. (Not named
pg_sessions: tests/pg_sessions.py is that module, and pytest puts this directory ahead of tests/ on sys.path.)
"""

from __future__ import annotations

import time


def alive(cluster, pids):
    """The pids still in pg_stat_activity, sorted."""
    if not pids:
        return []
    out = cluster.psql("SELECT pid FROM pg_stat_activity WHERE pid IN (%s)" % ",".join(str(int(p)) for p in pids))
    return sorted(int(x) for x in out.split())


def state_of(cluster, pid):
    """The pg_stat_activity state of pid ('none' when it has none), 'gone' when the session is gone."""
    return cluster.psql("SELECT coalesce(state, 'none') FROM pg_stat_activity WHERE pid = %d" % pid).strip() or "gone"


def wait_for(predicate, timeout=10.0):
    """Poll predicate every 0.1 s until it holds or timeout seconds have passed; its last answer."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def lock_waiters(cluster, application):
    """How many sessions of application wait for a lock."""
    return int(cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
                            "AND wait_event_type = 'Lock'" % application).strip())
