# SPDX-License-Identifier: GPL-3.0-or-later
"""Canary test, local part (issue 11): every playbook that runs on localhost, at -vvvv, with canary secrets.

The throwaway cluster gets a superuser role whose password is a canary; the DSN carries it; the login reset gets a
canary bcrypt hash, the FAKE Fly app (lab/fake-flyctl) a canary API token, the env file a canary secret value.
While the playbooks run, a sampler thread reads every command line every 50 ms. No canary may appear in stdout or
stderr, in the incident records (SRE_INCIDENT_DIR) or in any sampled argv line. The lab part (lab hosts' process
lists, ansible-runner job events) is not run here.
"""

from __future__ import annotations

import hashlib
import secrets as random_secrets
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from canary_support import ArgvSampler
from playbook_runner import incident_text, run_playbook

REPO = Path(__file__).resolve().parents[3]
FLYCTL = REPO / "lab" / "fake-flyctl" / "flyctl"
SCHEMA = REPO / "tests" / "integration" / "apprunbooks" / "generic_schema.sql"
APP = "hotdash-production"
TAG = random_secrets.token_hex(6)
DB_USER = "canary_owner_%s" % TAG
PASSWORD = "CanaryPw-%s-x9" % TAG
BCRYPT = "$2b$12$" + ("CanaryHash" + TAG + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH")[:53]
FLY_TOKEN = "FlyV1 fm2_CANARY-%s-not-a-real-token" % TAG
ENV_SECRET = "env-canary-%s-value" % TAG
EMAIL = "canary-user@example.test"
RELATIONS = [{"child": "items", "column": "category_id", "parent": "categories", "parent_column": "id"}]


def _canaries(dsn):
    return {"db password": PASSWORD, "quoted db password": quote(PASSWORD, safe=""), "dsn": dsn,
            "bcrypt hash": BCRYPT, "bcrypt hash body": BCRYPT[7:], "fly token": FLY_TOKEN,
            "fly token body": FLY_TOKEN.split(" ", 1)[1], "env secret": ENV_SECRET}


@pytest.fixture
def canary_db(pg_cluster):
    """A database with the lab app's schema, a user row and orphans, owned by a superuser with a canary password."""
    name = "canary_%s" % TAG
    pg_cluster.psql("CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'" % (DB_USER, PASSWORD))
    pg_cluster.psql("CREATE DATABASE %s OWNER %s" % (name, DB_USER))
    pg_cluster.psql(SCHEMA.read_text(), dbname=name)
    pg_cluster.psql("INSERT INTO users (email, password_hash) VALUES ('%s', 'old'); "
                    "INSERT INTO menus (id, name) VALUES (1, 'm'); INSERT INTO categories (id, menu_id, name) VALUES (1, 1, 'c'); "
                    "INSERT INTO items (category_id, name, price_cents) VALUES (1, 'ok', 1);" % EMAIL, dbname=name)
    yield name
    rows = pg_cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE '%s%%'" % name).split()
    for db in rows:
        pg_cluster.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
    pg_cluster.psql("DROP ROLE IF EXISTS %s" % DB_USER)


def _runs(pg_cluster, db, tmp_path):
    """(playbook, extra variables, check) for every playbook that runs on localhost."""
    backups = tmp_path / "backups"
    env_file = tmp_path / "app.env"
    env_file.write_text("EXISTING=1\n")
    env_file.chmod(0o640)
    dsn = "postgresql://%s:%s@%s:%d/%s" % (DB_USER, quote(PASSWORD, safe=""), pg_cluster.host, pg_cluster.port, db)
    restore = {"db_restore_pg_restore": str(pg_cluster.bindir / "pg_restore"),
               "db_restore_psql": str(pg_cluster.bindir / "psql"), "db_restore_manage_app": False,
               "db_restore_backup_dir": str(backups), "db_restore_free_bytes": 10 ** 12}
    secrets_env = {"sre_target_kind": "systemd", "secrets_env_file": str(env_file), "secrets_restart": False,
                   "secrets_required": ["SRE_CANARY_SECRET"], "secrets_values": {"SRE_CANARY_SECRET": ENV_SECRET}}
    backup = {"sre_backup_dir": str(backups), "sre_backup_pattern": "*.dump",
              "backup_pg_dump": str(pg_cluster.bindir / "pg_dump")}
    runs = [
        ("backup_diagnose", backup, True),
        ("backup_remediate", backup, False),
        ("backup_remediate", dict(backup, sre_db_dsn=dsn, sre_db_host="", sre_db_user="", sre_db_password="",
                                  sre_db_name="", backup_force=True), False),
        ("db_restore", restore, False),
        ("db_restore_swap_back", restore, False),
        ("db_restore_retention", dict(restore, db_restore_retention_days=0), False),
        ("login_diagnose", {"login_email": EMAIL}, True),
        ("login_remediate", {"login_email": EMAIL, "login_new_password_hash": BCRYPT}, False),
        ("login_diagnose", {"login_email": EMAIL, "sre_db_dsn": dsn, "sre_db_host": "", "sre_db_user": "",
                            "sre_db_password": "", "sre_db_name": ""}, True),
        ("data_integrity_diagnose", {"data_integrity_relations": RELATIONS,
                                     "data_integrity_save_dir": str(tmp_path / "saved")}, True),
        ("data_integrity_remediate", {"data_integrity_relations": RELATIONS,
                                      "data_integrity_save_dir": str(tmp_path / "saved")}, False),
        ("db_connections_diagnose", {}, True),
        ("db_connections_remediate", {}, False),
        ("slow_queries_diagnose", {}, True),
        ("slow_queries_remediate", {}, False),
        ("secrets_diagnose", secrets_env, True),
        ("secrets_remediate", secrets_env, False),
        ("secrets_diagnose", {"secrets_required": ["SRE_CANARY_SECRET"]}, True),
        ("secrets_remediate", {"secrets_required": ["SRE_CANARY_SECRET"], "secrets_restart": False,
                               "secrets_values": {"SRE_CANARY_SECRET": ENV_SECRET}}, False),
        ("high_resource_diagnose", {}, True),
        ("high_resource_remediate", {}, False),
        ("deploy_failure_diagnose", {}, True),
        ("deploy_failure_rollback", {}, False),
    ]
    return dsn, runs


def test_no_canary_in_output_records_or_argv(pg_cluster, canary_db, tmp_path, collections_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    incidents = tmp_path / "incidents"
    dsn, runs = _runs(pg_cluster, canary_db, tmp_path)
    canaries = _canaries(dsn)
    base = {"sre_target_kind": "fly", "sre_app_name": APP, "sre_fly_app": APP, "sre_flyctl": str(FLYCTL),
            "sre_proxy_kind": "none", "sre_fly_api_token": FLY_TOKEN, "sre_confirm": "yes",
            "target_state_dir": str(tmp_path / "state"), "target_health_retries": 1, "target_health_delay": 0,
            "sre_state_dir": str(tmp_path / "state"), "sre_db_host": pg_cluster.host, "sre_db_port": pg_cluster.port,
            "sre_db_user": DB_USER, "sre_db_password": PASSWORD, "sre_db_name": canary_db}
    env = {"FAKE_FLY_STATE": str(tmp_path / "fly" / "state.json"), "TMPDIR": str(tmpdir),
           "FAKE_FLY_REQUIRE_TOKEN_SHA256": hashlib.sha256(FLY_TOKEN.encode()).hexdigest(),
           "FLY_API_TOKEN": None, "FLY_ACCESS_TOKEN": None, "FLY_CONFIG_DIR": None, "FAKE_FLY_FAULT": None}
    leaks, summary = [], []
    probe = "argv-probe-%s" % TAG  # the sampler must see a process started with it (the sampler works)
    sampler = ArgvSampler(list(canaries.values()) + [probe])
    sampler.start()
    subprocess.run(["sh", "-c", "sleep 0.3", probe], check=True)
    try:
        for name, extra, check in runs:
            result = run_playbook(name, tmp_path=tmp_path, target="localhost", extra_vars=dict(base, **extra),
                                  check=check, verbosity=4, env=env, incident_dir=incidents, timeout=300)
            summary.append("%s%s rc=%s" % (name, " --check" if check else "", result.rc))
            for label, value in canaries.items():
                if value in result.stdout or value in result.stderr:
                    where = [i for i, line in enumerate(result.output.splitlines()) if value in line][:3]
                    leaks.append("%s: the %s in the output (lines %s)" % (name, label, where))
    finally:
        sampler.stop.set()
        sampler.join()
    records = incident_text(incidents)
    assert records, "no incident record written"
    leaks += ["the %s in the incident records" % label for label, value in canaries.items() if value in records]
    assert any(probe in line for line in sampler.hits), "the argv sampler did not see its probe process"
    for line in sorted(hit for hit in sampler.hits if probe not in hit):
        labels = [label for label, value in canaries.items() if value in line]
        leaks.append("the %s in a process argv: %s" % (", ".join(labels), line.split(" ", 1)[0]))
    assert sampler.samples > 20, sampler.samples
    assert not leaks, "\n".join(leaks + ["runs: " + "; ".join(summary)])
    # the secrets reached where they go (a run that fails early would leak nothing and prove nothing)
    assert all(line.endswith(" rc=0") for line in summary), summary
    assert ENV_SECRET in (tmp_path / "app.env").read_text()
    assert pg_cluster.psql("SELECT password_hash FROM users WHERE email = '%s'" % EMAIL, dbname=canary_db).strip() == BCRYPT
    assert len(list((tmp_path / "backups").glob("*.dump.sha256"))) == 2
