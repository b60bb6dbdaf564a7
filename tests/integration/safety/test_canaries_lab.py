# SPDX-License-Identifier: GPL-3.0-or-later
"""Canary test, lab part (issue 11): confirmed runs that hand a secret to a tool on a lab host, as AWX runs them.

The diagnose job templates (tests/integration/awx/test_awx_jobs.py) and every changing playbook answered "no"
(tests/integration/safety/test_unconfirmed_lab.py) are checked the same way at -vvvv; these are the runs where a
secret really reaches a tool on a lab host:

- backup remediate on cookcam-api (lab-pm2): pg_dump logs in with the password of CookCam's DATABASE_URL;
- secrets remediate on saasresto (lab-systemd): a canary value written into the app's env file;
- login remediate on saasresto: a canary bcrypt hash set for a canary user of its Prisma "User" table;
- app_down diagnose on hotdash (lab-fly, FAKE flyctl): a canary Fly API token handed to flyctl.

Each runs through ansible-runner at -vvvv while LabSampler reads every command line every 50 ms on the control
node and inside the lab hosts. No canary (the lab vault's secrets, plus the hash, the token and the env value)
may appear in the job output, in any job event (what AWX keeps), in the incident records or in a process list.
Each run must also have done its work (the dump exists, the value is in the env file, the hash is set), so an
early failure cannot pass as "nothing leaked".
"""

from __future__ import annotations

import secrets as random_secrets
import subprocess

from canary_support import LabSampler, lab_canaries, leaks_in, runner_events_text, runner_job
from playbook_runner import lab_marks

pytestmark = lab_marks()
TAG = random_secrets.token_hex(6)
BCRYPT = "$2b$10$" + ("CanaryLabHash" + TAG + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH")[:53]
FLY_TOKEN = "FlyV1 fm2_LABCANARY-%s-not-a-real-token" % TAG
ENV_SECRET = "lab-env-canary-%s-value" % TAG
EMAIL = "canary-%s@example.test" % TAG
SAAS_ENV = "/opt/saasresto/.env"


def in_host(container, script, check=True):
    proc = subprocess.run(["docker", "exec", container, "bash", "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 or not check, proc.stdout + proc.stderr
    return proc.stdout.strip()


def saas_sql(query):
    """A query as the postgres OS user in saasresto's database, on standard input (nothing in an argv)."""
    proc = subprocess.run(["docker", "exec", "-i", "sre-lab-systemd", "runuser", "-u", "postgres", "--", "psql",
                           "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", "saasresto"], input=query + "\n",
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip()


def test_confirmed_runs_leak_no_canary(tmp_path):
    canaries = dict(lab_canaries(), **{"bcrypt hash": BCRYPT, "bcrypt hash body": BCRYPT[7:], "fly token": FLY_TOKEN,
                                       "fly token body": FLY_TOKEN.split(" ", 1)[1], "env secret": ENV_SECRET})
    before_dumps = set(in_host("sre-lab-pm2", "ls /var/backups/cookcam").split())
    saas_sql("INSERT INTO \"User\" (email, role, \"passwordHash\") VALUES ('%s', 'staff', 'old-%s')" % (EMAIL, TAG))
    runs = [
        ("backup_remediate", {"sre_confirm": "yes", "backup_keep_last": 1000, "backup_force": True}, "lab-pm2"),
        ("secrets_remediate", {"sre_confirm": "yes", "secrets_restart": False,
                               "secrets_values": {"SRE_CANARY_SECRET": ENV_SECRET}}, "lab-systemd"),
        ("login_remediate", {"sre_confirm": "yes", "login_email": EMAIL, "login_new_password_hash": BCRYPT},
         "lab-systemd"),
        ("app_down_diagnose", {"sre_fly_api_token": FLY_TOKEN}, "lab-fly"),
    ]
    leaks, summary = [], []
    decoy = "decoy-canary-%s" % TAG  # shown on purpose in a lab host's process list: the sampler must report it
    try:
        with LabSampler(dict(canaries, decoy=decoy)) as sampler:
            subprocess.run(["docker", "exec", "sre-lab-pm2", "sh", "-c", "sleep 0.4; true", decoy], check=True)
            for name, extra, limit in runs:
                where = tmp_path / name
                runner, private, records = runner_job(where, name, extra, limit, check=name.endswith("_diagnose"))
                stdout = runner.stdout.read()
                summary.append("%s on %s: %s" % (name, limit, runner.status))
                events = runner_events_text(private)
                assert events.count('"event": ') > 10, "no job events to check"
                leaks += leaks_in(stdout, canaries, "the output of %s" % name)
                leaks += leaks_in(events, canaries, "the job events of %s" % name)
                leaks += leaks_in(records, canaries, "the incident records of %s" % name)
        seen = sampler.leaks()
        assert "the decoy in an argv in sre-lab-pm2 (sh)" in seen, seen
        leaks += [line for line in seen if not line.startswith("the decoy ")]
        assert not leaks, leaks
        assert all(line.endswith(": successful") for line in summary), summary
        # each secret reached where it goes
        made = set(in_host("sre-lab-pm2", "ls /var/backups/cookcam").split()) - before_dumps
        assert any(name.endswith(".dump") for name in made), made
        assert "SRE_CANARY_SECRET=%s" % ENV_SECRET in in_host("sre-lab-systemd", "cat %s" % SAAS_ENV)
        assert saas_sql("SELECT \"passwordHash\" FROM \"User\" WHERE email = '%s'" % EMAIL) == BCRYPT
    finally:
        saas_sql("DELETE FROM \"Session\" WHERE \"userId\" IN (SELECT id FROM \"User\" WHERE email = '%s'); "
                 "DELETE FROM \"User\" WHERE email = '%s'" % (EMAIL, EMAIL))
        in_host("sre-lab-systemd", "sed -i '/^SRE_CANARY_SECRET=/d' %s" % SAAS_ENV, check=False)
        for name in set(in_host("sre-lab-pm2", "ls /var/backups/cookcam").split()) - before_dumps:
            in_host("sre-lab-pm2", "rm -f /var/backups/cookcam/%s" % name, check=False)
