# SPDX-License-Identifier: GPL-3.0-or-later
"""Drill filler: open idle connections as the app's role until PostgreSQL refuses, then hold them.

Run as a transient systemd unit (systemd-run --unit drill-filler); writes /run/drill-filler.ready
with the number of connections it holds once the pool is full. Like lab/break.sh fill-connections.
"""
import time

import psycopg2

env = dict(line.strip().split("=", 1) for line in open("/opt/saasresto/.env") if "=" in line)
held = []
while True:
    try:
        held.append(psycopg2.connect(env["DATABASE_URL"], application_name="drill-filler"))
    except psycopg2.OperationalError:
        break
with open("/run/drill-filler.ready", "w") as ready:
    ready.write("%d\n" % len(held))
time.sleep(3600)
