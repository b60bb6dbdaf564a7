# SPDX-License-Identifier: GPL-3.0-or-later
"""After the confirmed restore: the newest dump's data is live, the previous data is kept aside, the app serves.

The fingerprints (row count and md5 of the ordered rows of every table) were recorded by prepare in
/etc/ansible/facts.d/drill_db_restore.fact: ``backup`` as the newest dump holds the data, ``live`` after the
rows written since.
"""

import glob
import json
import os
import re

FINGERPRINT = "runuser -u postgres -- psql -XAtq -d {db} -f /usr/local/lib/drill-fingerprint.sql"
NEWEST = "/var/backups/saasresto/saasresto-20260102T020000Z.dump"


def psql(host, sql, db="postgres"):
    return host.check_output("runuser -u postgres -- psql -XAtq -d %s -c %s", db, sql)


def recorded(host):
    return json.loads(host.file("/etc/ansible/facts.d/drill_db_restore.fact").content_string)


def summary(host):
    return json.loads(host.file("/var/lib/drill-db-restore-summary.json").content_string)


def kept_databases(host):
    return psql(host, "SELECT datname FROM pg_database WHERE datname LIKE 'saasresto%' ORDER BY 1").split()


def test_app_active_and_healthy(host):
    assert host.service("saasresto").is_running
    out = json.loads(host.check_output("curl -fsS -m 5 http://127.0.0.1:3000/health"))
    assert out["status"] == "ok" and out["db"] == "ok"


def test_live_database_holds_the_dump(host):
    fingerprints = recorded(host)
    now = json.loads(host.check_output(FINGERPRINT.format(db="saasresto")))
    assert now == fingerprints["backup"]
    assert now != fingerprints["live"]
    assert int(psql(host, "SELECT count(*) FROM \"Menu\" WHERE name LIKE 'drill menu after the dump%'", "saasresto")) == 0


def test_previous_data_kept_under_the_retention_name(host):
    names = kept_databases(host)
    kept = [n for n in names if n != "saasresto"]
    assert len(kept) == 1 and re.fullmatch(r"saasresto_pre_restore_[0-9]{14}", kept[0]), names
    assert kept[0] == summary(host)["kept"]
    assert psql(host, "SELECT datallowconn FROM pg_database WHERE datname = '%s'" % kept[0]) == "f"
    psql(host, 'ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS true' % kept[0])
    try:
        assert json.loads(host.check_output(FINGERPRINT.format(db=kept[0]))) == recorded(host)["live"]
    finally:
        psql(host, 'ALTER DATABASE "%s" WITH ALLOW_CONNECTIONS false' % kept[0])


def test_summary_matches_what_is_there(host):
    s = summary(host)
    backup = recorded(host)["backup"]
    assert s["backup"] == NEWEST and s["swapped"] is True
    assert s["sha256"] == host.check_output("sha256sum %s", NEWEST).split()[0]
    assert sorted(s["tables"]) == sorted(backup)
    assert {name: int(rows) for name, rows in s["rows"].items()} == {
        name: int(fp.split(":")[0]) for name, fp in backup.items()}


def test_incident_records():
    """The callback's records: the converge run acted in order; the --check run (also converge.yml) changed nothing."""
    pattern = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "incidents", "*-db_restore-restore-*.json")
    records = [json.load(open(f)) for f in glob.glob(pattern)]
    runs = [r for r in records if r["playbook"] == "converge.yml"]
    check = [r for r in runs if r["check_mode"]]
    real = [r for r in runs if not r["check_mode"]]
    assert len(check) == 1 and len(real) == 1, [(r["playbook"], r["check_mode"]) for r in records]
    assert check[0]["outcome"] == "ok"
    assert [e for e in check[0]["timeline"] if e["kind"] == "action"] == []
    assert real[0]["outcome"] == "ok"
    actions = [e["task"] for e in real[0]["timeline"] if e["kind"] == "action" and e["task"].startswith("sre.runbooks.")]
    assert actions == [
        "sre.runbooks.target : Stop the unit",
        "sre.runbooks.db_restore : Create the database the backup is restored into",
        "sre.runbooks.db_restore : Restore the archive with pg_restore (psql for a plain dump) into the new database",
        "sre.runbooks.db_restore : Swap in one transaction (close the live database, end its sessions, keep it aside,"
        " put the restored one in place)",
        "sre.runbooks.target : Start the unit",
    ], actions
