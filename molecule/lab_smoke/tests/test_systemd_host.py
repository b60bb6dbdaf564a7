# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's systemd host as booted: the saasresto and sme-booking-app twins under systemd, Caddy TLS,
PostgreSQL 15 with the twins' databases (cookcam and hotdash owned by non-superusers), the apps' backups."""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("systemd")

APP = "/opt/saasresto"
BACKUPS = "/var/backups/saasresto"


def psql(host, sql):
    return host.check_output("runuser -u postgres -- psql -d saasresto -Atc %s", sql)


def test_boot_finished_without_failed_units(host):
    assert host.run("systemctl is-system-running --wait").stdout.strip() == "running"
    assert host.check_output("systemctl --failed --no-legend --plain") == ""


def test_services_of_the_systemd_role_run(host):
    for unit in ("postgresql@15-main", "saasresto", "sme-booking-app", "caddy"):
        assert host.service(unit).is_running, unit
    assert not host.service("pm2-cookcam").is_running
    assert not host.service("nginx").is_running


def test_ports_listen(host):
    assert host.socket("tcp://0.0.0.0:5432").is_listening
    for port in (3000, 3001, 443):
        assert host.socket("tcp://0.0.0.0:%d" % port).is_listening or host.socket("tcp://:::%d" % port).is_listening


def test_health_direct_and_through_caddy_tls(host):
    direct = json.loads(host.check_output("curl -fsS -m 5 http://127.0.0.1:3000/health"))
    assert direct["status"] == "ok" and direct["db"] == "ok" and direct["users"] >= 500
    tls = json.loads(host.check_output("curl -fsSk -m 5 https://localhost/health"))
    assert tls["status"] == "ok"


def test_saasresto_is_a_git_checkout_deployed_by_pull(host):
    assert host.check_output(f"git -C {APP} rev-parse --abbrev-ref HEAD") == "main"
    assert host.check_output(f"git -C {APP} describe --tags --exact-match") == "deploy-20260102"
    reflog = host.check_output(f"git -C {APP} reflog --format=%gs")
    assert reflog.splitlines()[0].startswith("pull") and "reset: moving to deploy-20260101" in reflog
    version = json.loads(host.check_output("curl -fsS -m 5 http://127.0.0.1:3000/version"))
    assert version["release"] == "release-2026.01.02"
    assert host.file(f"{APP}/.env").mode == 0o600
    # the bad release waits on origin, for deploy-failure drills
    assert "candidate/bad" in host.check_output("git -C /srv/git/saasresto.git branch --list")


def test_prisma_migrations_are_applied_and_reported(host):
    applied = psql(host, 'select migration_name from "_prisma_migrations" order by 1').split()
    assert applied == ["20260101000000_init", "20260102000000_item_available"]
    status = host.run(f"cd {APP} && set -a && . ./.env && node node_modules/.bin/prisma-standin migrate status")
    assert status.rc == 0 and "Database schema is up to date!" in status.stdout, status.stdout + status.stderr


def test_bad_release_exits_1_at_start(host):
    cmd = host.run("d=$(mktemp -d) && git -C /srv/git/saasresto.git archive candidate/bad | tar -x -C $d "
                   "&& ln -s /opt/lab-app/node_modules $d/node_modules && cd $d && PORT=3999 timeout 20 node server.js")
    assert cmd.rc == 1
    assert "is broken" in cmd.stderr


def test_health_answers_503_fast_when_the_database_refuses(host):
    # A second copy of the app pointed at a closed port: /health must say 503, not hang.
    out = host.check_output(
        "cd %s && (PORT=3998 DATABASE_URL=postgresql://x:y@127.0.0.1:1/x node server.js >/dev/null 2>&1 &"
        " pid=$!; for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:3998/ && break; sleep 0.1; done;"
        " curl -s -m 5 -o /dev/null -w '%%{http_code}' http://127.0.0.1:3998/health; kill $pid)", APP)
    assert out == "503"


def test_login_checks_the_bcrypt_hash(host):
    ok = host.run("curl -s -m 10 -o /dev/null -w '%{http_code}' -d "
                  "'{\"email\":\"user1@lab.example\",\"password\":\"lab-login-password\"}' http://127.0.0.1:3000/login")
    bad = host.run("curl -s -m 10 -o /dev/null -w '%{http_code}' -d "
                   "'{\"email\":\"user1@lab.example\",\"password\":\"nope\"}' http://127.0.0.1:3000/login")
    assert (ok.stdout, bad.stdout) == ("200", "401")
    assert psql(host, 'select "passwordHash" from "User" where id = 1').startswith("$2")


def test_seed_data_with_expired_sessions_and_foreign_keys(host):
    assert int(psql(host, 'select count(*) from "Item"')) == 2000
    assert int(psql(host, 'select count(*) from "Session" where "expiresAt" < now()')) >= 500
    fks = psql(host, "select count(*) from pg_constraint where contype = 'f'")
    assert int(fks) >= 3


def test_sme_booking_health_json_logs_and_mock_flags(host):
    health = json.loads(host.check_output("curl -fsS -m 5 http://127.0.0.1:3001/api/health"))
    assert health["status"] == "healthy" and health["database"]["healthy"] is True
    assert {"totalRequests", "totalErrors", "slowRequests"} <= set(health)
    assert {"heapUsed", "heapTotal", "external"} <= set(health["memory"])
    host.check_output("curl -fsS -m 5 http://127.0.0.1:3001/api/bookings")
    line = json.loads(host.check_output("tail -1 /opt/sme-booking-app/logs/app.json"))
    assert line["endpoint"] == "/api/bookings" and "duration" in line and line["level"] == "info"
    env = host.file("/opt/sme-booking-app/.env").content_string
    assert "GOOGLE_CALENDAR_MOCK=true" in env and "TWILIO_MOCK=true" in env and "SENDGRID_MOCK=true" in env


def test_hosted_roles_are_not_superusers(host):
    rows = psql(host, "select rolname, rolsuper, rolcreatedb from pg_roles where rolname in ('cookcam', 'hotdash') "
                      "order by 1").split()
    assert rows == ["cookcam|f|t", "hotdash|f|t"]


def test_metrics_are_prometheus_text(host):
    text = host.check_output("curl -fsS -m 5 http://127.0.0.1:3000/metrics")
    assert "# TYPE http_requests_total counter" in text and "http_request_duration_seconds_bucket" in text


def test_database_listens_on_the_network_with_password_auth(host):
    hba = host.file("/etc/postgresql/15/main/pg_hba.conf").content_string
    assert "host all all 0.0.0.0/0 scram-sha-256" in hba


def test_backups_are_what_the_apps_have(host):
    dumps = host.check_output(f"ls {BACKUPS}").split()
    # the app's own plain gzip dump (no checksum), and the collection's custom-format dumps with .sha256
    assert "latest_backup.sql.gz" in dumps and "latest_backup.sql.gz.sha256" not in dumps
    assert host.run(f"gzip -t {BACKUPS}/latest_backup.sql.gz").rc == 0
    assert 'CREATE TABLE public."User"' in host.check_output(f"zcat {BACKUPS}/latest_backup.sql.gz | head -400")
    assert len([d for d in dumps if d.endswith(".dump")]) == 2
    assert host.run(f"cd {BACKUPS} && sha256sum -c --quiet *.sha256").rc == 0
    assert "TABLE DATA public Item " in host.check_output(f"pg_restore -l {BACKUPS}/saasresto-20260102T020000Z.dump")
    assert host.file("/var/backups/cookcam/backup_20260102.dump").exists
