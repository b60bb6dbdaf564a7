# SPDX-License-Identifier: GPL-3.0-or-later
"""db_restore on each twin's own database, with nothing but the lab inventory (issue 12, "db_restore on each twin's
database"), one shape each:

- saasresto (lab-systemd): PostgreSQL on the VPS host, the app's own backup ``latest_backup.sql.gz`` (plain gzip,
  no .sha256: deep verification, then restore), the admin over the Unix socket;
- ferreteria (lab-compose): the compose ``db`` service, reachable only on the project network (it publishes no
  port; the target role finds its address), the newest ``daily/*.sql.gz`` that the app's own ``backup_db.sh``
  wrote;
- cookcam (lab-pm2): a hosted-style DATABASE_URL whose role is LOGIN CREATEDB NOSUPERUSER, ``backup_*.dump``.

For each: the live database is fingerprinted (rows and md5 of every table); an unconfirmed run and a run on a
truncated copy of the backup leave it identical and leave no database behind; then rows are deleted by mistake
and a confirmed run restores the backup: the deleted rows are back, the app is healthy, and today's database is
kept as ``<db>_pre_restore_<stamp>`` (nothing of today's other data is lost), which the test then drops.
"""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from playbook_runner import LAB_INVENTORY, lab_marks, run_playbook

pytestmark = lab_marks()

FINGERPRINT = (
    "SELECT string_agg(table_name || '=' || (xpath('/row/c/text()', query_to_xml(format("
    "'SELECT count(*) || '':'' || coalesce(md5(string_agg(x::text, '','' ORDER BY x::text)), '''') AS c "
    "FROM %I.%I x', table_schema, table_name), false, true, '')))[1]::text, ' ' ORDER BY table_name) "
    "FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")


def sh(argv, check=True, stdin=None):
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, check=False,
                          input=stdin)
    assert proc.returncode == 0 or not check, proc.stdout + proc.stderr
    return proc.stdout.strip()


def compose_db_container():
    return sh(["docker", "ps", "-q", "--filter", "label=com.docker.compose.project=ferreteria",
               "--filter", "label=com.docker.compose.service=db"]).splitlines()[0]


# the container db_restore runs in (its inventory host), and the one whose PostgreSQL holds the twin's database
HOST_CONTAINER = {"lab-systemd": "sre-lab-systemd", "lab-pm2": "sre-lab-pm2"}
DB_CONTAINER = {"lab-systemd": "sre-lab-systemd", "lab-pm2": "sre-lab-systemd"}  # cookcam's "hosted" server


class Twin:
    """How the test itself reaches a twin's database (as an operator would: psql inside the host or container)."""

    def __init__(self, host, db, table, key, backup_of, health, extra=None):
        self.host, self.db, self.table, self.key = host, db, table, key
        self.backup_of, self.health = backup_of, health
        self.extra = extra or {}

    def psql_argv(self, db=None):
        db = db or self.db
        if self.host == "lab-compose":
            return ["docker", "exec", "-i", compose_db_container(), "psql", "-XAtq", "-v", "ON_ERROR_STOP=1",
                    "-U", "ferreteria_user", "-d", db]
        return ["docker", "exec", "-i", DB_CONTAINER[self.host], "runuser", "-u", "postgres", "--",
                "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db]

    def sql(self, query, db=None):
        return sh(self.psql_argv(db) + ["-c", query])

    def fingerprint(self, db=None):
        return self.sql(FINGERPRINT, db)

    def databases(self):
        return sorted(self.sql("SELECT datname FROM pg_database WHERE datname LIKE '%s%%'" % self.db,
                               db="postgres").split())

    def backup(self):
        """The path of the backup the test restores, on the host db_restore runs on, and a shell prefix there."""
        return self.backup_of()

    def run_on_host(self, script):
        if self.host == "lab-compose":
            return sh(["bash", "-c", script])
        return sh(["docker", "exec", HOST_CONTAINER[self.host], "bash", "-c", script])

    def healthy(self):
        if self.host == "lab-compose":
            argv = ["curl", "-fsS", "-m", "5", self.health]
        else:
            argv = ["docker", "exec", HOST_CONTAINER[self.host], "curl", "-fsS", "-m", "5", self.health]
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def ferreteria_newest():
    return sh(["bash", "-c", "ls -t /var/backups/ferreteria/daily/ferreteria_db_*.sql.gz | head -1"])


def cookcam_newest():
    return sh(["docker", "exec", "sre-lab-pm2", "bash", "-c", "ls -t /var/backups/cookcam/backup_*.dump | head -1"])


TWINS = {
    "saasresto-host": Twin("lab-systemd", "saasresto", '"Item"', "id",
                           lambda: "/var/backups/saasresto/latest_backup.sql.gz", "http://127.0.0.1:3000/health"),
    "ferreteria-compose-network": Twin("lab-compose", "ferreteria_db", "sale", "id", ferreteria_newest,
                                       "http://127.0.0.1:13000/health"),
    # hosted (Supabase-like): the server does not show its data directory to a non-superuser, so the free space
    # cannot be read; the operator of a hosted database says so (the restore refuses until then, tested below)
    "cookcam-nonsuperuser-dsn": Twin("lab-pm2", "cookcam", "stripe_webhook_events", "id", cookcam_newest,
                                     "http://127.0.0.1:3000/health", {"db_restore_skip_disk_check": True}),
}


def restore(tmp_path, twin, backup, confirm):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return run_playbook("db_restore", tmp_path=tmp_path, inventory=LAB_INVENTORY, limit=twin.host, timeout=900,
                        extra_vars=dict({"sre_confirm": confirm, "db_restore_backup": backup,
                                         "target_cooldown_min_interval_s": 0}, **twin.extra))


@pytest.mark.parametrize("name", sorted(TWINS))
def test_db_restore_on_the_twins_database(name, tmp_path):
    twin = TWINS[name]
    backup = twin.backup()
    assert backup, "the twin has no backup of its own"
    leftovers = [d for d in twin.databases() if d != twin.db and "restore" in d]
    for db in leftovers:  # a previous interrupted run of this test
        twin.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db, db="postgres")
    before = twin.fingerprint()
    assert twin.table.strip('"') in before, before

    # 1. unconfirmed: the plan, nothing changed
    res = restore(tmp_path / "unconfirmed", twin, backup, "no")
    assert res.rc == 0 and res.changed(twin.host) == 0, res.output[-4000:]
    assert twin.fingerprint() == before and [d for d in twin.databases() if "restore" in d] == []

    # 2. a truncated copy of the backup: refused at verification, nothing changed, no database left behind
    broken = "/tmp/sre-twin-restore-truncated" + (".sql.gz" if backup.endswith(".gz") else ".dump")
    size = int(twin.run_on_host("stat -c %%s %s" % shlex.quote(backup)))
    twin.run_on_host("head -c %d %s > %s" % (size // 2, shlex.quote(backup), broken))
    try:
        res = restore(tmp_path / "truncated", twin, broken, "yes")
        assert res.rc != 0, res.output[-4000:]
        assert "Traceback" not in res.output
        assert twin.fingerprint() == before and [d for d in twin.databases() if "restore" in d] == []
        assert twin.healthy()
    finally:
        twin.run_on_host("rm -f %s" % broken)

    # 3. rows deleted by mistake, then the confirmed restore of the twin's own backup
    # the oldest rows (the seed's, so in the backup) are deleted by mistake
    gone = twin.sql("SELECT string_agg(%s::text, ',') FROM (SELECT %s FROM %s ORDER BY %s LIMIT 5) k"
                    % (twin.key, twin.key, twin.table, twin.key))
    twin.sql("DELETE FROM %s WHERE %s IN (%s)" % (twin.table, twin.key, gone))
    damaged = twin.fingerprint()
    assert damaged != before
    res = restore(tmp_path / "confirmed", twin, backup, "yes")
    assert res.rc == 0 and res.changed(twin.host) > 0, res.output[-6000:]
    try:
        kept = [d for d in twin.databases() if d.startswith(twin.db + "_pre_restore_")]
        assert len(kept) == 1, twin.databases()
        # today's database is kept whole beside the restored one (closed to connections: opened here to read it)
        assert twin.sql("SELECT datallowconn FROM pg_database WHERE datname = '%s'" % kept[0], db="postgres") == "f"
        twin.sql('ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS true' % kept[0], db="postgres")
        assert twin.fingerprint(kept[0]) == damaged
        back = "SELECT count(*) FROM %s WHERE %s IN (%s)" % (twin.table, twin.key, gone)
        assert (twin.sql(back), twin.sql(back, db=kept[0])) == ("5", "0")
        assert twin.healthy(), "the app is not healthy after the restore"
    finally:
        for db in [d for d in twin.databases() if d != twin.db and "restore" in d]:
            twin.sql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db, db="postgres")


ENDPOINT_PLAY = """
- hosts: lab-compose
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: sre.runbooks.target
        tasks_from: db_endpoint
    - ansible.builtin.copy:
        content: "{{ {'endpoint': target_db_endpoint, 'sre_db_host': sre_db_host} | to_json }}"
        dest: "{{ endpoint_file }}"
        mode: "0600"
      check_mode: false
      when: endpoint_file is defined
"""


def test_db_endpoint_finds_the_network_only_database(tmp_path):
    """Ferreteria's db publishes no port: the target role finds its address on the project network, read-only."""
    play = tmp_path / "endpoint.yml"
    play.write_text(ENDPOINT_PLAY)
    out = tmp_path / "endpoint.json"
    res = run_playbook(play, tmp_path=tmp_path, inventory=LAB_INVENTORY, limit="lab-compose", check=True,
                       extra_vars={"endpoint_file": str(out)})
    assert res.rc == 0, res.output[-3000:]
    seen = json.loads(out.read_text())
    found = seen["endpoint"]
    container = compose_db_container()
    ips = sh(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container]).split()
    assert found["host"] in ips and found["port"] == 5432 and found["service"] == "db", found
    assert found["network"] == "ferreteria_default" and seen["sre_db_host"] == found["host"], seen
    # published nowhere: the address is the only way in
    assert sh(["docker", "port", container]) == ""


def test_db_endpoint_says_when_the_service_has_no_container(tmp_path):
    play = tmp_path / "endpoint.yml"
    play.write_text(ENDPOINT_PLAY)
    res = run_playbook(play, tmp_path=tmp_path, inventory=LAB_INVENTORY, limit="lab-compose",
                       extra_vars={"sre_db_service": "nodb"})
    assert res.rc != 0 and "Traceback" not in res.output
    assert "the database service 'nodb' of compose project 'ferreteria' has no running container" in res.output, \
        res.output[-3000:]
