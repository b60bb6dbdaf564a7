# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/secrets_*.yml against the running lab: lab-systemd's env file and lab-fly (the FAKE flyctl)."""

from __future__ import annotations

import json
import subprocess

import pytest

from app_support import LAB_CONTAINER as CONTAINER, lab_marks
from app_support import lab_playbook as playbook

pytestmark = lab_marks(CONTAINER)

ENV_FILE = "/opt/saasresto/.env"  # the saasresto twin's env file (lab inventory: secrets_env_file)
VALUE = "lab-test-Secret-9f3b7c1e"
REQUIRED = {"secrets_required": ["DATABASE_URL", "SRE_TEST_SECRET"], "secrets_restart": False}


@pytest.fixture
def env_file():
    """Keep lab-systemd's env file and put it back byte for byte (mode and owner too)."""
    subprocess.run(["docker", "exec", CONTAINER, "cp", "-p", ENV_FILE, "/tmp/sre-secrets-test.env"], check=True)
    yield
    subprocess.run(["docker", "exec", CONTAINER, "sh", "-c", "cp -p /tmp/sre-secrets-test.env %s && rm /tmp/sre-secrets-test.env"
                    % ENV_FILE], check=True)


def names_in_env_file():
    out = subprocess.run(["docker", "exec", CONTAINER, "cut", "-d=", "-f1", ENV_FILE], capture_output=True, text=True,
                         check=True).stdout
    return out.split()


def vault_file(tmp_path, name, value):
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"secrets_values": {name: value}}))
    return path


def test_envfile_missing_name_is_reported_then_set(tmp_path, env_file):
    varfile = vault_file(tmp_path, "SRE_TEST_SECRET", VALUE)
    outputs = []
    rc, changed, out = playbook(tmp_path, "secrets_diagnose", REQUIRED, check=True)
    outputs.append(out)
    assert rc == 0 and changed == 0 and "missing: SRE_TEST_SECRET;" in out, out

    rc, changed, out = playbook(tmp_path, "secrets_remediate", REQUIRED, varfile=varfile, verbosity=3)
    outputs.append(out)
    assert rc == 0 and changed == 0 and "Not confirmed" in out and "SRE_TEST_SECRET" not in names_in_env_file(), out

    rc, changed, out = playbook(tmp_path, "secrets_remediate", dict(REQUIRED, sre_confirm="yes"), varfile=varfile,
                                verbosity=3)
    outputs.append(out)
    assert rc == 0 and changed == 1 and "Set SRE_TEST_SECRET in %s" % ENV_FILE in out, out
    assert "SRE_TEST_SECRET" in names_in_env_file()

    rc, changed, out = playbook(tmp_path, "secrets_remediate", dict(REQUIRED, sre_confirm="yes"), varfile=varfile)
    outputs.append(out)
    assert rc == 0 and changed == 0 and "already set" in out and "missing: none;" in out, out
    incidents = "".join(p.read_text() for p in (tmp_path / "incidents").rglob("*") if p.is_file())
    for text in outputs + [incidents]:
        assert VALUE not in text


def test_fly_missing_name_is_set_through_flyctl(tmp_path):
    varfile = vault_file(tmp_path, "SRE_TEST_SECRET", VALUE)
    extra = {"secrets_required": ["DATABASE_URL", "SRE_TEST_SECRET"]}
    rc, changed, out = playbook(tmp_path, "secrets_diagnose", extra, host="lab-fly", check=True)
    assert rc == 0 and changed == 0 and "missing: SRE_TEST_SECRET;" in out, out

    rc, changed, out = playbook(tmp_path, "secrets_remediate", dict(extra, sre_confirm="yes"), varfile=varfile,
                                host="lab-fly", verbosity=3)
    assert rc == 0 and changed == 1 and "Set SRE_TEST_SECRET in Fly app hotdash-production" in out, out
    assert VALUE not in out
    state = json.loads((tmp_path / "fly" / "state.json").read_text())
    assert VALUE not in json.dumps(state) and "SRE_TEST_SECRET" in json.dumps(state)

    rc, changed, out = playbook(tmp_path, "secrets_remediate", dict(extra, sre_confirm="yes"), varfile=varfile,
                                host="lab-fly")
    assert rc == 0 and changed == 0 and "missing: none;" in out, out
