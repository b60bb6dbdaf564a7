# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's systemd host (saasresto under systemd behind Caddy, PostgreSQL 15, dumps) as booted."""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("systemd")

APP = "/srv/saasresto"
BACKUPS = "/var/backups/saasresto"


def psql(host, sql):
    return host.check_output("runuser -u postgres -- psql -d saasresto -Atc %s", sql)


def test_boot_finished_without_failed_units(host):
    assert host.run("systemctl is-system-running --wait").stdout.strip() == "running"
    assert host.check_output("systemctl --failed --no-legend --plain") == ""


def test_services_of_the_systemd_role_run(host):
    for unit in ("postgresql@15-main", "saasresto", "caddy"):
        assert host.service(unit).is_running, unit
    assert not host.service("pm2-cookcam").is_running


def test_ports_listen(host):
    assert host.socket("tcp://0.0.0.0:5432").is_listening
    assert host.socket("tcp://0.0.0.0:3000").is_listening or host.socket("tcp://:::3000").is_listening
    assert host.socket("tcp://0.0.0.0:443").is_listening or host.socket("tcp://:::443").is_listening


def test_health_direct_and_through_caddy_tls(host):
    direct = json.loads(host.check_output("curl -fsS -m 5 http://127.0.0.1:3000/health"))
    assert direct["status"] == "ok" and direct["db"] == "ok" and direct["users"] >= 500
    tls = json.loads(host.check_output("curl -fsSk -m 5 https://localhost/health"))
    assert tls["status"] == "ok"


def test_release_layout_and_version(host):
    current = host.file(f"{APP}/current")
    assert current.is_symlink
    assert current.linked_to == f"{APP}/releases/20260102000000Z"
    assert host.file(f"{APP}/releases/20260101000000Z/REVISION").content_string.strip() == "20260101000000Z"
    version = json.loads(host.check_output("curl -fsS -m 5 http://127.0.0.1:3000/version"))
    assert version["release"] == "20260102000000Z"
    assert host.file(f"{APP}/shared/.env").mode == 0o600


def test_bad_candidate_exits_1_at_start(host):
    cmd = host.run(f"cd {APP}/candidates/20260103000000Z && PORT=3999 timeout 20 node server.js")
    assert cmd.rc == 1
    assert "is broken" in cmd.stderr


def test_health_answers_503_fast_when_the_database_refuses(host):
    # A second copy of the app pointed at a closed port: /health must say 503, not hang.
    out = host.check_output(
        "cd %s/current && (PORT=3998 DATABASE_URL=postgresql://x:y@127.0.0.1:1/x node server.js >/dev/null 2>&1 &"
        " pid=$!; for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:3998/ && break; sleep 0.1; done;"
        " curl -s -m 5 -o /dev/null -w '%%{http_code}' http://127.0.0.1:3998/health; kill $pid)", APP)
    assert out == "503"


def test_login_checks_the_bcrypt_hash(host):
    ok = host.run("curl -s -m 10 -o /dev/null -w '%{http_code}' -d "
                  "'{\"email\":\"user1@lab.example\",\"password\":\"lab-login-password\"}' http://127.0.0.1:3000/login")
    bad = host.run("curl -s -m 10 -o /dev/null -w '%{http_code}' -d "
                   "'{\"email\":\"user1@lab.example\",\"password\":\"nope\"}' http://127.0.0.1:3000/login")
    assert (ok.stdout, bad.stdout) == ("200", "401")
    assert psql(host, "select password_hash from users where id = 1").startswith("$2")


def test_seed_data_with_expired_sessions_and_foreign_keys(host):
    assert int(psql(host, "select count(*) from items")) == 2000
    assert int(psql(host, "select count(*) from sessions where expires_at < now()")) >= 500
    fks = psql(host, "select count(*) from pg_constraint where contype = 'f'")
    assert int(fks) >= 3


def test_database_listens_on_the_network_with_password_auth(host):
    hba = host.file("/etc/postgresql/15/main/pg_hba.conf").content_string
    assert "host all all 0.0.0.0/0 scram-sha-256" in hba


def test_backups_are_real_dumps_with_checksums(host):
    dumps = host.check_output(f"ls {BACKUPS}").split()
    assert len([d for d in dumps if d.endswith(".dump")]) == 2
    assert len([d for d in dumps if d.endswith(".sql.gz")]) == 2
    assert host.run(f"cd {BACKUPS} && sha256sum -c --quiet *.sha256").rc == 0
    newest = f"{BACKUPS}/saasresto-20260102T020000Z"
    assert "items" in host.check_output(f"pg_restore -l {newest}.dump")
    assert host.run(f"gzip -t {newest}.sql.gz").rc == 0
    assert "CREATE TABLE public.users" in host.check_output(f"zcat {newest}.sql.gz | head -200")
