# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for tests and benchmarks that hold PostgreSQL sessions open.

A module of its own, not tests/conftest.py: several conftest.py files exist under tests/, and
`from conftest import ...` gets whichever of them was imported first.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path

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
    the command line). Asserts the recap is there and the cluster password never shows; returns
    (rc, changed, failed, output)."""
    varfile = tmp_path / ("vars-%s.json" % uuid.uuid4().hex[:6])
    varfile.write_text(json.dumps(dict(evars, ansible_python_interpreter=sys.executable)))
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", "@%s" % varfile, str(REPO / "playbooks" / name)]
    if check:
        argv.append("--check")
    env = dict(os.environ, SRE_INCIDENT_DIR=str(tmp_path / "incidents"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out)
    assert recap, out
    assert cluster.password not in out
    changed, failed = int(recap.group(2)), int(recap.group(4))
    return proc.returncode, changed, failed, out
