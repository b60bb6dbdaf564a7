# SPDX-License-Identifier: GPL-3.0-or-later
"""deploy_failure rollback on each lab twin after a bad release deployed by the twin's OWN method, with no
release record of ours (issue 12): git pull + build + restart (saasresto, sme-booking-app), git pull +
`pm2 reload` (cookcam-api), a new image tag + `compose up -d web` (ferreteria), `fly deploy --image` (hotdash,
FAKE flyctl). The rollback finds the release that ran before in the app's own history, the twin runs it and is
healthy, and a second rollback changes nothing."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from playbook_runner import LAB_INVENTORY, REPO, lab_marks, run_playbook

pytestmark = lab_marks()
LAB = REPO / "lab"
FLYCTL = LAB / "fake-flyctl" / "flyctl"
WEB_REPO = "sre-lab-ferreteria-web"


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


def git_deploy_bad(container, checkout, restart):
    """The twin's own deploy of the bad release: origin's main moves to candidate/bad, then on the host
    `git pull && npm run build` and the restart the runbook uses."""
    name = checkout.rsplit("/", 1)[1]
    in_host(container, "git -C /srv/git/%s.git update-ref refs/heads/main refs/heads/candidate/bad" % name)
    in_host(container, "cd %s && git pull -q --ff-only && npm run build >/dev/null && %s" % (checkout, restart),
            check=False)


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


def wait_down(container, url, seconds=60):
    """As an operator would: roll back once the bad release is seen failing (pm2 reload keeps the old
    process until the new one has crashed)."""
    deadline = time.monotonic() + seconds
    while healthy(container, url):
        assert time.monotonic() < deadline, "the bad release still answers after %ds" % seconds
        time.sleep(1)


@pytest.mark.parametrize("host", sorted(GIT_TWINS))
def test_git_twin_rolls_back_to_the_commit_before_the_bad_pull(tmp_path, host):
    container, checkout, restart, url = GIT_TWINS[host]
    good = in_host(container, "git -C %s rev-parse HEAD" % checkout)
    try:
        git_deploy_bad(container, checkout, restart)
        assert in_host(container, "cat %s/REVISION" % checkout) == "release-2026.01.03"
        wait_down(container, url)
        res = rollback(tmp_path, host)
        assert res.rc == 0 and res.changed(host) > 0, res.output
        assert "from git reflog" in res.output, res.output
        assert in_host(container, "git -C %s rev-parse HEAD" % checkout) == good
        assert healthy(container, url), res.output
        again = rollback(tmp_path / "again", host)
        assert again.rc == 0 and again.changed(host) == 0, again.output
    finally:
        git_heal(container, checkout, restart)


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


def compose(*args):
    return sh("docker-compose", "-p", "ferreteria", "-f", LAB / "compose" / "docker-compose.prod.yml", *args,
              check=False)


def image_id(ref):
    return sh("docker", "image", "inspect", "-f", "{{.Id}}", ref)


def test_compose_twin_rolls_back_to_the_previous_release_tag(tmp_path):
    good = image_id("%s:2026.01.02" % WEB_REPO)
    try:
        # Ferreteria's pipeline: the deployed tag becomes `previous`, the new release `current`, then up -d web
        sh("docker", "tag", "%s:current" % WEB_REPO, "%s:previous" % WEB_REPO)
        sh("docker", "tag", "%s:2026.01.03" % WEB_REPO, "%s:current" % WEB_REPO)
        compose("up", "-d", "--no-deps", "web")
        res = rollback(tmp_path, "lab-compose")
        assert res.rc == 0 and res.changed("lab-compose") > 0, res.output
        running = sh("docker", "inspect", "-f", "{{.Image}}", "ferreteria_web_1")
        assert running == good, res.output
        assert subprocess.run(["curl", "-fsS", "-m", "3", "http://127.0.0.1:13000/health"], capture_output=True,
                              check=False).returncode == 0, res.output
        again = rollback(tmp_path / "again", "lab-compose")
        assert again.rc == 0 and again.changed("lab-compose") == 0, again.output
    finally:
        sh("docker", "tag", "%s:2026.01.02" % WEB_REPO, "%s:current" % WEB_REPO)
        sh("docker", "tag", "%s:2026.01.01" % WEB_REPO, "%s:previous" % WEB_REPO)
        compose("up", "-d", "--no-deps", "web")


def test_fly_twin_rolls_back_to_the_last_healthy_image(tmp_path):
    """FAKE flyctl (Fly.io is unreachable here): `fly deploy --image` of a bad image, then the rollback."""
    env = {"FAKE_FLY_STATE": str(tmp_path / "fly" / "state.json")}
    fly = ["env", "FAKE_FLY_STATE=%s" % env["FAKE_FLY_STATE"], FLYCTL]
    releases = json.loads(sh(*fly, "releases", "--json", "--image", "--app", "hotdash-production"))
    good = releases[0]["ImageRef"]
    sh(*fly, "deploy", "--image", "registry.fly.io/hotdash-production:deployment-bad1", "--app", "hotdash-production",
       check=False)
    res = rollback(tmp_path, "lab-fly", env)
    assert res.rc == 0 and res.changed("lab-fly") > 0, res.output
    status = json.loads(sh(*fly, "status", "--json", "--app", "hotdash-production"))
    images = {"%s/%s:%s" % (m["image_ref"]["registry"], m["image_ref"]["repository"], m["image_ref"]["tag"])
              for m in status["Machines"]}
    assert images == {good.split("@")[0]}, (images, good)
    again = rollback(tmp_path / "again", "lab-fly", env)
    assert again.rc == 0 and again.changed("lab-fly") == 0, again.output
