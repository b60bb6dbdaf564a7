# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's own contracts: the FAKE flyctl's JSON shapes seen by the inventory's fly group, the build
and run scripts' one-line errors, the compose file (loopback ports, v1-valid), the inventory's groups
and shared variables, shellcheck. Fast: nothing here starts a container (lab_smoke does that)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]  # not from conftest: another directory's conftest can shadow it
LAB = REPO / "lab"
FLYCTL = LAB / "fake-flyctl" / "flyctl"
BANNER = "flyctl: FAKE (sre.runbooks lab stand-in, not Fly.io)"
APP = "hotdash-production"
VENV_BIN = Path(sys.executable).parent
# the lab's apps: app group -> (kind, host)
LAB_APPS = {"saasresto": ("systemd", "lab-systemd"), "sme_booking": ("systemd", "lab-sme"), "cookcam": ("pm2", "lab-pm2"),
            "ferreteria": ("compose", "lab-compose"), "hotdash": ("fly", "lab-fly")}
SHARED = {
    "systemd": {"sre_target_kind", "sre_app_name", "sre_app_health_url", "sre_app_port", "sre_app_dir",
                "sre_proxy_kind", "sre_proxy_service", "sre_db_host", "sre_db_port", "sre_db_user",
                "sre_db_password", "sre_db_name", "sre_db_unix_socket", "sre_db_service", "sre_backup_dir",
                "sre_backup_pattern", "sre_tls_endpoints", "sre_db_admin_user"},
    "pm2": {"sre_target_kind", "sre_app_name", "sre_app_health_url", "sre_app_port", "sre_app_dir",
            "sre_pm2_home", "sre_pm2_ecosystem", "sre_db_dsn", "sre_proxy_kind"},
    "compose": {"sre_target_kind", "sre_app_name", "sre_app_health_url", "sre_compose_project_dir",
                "sre_compose_file", "sre_compose_project", "sre_proxy_kind", "sre_db_service", "sre_tls_endpoints"},
    "fly": {"sre_target_kind", "sre_app_name", "sre_fly_app", "sre_flyctl", "sre_proxy_kind"},
}


def run(argv, env=None, timeout=60, **kwargs):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})), check=False, **kwargs)


@pytest.fixture
def fly(tmp_path):
    def call(*args):
        proc = run([FLYCTL, *args, "--app", APP], env={"FAKE_FLY_STATE": str(tmp_path / "state.json")})
        assert BANNER in proc.stderr
        return proc
    return call


# ---- the FAKE flyctl, as the lab's fly group uses it ------------------------------------------------

def test_fly_status_and_machines_casing(fly):
    status = json.loads(fly("status", "--json").stdout)
    assert {"ID", "Name", "Status", "Version", "Machines"} <= set(status)
    assert status["Name"] == APP
    machines = json.loads(fly("machine", "list", "--json").stdout)
    assert machines and {"id", "state", "region", "image_ref", "checks"} <= set(machines[0])
    assert {"registry", "repository", "tag"} <= set(machines[0]["image_ref"])


def test_fly_releases_pascal_case_with_image_ref(fly):
    releases = json.loads(fly("releases", "--json", "--image").stdout)
    assert {"Version", "Status", "ImageRef", "CreatedAt"} <= set(releases[0])
    assert releases[0]["ImageRef"].startswith(f"registry.fly.io/{APP}:")


def test_fly_bad_image_deploy_leaves_started_machines_with_critical_checks(fly):
    fly("deploy", "--image", f"registry.fly.io/{APP}:deployment-bad-lab")
    machines = json.loads(fly("machine", "list", "--json").stdout)
    assert any(c["status"] == "critical" for m in machines for c in m["checks"])


def test_fly_secret_values_never_printed_or_stored(fly, tmp_path):
    value = "lab-secret-value-9f8e7d"
    out = fly("secrets", "set", f"LAB_TOKEN={value}")
    listed = fly("secrets", "list", "--json")
    assert value not in out.stdout + out.stderr + listed.stdout + listed.stderr
    assert value not in (tmp_path / "state.json").read_text()
    entry = [s for s in json.loads(listed.stdout) if s["name"] == "LAB_TOKEN"]
    assert len(entry) == 1 and set(entry[0]) == {"name", "digest", "status"}


def test_fly_samples_are_json_and_mark_the_fake():
    samples = sorted((LAB / "fake-flyctl" / "samples").glob("*.json"))
    assert samples
    for sample in samples:
        json.loads(sample.read_text())


# ---- scripts: one-line errors, no tracebacks -----------------------------------------------------

@pytest.mark.parametrize("script", ["build.sh", "up.sh", "down.sh"])
def test_scripts_say_the_engine_is_not_running(script, tmp_path):
    proc = run([LAB / script], env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("ERROR: the Docker engine is not running"), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("script,arg", [("build.sh", "--bogus"), ("down.sh", "--bogus")])
def test_scripts_reject_unknown_arguments(script, arg):
    proc = run([LAB / script, arg])
    assert proc.returncode != 0 and "usage: lab/" in proc.stderr


@pytest.mark.docker
def test_build_says_debootstrap_is_missing(tmp_path):
    if run(["docker", "info"]).returncode != 0:
        pytest.skip("the Docker engine is not running")
    # a fresh prefix and cache: the base image must be made, and /usr/sbin (debootstrap) is off PATH
    proc = run([LAB / "build.sh"], env={"PATH": "/usr/bin:/bin", "SRE_CACHE_DIR": str(tmp_path / "cache"),
                                        "SRE_LAB_IMAGE_PREFIX": "sre-lab-test-nodebootstrap"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "ERROR: debootstrap not found (apt-get install debootstrap)"


@pytest.mark.docker
@pytest.mark.slow
def test_print_env_names_existing_hashed_images():
    if run(["docker", "info"]).returncode != 0:
        pytest.skip("the Docker engine is not running")
    proc = run([LAB / "build.sh", "--print-env"], timeout=1800)
    assert proc.returncode == 0, proc.stderr
    env = dict(line.removeprefix("export ").split("=", 1) for line in proc.stdout.splitlines())
    assert {"SRE_LAB_SYSTEMD_IMAGE", "SRE_LAB_PM2_IMAGE", "SRE_LAB_WEB_IMAGE", "SRE_LAB_DB_IMAGE",
            "SRE_LAB_NGINX_IMAGE", "SRE_LAB_CERTBOT_IMAGE", "SRE_LAB_BASE_IMAGE"} <= set(env)
    for key, tag in env.items():
        name, dummy, digest = tag.partition(":")
        assert name.startswith("sre-lab-")
        # every image is tagged with the hash of its inputs, except Ferreteria's web: one tag per release
        assert digest == "current" if key == "SRE_LAB_WEB_IMAGE" else len(digest) == 12, (key, tag)
        assert run(["docker", "image", "inspect", tag]).returncode == 0, tag
    # Ferreteria's web releases, in creation order, `current` = 2026.01.02 and `previous` = 2026.01.01
    repo = env["SRE_LAB_WEB_IMAGE"].partition(":")[0]
    ids = {t: run(["docker", "image", "inspect", "-f", "{{.Id}} {{.Created}}", f"{repo}:{t}"]).stdout.split()
           for t in ("2026.01.01", "2026.01.02", "2026.01.03", "current", "previous")}
    assert ids["current"] == ids["2026.01.02"] and ids["previous"] == ids["2026.01.01"], ids
    assert ids["2026.01.01"][1] < ids["2026.01.02"][1] < ids["2026.01.03"][1], ids
    # the pm2 image carries the role marker, the systemd image does not
    assert run(["docker", "run", "--rm", env["SRE_LAB_PM2_IMAGE"], "test", "-f", "/etc/sre-lab/pm2"]).returncode == 0
    assert run(["docker", "run", "--rm", env["SRE_LAB_SYSTEMD_IMAGE"], "test", "-f", "/etc/sre-lab/pm2"]).returncode == 1


def test_shell_scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    scripts = sorted(LAB.glob("*.sh")) + sorted(LAB.glob("images/**/*.sh"))
    proc = run(["shellcheck", "-x", *scripts], cwd=REPO)
    assert proc.returncode == 0, proc.stdout


# ---- the compose project ---------------------------------------------------------------------------

def test_compose_file_is_valid_and_publishes_on_loopback_only():
    compose_file = LAB / "compose" / "docker-compose.prod.yml"
    doc = yaml.safe_load(compose_file.read_text())
    assert set(doc["services"]) == {"web", "db", "nginx", "certbot"}  # runbook 003's services
    published = {svc: s.get("ports", []) for svc, s in doc["services"].items()}
    assert published["nginx"] == ["127.0.0.1:18443:443"]
    assert published["db"] == []  # reachable only on the project network, as in production
    assert published["web"] == ["127.0.0.1:13000:8000"]
    assert published["certbot"] == []
    for svc in ("web", "db"):
        assert "healthcheck" in doc["services"][svc]
    for svc in doc["services"].values():
        assert svc["restart"] == "unless-stopped"
    if shutil.which("docker-compose"):
        env = {"FERRETERIA_%s_IMAGE" % k: "sre-lab-x:0" for k in ("WEB", "DB", "NGINX", "CERTBOT")}
        proc = run(["docker-compose", "-p", "ferreteria", "-f", compose_file, "config", "-q"], env=env)
        assert proc.returncode == 0, proc.stderr


# ---- the inventory ---------------------------------------------------------------------------------

def test_inventory_groups_hosts_and_shared_variables():
    proc = run([VENV_BIN / "ansible-inventory", "-i", REPO / "inventories" / "lab", "--list",
                "--vault-id", f"lab@{REPO / 'inventories' / 'lab' / '.vault-pass'}"], cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)
    # one group per app under 'lab'; each kind group (derived from sre_target_kind, kinds.yml) holds the app's host
    assert set(inv["lab"]["children"]) == set(LAB_APPS)
    hostvars = inv["_meta"]["hostvars"]
    for app, (kind, host) in LAB_APPS.items():
        assert inv[app]["hosts"] == [host], app
        assert host in inv[kind]["hosts"], kind
        hv = hostvars[host]
        # SME Booking has no proxy, no TLS and no backups of its own (runbook 002)
        needed = SHARED[kind] - ({"sre_proxy_service", "sre_tls_endpoints", "sre_backup_dir"} if app == "sme_booking"
                                 else set())
        assert needed <= set(hv), (app, needed - set(hv))
        assert hv["sre_target_kind"] == kind
    assert hostvars["lab-systemd"]["ansible_host"] == "sre-lab-systemd"
    assert hostvars["lab-pm2"]["ansible_host"] == "sre-lab-pm2"
    # a second app of one kind on the same VPS is one more group and host name
    assert hostvars["lab-sme"]["ansible_host"] == "sre-lab-systemd"
    assert sorted(inv["systemd"]["hosts"]) == ["lab-sme", "lab-systemd"]
    assert hostvars["lab-fly"]["sre_flyctl"].endswith("/fake-flyctl/flyctl")
    assert hostvars["lab-fly"]["sre_fly_app"] == APP


def test_vault_is_encrypted_with_the_lab_id():
    head = (REPO / "inventories" / "lab" / "group_vars" / "all" / "vault.yml").read_text().splitlines()[0]
    assert head == "$ANSIBLE_VAULT;1.2;AES256;lab"
