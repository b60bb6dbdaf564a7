# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/secrets_*.yml on localhost (no lab): tricky values (spaces, #, quotes, $, backslashes,
newlines) are written to an env file so that its readers get them back exactly: POSIX sh (`set -a; . file`,
the shell format, as systemd's EnvironmentFile= quotes) and python-dotenv (the dotenv format). No value
appears in the output at -vvvv, nor in the incident record; a second run changes nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from playbook_runner import run_playbook

TRICKY = {
    "SRE_T_SPACE": "two words and  two spaces",
    "SRE_T_HASH": "value #not-a-comment",
    "SRE_T_SINGLE": "it's a 'quote'",
    "SRE_T_DOUBLE": 'say "hi" to "them"',
    "SRE_T_DOLLAR": "pa$word ${HOME} $(id) `id` $$",
    "SRE_T_BACKSLASH": "C:\\new\\table \\n not a newline \\\\ two",
    "SRE_T_NEWLINES": "-----BEGIN KEY-----\nAbC+/=\nFAKE_NAME=inside\n-----END KEY-----",
    "SRE_T_TAB_EDGES": "\tleading tab and trailing space ",
    "SRE_T_UNICODE": "pässwörd ✓ 密码",
    "SRE_T_OPS": "a;b&c|d>e<f(g)!h*",
    "SRE_T_QUOTE_BACKSLASH": "\\'",
    "SRE_T_PLAIN": "postgresql://app:s3cr3t-Plain-7f@127.0.0.1:5432/app",
}
EXISTING = "# app settings\nPORT=3000\nexport APP_NAME='saas resto'\nSRE_T_SPACE=old\n"


def run(tmp_path, name, variables, check=False, verbosity=4):
    r = run_playbook(name, tmp_path=tmp_path, target="localhost", extra_vars=variables, check=check, verbosity=verbosity)
    return r.rc, r.changed(), r.output


def read_with_sh(path):
    """What a POSIX shell (and so an app started by it) gets from `set -a; . file`, in a clean environment."""
    script = 'set -a; . "$1"; shift; exec "$@"'
    dump = "import json, os, sys; print(json.dumps({k: os.environ.get(k) for k in sys.argv[1:]}))"
    proc = subprocess.run(["env", "-i", "/bin/sh", "-c", script, "sh", str(path), sys.executable, "-c", dump,
                           "PORT", "APP_NAME", *TRICKY], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def read_with_python_dotenv(path):
    from dotenv import dotenv_values  # requirements/dev.txt: a missing reader fails the test, never skips it

    return dict(dotenv_values(str(path)))


@pytest.mark.parametrize("fmt, reader", [("shell", read_with_sh), ("dotenv", read_with_python_dotenv)])
def test_tricky_values_read_back_exactly_and_never_show(tmp_path, collections_path, fmt, reader):
    values = dict(TRICKY)
    if fmt == "dotenv":  # python-dotenv expands ${...} in every value: refused there (test below)
        values["SRE_T_DOLLAR"] = values["SRE_T_DOLLAR"].replace("${HOME}", "$HOME")
    env_file = tmp_path / "app.env"
    env_file.write_text(EXISTING)
    env_file.chmod(0o640)
    variables = {"sre_target_kind": "systemd", "secrets_env_file": str(env_file), "secrets_env_format": fmt,
                 "secrets_required": sorted(TRICKY), "secrets_restart": False}
    vault = dict(variables, secrets_values=values)
    outputs = []

    rc, changed, out = run(tmp_path, "secrets_diagnose", variables, check=True)
    outputs.append(out)
    assert rc == 0 and changed == 0 and "Secrets in %s: 3 names." % env_file in " ".join(out.split()), out

    rc, changed, out = run(tmp_path, "secrets_remediate", dict(vault, sre_confirm="yes"), check=True)
    outputs.append(out)
    assert rc == 0 and changed == 0 and env_file.read_text() == EXISTING, out

    rc, changed, out = run(tmp_path, "secrets_remediate", dict(vault, sre_confirm="yes"))
    outputs.append(out)
    assert rc == 0 and changed == 1, out
    assert "Set %s in %s" % (", ".join(TRICKY), env_file) in " ".join(out.split()), out
    got = reader(env_file)
    for name, value in values.items():
        assert got[name] == value, name
    assert got["PORT"] == "3000" and got["APP_NAME"] == "saas resto"
    text = env_file.read_text()
    assert text.startswith("# app settings\nPORT=3000\nexport APP_NAME='saas resto'\n"), text
    assert oct(env_file.stat().st_mode & 0o777) == "0o640"

    rc, changed, out = run(tmp_path, "secrets_remediate", dict(vault, sre_confirm="yes"))
    outputs.append(out)
    assert rc == 0 and changed == 0 and "already set" in out and env_file.read_text() == text, out

    rc, changed, out = run(tmp_path, "secrets_diagnose", variables, check=True)
    outputs.append(out)
    flat = " ".join(out.split())
    assert rc == 0 and changed == 0 and "missing: none; empty: none." in flat, out
    assert "Secrets in %s: %d names." % (env_file, 2 + len(TRICKY)) in flat and "FAKE_NAME" not in out, out

    incidents = "".join(p.read_text() for p in (tmp_path / "incidents").rglob("*") if p.is_file())
    for text_out in outputs + [incidents]:
        for name, value in values.items():
            for piece in [value] + [part for part in re.split(r"[\n\t]", value) if len(part) >= 6]:
                assert piece not in text_out, "the value of %s shows in the output" % name


def test_dotenv_refuses_a_value_python_dotenv_would_expand(tmp_path, collections_path):
    env_file = tmp_path / "app.env"
    env_file.write_text(EXISTING)
    value = "s3cret-${HOME}-tail"
    variables = {"sre_target_kind": "compose", "secrets_env_file": str(env_file), "secrets_restart": False,
                 "secrets_values": {"SRE_T_EXPANDED": value}, "sre_confirm": "yes"}
    rc, dummy, out = run(tmp_path, "secrets_remediate", variables)
    assert rc != 0 and env_file.read_text() == EXISTING, out
    assert "the value of SRE_T_EXPANDED holds ${...}" in " ".join(out.split()) and value not in out, out


def test_rollback_puts_the_env_file_back_once_and_keeps_what_it_replaced(tmp_path, collections_path):
    """The way back of a remediate: rollback puts back the content before it (the 0600 backup env_file kept), keeps
    the content it replaces in a .before-restore~ backup, and a second rollback changes nothing; only names show."""
    env_file = tmp_path / "app.env"
    env_file.write_text("PORT=3000\nSMTP_PASSWORD='old-pass-never-shown'\n")
    env_file.chmod(0o640)
    before = env_file.read_text()
    variables = {"sre_target_kind": "systemd", "secrets_env_file": str(env_file), "secrets_env_format": "shell",
                 "secrets_restart": False}
    rc, changed, out = run(tmp_path, "secrets_rollback", dict(variables, sre_confirm="yes"))
    flat = " ".join(out.split())
    assert rc != 0 and "no backup of it next to it" in flat and "nothing was changed" in flat, out
    assert "Traceback" not in out and env_file.read_text() == before, out

    rc, changed, out = run(tmp_path, "secrets_remediate",
                           dict(variables, sre_confirm="yes", secrets_values={"SMTP_PASSWORD": "new-pass-Never-shown"}))
    assert rc == 0 and changed == 1, out
    after = env_file.read_text()
    assert "new-pass-Never-shown" in after

    rc, changed, out = run(tmp_path, "secrets_rollback", variables)  # not confirmed: the plan
    flat = " ".join(out.split())
    assert rc == 0 and changed == 0 and env_file.read_text() == after, out
    assert "put back %s from %s." % (env_file, env_file) in flat and "(names that differ: SMTP_PASSWORD)" in flat, out
    assert "Not confirmed: nothing is changed" in flat, out
    rc, changed, out = run(tmp_path, "secrets_rollback", dict(variables, sre_confirm="yes"), check=True)
    assert rc == 0 and changed == 0 and env_file.read_text() == after, out

    rc, changed, out = run(tmp_path, "secrets_rollback", dict(variables, sre_confirm="yes"))
    flat = " ".join(out.split())
    assert rc == 0 and changed == 1 and env_file.read_text() == before, out
    assert "(SMTP_PASSWORD changed); the file before is %s." % env_file in flat and ".before-restore~" in flat, out
    assert oct(env_file.stat().st_mode & 0o777) == "0o640"
    kept = sorted(tmp_path.glob("app.env.*.before-restore~"))
    assert len(kept) == 1 and kept[0].read_text() == after and oct(kept[0].stat().st_mode & 0o777) == "0o600"

    rc, changed, out = run(tmp_path, "secrets_rollback", dict(variables, sre_confirm="yes"))
    flat = " ".join(out.split())
    assert rc == 0 and changed == 0 and env_file.read_text() == before, out
    assert "already has the content of %s.2" % env_file in flat and "nothing to do" in flat, out
    elsewhere = dict(variables, sre_confirm="yes", secrets_rollback_from=str(tmp_path / "elsewhere.env"))
    rc, changed, out = run(tmp_path, "secrets_rollback", elsewhere)
    assert rc != 0 and "is not one of its backups" in " ".join(out.split()) and env_file.read_text() == before, out

    incidents = "".join(p.read_text() for p in (tmp_path / "incidents").rglob("*") if p.is_file())
    for text in (out, incidents):
        assert "old-pass-never-shown" not in text and "new-pass-Never-shown" not in text
