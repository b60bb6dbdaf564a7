# SPDX-License-Identifier: GPL-3.0-or-later
"""deploy_failure rollback on the lab twins, with no release record of ours (issue 12).

The rollback after a bad release deployed by each twin's OWN method (git pull + build + restart, git pull + `pm2 reload`,
a new image tag + `compose up -d web`, `fly deploy --image` on the FAKE flyctl) is drilled from fault to healthy by
the drills drill_deploy_failure_<twin> (molecule/_drills/drills.yml: the twin runs exactly the release before the bad
one, `healed`, and a second rollback changes nothing). What stays here is what no drill does: a rollback behind a
schema the database has already applied is refused."""

from __future__ import annotations

import subprocess

from playbook_runner import LAB_INVENTORY, lab_marks, run_playbook

pytestmark = lab_marks()


def sh(*argv, check=True):
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0 or not check, proc.stdout + proc.stderr
    return proc.stdout.strip()


def in_host(container, script, check=True):
    return sh("docker", "exec", container, "bash", "-c", script, check=check)


# app -> (container, checkout, how its own deploy restarts it, health URL inside the container)
GIT_TWINS = {
    "lab-systemd": ("sre-lab-systemd", "/opt/saasresto", "systemctl restart saasresto", "http://127.0.0.1:3000/health"),
    "lab-sme": ("sre-lab-systemd", "/opt/sme-booking-app", "systemctl restart sme-booking-app",
                "http://127.0.0.1:3001/api/health"),
    "lab-pm2": ("sre-lab-pm2", "/opt/cookcam-api",
                "PM2_HOME=/root/.pm2 pm2 reload ecosystem.production.config.js", "http://127.0.0.1:3000/health"),
}


def git_heal(container, checkout, restart):
    name = checkout.rsplit("/", 1)[1]
    in_host(container, "git -C /srv/git/%s.git update-ref refs/heads/main refs/tags/deploy-20260102" % name)
    in_host(container, "cd %s && git fetch -q origin && git checkout -q main && git reset -q --hard origin/main && %s"
            % (checkout, restart), check=False)


def rollback(tmp_path, host, env=None, extra=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return run_playbook("deploy_failure_rollback", tmp_path=tmp_path, inventory=LAB_INVENTORY, limit=host,
                        extra_vars=dict({"sre_confirm": "yes", "target_cooldown_min_interval_s": 0}, **(extra or {})),
                        timeout=600, env=env or {})


def healthy(container, url):
    return subprocess.run(["docker", "exec", container, "curl", "-fsS", "-m", "3", url], capture_output=True,
                          check=False).returncode == 0


def test_rollback_behind_an_applied_migration_is_refused(tmp_path):
    """saasresto's release 2 added a Prisma migration the database has applied: rolling back to release 1 would run
    its code on a schema ahead of it. Refused (nothing changed) unless sre_allow_schema_ahead=yes."""
    container, checkout, restart, url = GIT_TWINS["lab-systemd"]
    head = in_host(container, "git -C %s rev-parse HEAD" % checkout)
    extra = {"deploy_failure_rollback_to": "deploy-20260101", "deploy_failure_rollback_when_healthy": True}
    try:
        res = rollback(tmp_path, "lab-systemd", extra=extra)
        assert res.rc != 0 and res.changed("lab-systemd") == 0, res.output
        assert "20260102000000_item_available" in res.output and "Nothing was changed" in res.output, res.output
        assert in_host(container, "git -C %s rev-parse HEAD" % checkout) == head
        res = rollback(tmp_path / "allowed", "lab-systemd", extra=dict(extra, sre_allow_schema_ahead="yes"))
        assert res.rc == 0 and res.changed("lab-systemd") > 0, res.output
        assert in_host(container, "cat %s/REVISION" % checkout) == "release-2026.01.01"
        assert healthy(container, url), res.output
    finally:
        git_heal(container, checkout, restart)
