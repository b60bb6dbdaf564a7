# SPDX-License-Identifier: GPL-3.0-or-later
"""One playbook runner for the tests (issue 10, item 7): only tests/playbook_runner.py starts ansible-playbook.

Every other test file goes through playbook_runner.run_playbook (or a thin wrapper of it such as
pg_sessions.run_playbook or app_support's fixtures). The scan reads each tests/**/*.py with ast: a file
starts ansible-playbook itself when it names the executable ("ansible-playbook", ".../ansible-playbook")
and can start processes (subprocess, os.system/popen/exec*/spawn*, pexpect, asyncio subprocesses), or
hands an "ansible-playbook ..." command line to such a call. Docstrings do not count.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import playbook_runner

REPO = Path(__file__).resolve().parents[2]
RUNNER = "tests/playbook_runner.py"

_EXECUTABLE = re.compile(r"^(\S*/)?ansible-playbook$")
_COMMAND_LINE = re.compile(r"^\s*(\S*/)?ansible-playbook(\s|$)")
_PROCESS_MODULES = {"subprocess", "pexpect", "pty"}
_OS_PROCESS = re.compile(r"^(system|popen|exec\w*|spawn\w*|posix_spawn\w*)$")
_ASYNCIO_PROCESS = re.compile(r"^create_subprocess_\w+$")


def _docstring_nodes(tree):
    nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                nodes.add(id(first.value))
    return nodes


def _process_call(node) -> bool:
    """A call that starts a process: subprocess.*, os.system/popen/exec*/spawn*, pexpect.*, asyncio subprocesses."""
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        owner, name = func.value.id, func.attr
        return (owner in _PROCESS_MODULES or (owner == "os" and bool(_OS_PROCESS.match(name)))
                or (owner == "asyncio" and bool(_ASYNCIO_PROCESS.match(name))))
    return isinstance(func, ast.Name) and func.id in {"run", "Popen", "call", "check_call", "check_output", "spawn"}


def starts_ansible_playbook(source: str) -> list[int]:
    """Line numbers where source starts (or is set up to start) ansible-playbook itself; [] when it does not."""
    tree = ast.parse(source)
    docstrings = _docstring_nodes(tree)
    can_spawn = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in _PROCESS_MODULES for a in node.names):
            can_spawn = True
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _PROCESS_MODULES:
            can_spawn = True
        elif isinstance(node, ast.Call) and _process_call(node):
            can_spawn = True
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if can_spawn and _EXECUTABLE.match(node.value):
                lines.add(node.lineno)
        if isinstance(node, ast.Call) and _process_call(node):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Constant) and isinstance(inner.value, str) and _COMMAND_LINE.match(inner.value):
                    lines.add(inner.lineno)
    return sorted(lines)


def _test_files():
    return sorted(p for p in (REPO / "tests").rglob("*.py") if "__pycache__" not in p.parts)


def _offenders():
    found = {}
    for path in _test_files():
        lines = starts_ansible_playbook(path.read_text(encoding="utf-8"))
        if lines:
            found[path.relative_to(REPO).as_posix()] = lines
    return found


def test_only_the_runner_starts_ansible_playbook():
    offenders = {path: lines for path, lines in _offenders().items() if path != RUNNER}
    assert not offenders, (
        "these test files start ansible-playbook themselves (file: lines); call "
        "playbook_runner.run_playbook instead (see tests/playbook_runner.py):\n  "
        + "\n  ".join("%s: %s" % (path, lines) for path, lines in sorted(offenders.items())))


def test_the_scan_sees_the_runner():
    """The scan is not blind: it finds the one place that does start ansible-playbook."""
    assert RUNNER in _offenders()


@pytest.mark.parametrize("source, expected", [
    ('import subprocess, sys\nfrom pathlib import Path\n'
     'subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "site.yml"])\n', [3]),
    ('import subprocess\nBIN = "/venv/bin"\nARGV = [BIN + "/ansible-playbook", "-i", "x,"]\n'
     'subprocess.run(ARGV)\n', [3]),
    ('import subprocess\nCMD = ["ansible-playbook", "site.yml"]\n', [2]),
    ('from subprocess import run\nrun(["/usr/bin/ansible-playbook", "x.yml"])\n', [2]),
    ('import subprocess\nsubprocess.run("ansible-playbook -i hosts site.yml", shell=True)\n', [2]),
    ('import os\nos.system("ansible-playbook site.yml")\n', [2]),
    ('import pexpect\npexpect.spawn("ansible-playbook", ["site.yml"])\n', [2]),
    # not starting it: an expected message, a docstring, another tool, the runner's own API
    ('def test_x(out):\n    assert "ansible-playbook playbooks/db_restore.yml -l localhost" in out\n', []),
    ('"""Runs playbooks with ansible-playbook against localhost."""\nimport subprocess\n', []),
    ('import subprocess\nsubprocess.run(["ansible-inventory", "--list"])\n', []),
    ('from playbook_runner import run_playbook\nrun_playbook("login_diagnose", check=True)\n', []),
], ids=["venv-path", "joined-path", "argv-list", "from-import", "shell-string", "os-system", "pexpect",
        "expected-message", "docstring", "other-tool", "runner-api"])
def test_scan_table(source, expected):
    assert starts_ansible_playbook(textwrap.dedent(source)) == expected


# ---- the runner itself, without running Ansible ----------------------------------------------------------

RECAP = """
TASK [Report] ******************************************************************
ok: [localhost] => {"msg": "localhost : ok=9 changed=9 is only a message"}

PLAY RECAP *********************************************************************
lab-fly                    : ok=3    changed=1    unreachable=0    failed=0    skipped=2    rescued=0    ignored=0
localhost                  : ok=12   changed=0    unreachable=1    failed=1    skipped=4    rescued=1    ignored=2

"""


def test_recap_is_parsed_per_host():
    recap = playbook_runner.parse_recap(RECAP)
    assert recap == {"lab-fly": playbook_runner.HostRecap(ok=3, changed=1, unreachable=0, failed=0, skipped=2),
                     "localhost": playbook_runner.HostRecap(ok=12, changed=0, unreachable=1, failed=1, skipped=4,
                                                            rescued=1, ignored=2)}
    assert playbook_runner.parse_recap("ERROR! the playbook: x.yml could not be found\n") == {}
    result = playbook_runner.PlaybookResult(rc=2, stdout=RECAP, stderr="", argv=[], recap=recap)
    assert (result.changed("lab-fly"), result.failed(), result.changed("nohost")) == (1, 1, None)


@pytest.fixture
def captured(monkeypatch):
    """run_playbook with subprocess.run replaced: what it would run (argv, env, the vars files' content)."""
    seen = {}

    def fake_run(argv, **kwargs):
        seen.update(argv=argv, env=kwargs["env"], cwd=kwargs["cwd"], timeout=kwargs["timeout"])
        varfiles = [a[1:] for a in argv if a.startswith("@")]
        seen["vars"] = [json.loads(Path(f).read_text()) for f in varfiles]
        seen["modes"] = [Path(f).stat().st_mode & 0o777 for f in varfiles]
        return subprocess.CompletedProcess(argv, 0, RECAP, "")

    monkeypatch.setattr(playbook_runner.subprocess, "run", fake_run)
    return playbook_runner, seen


def test_localhost_run_keeps_values_off_the_command_line(captured, tmp_path):
    runner, seen = captured
    result = runner.run_playbook("login_diagnose", tmp_path=tmp_path, target="localhost", check=True, verbosity=2,
                                 extra_vars={"sre_db_password": "s3cret-value"}, env={"SRE_X": "1", "HOME": None})
    argv = seen["argv"]
    assert "s3cret-value" not in " ".join(argv)
    assert argv[1:5] == ["-i", "localhost,", "-c", "local"] and argv[-3:] == ["playbooks/login_diagnose.yml", "-vv", "--check"]
    assert seen["vars"] == [{"target": "localhost", "ansible_python_interpreter": sys.executable,
                             "sre_db_password": "s3cret-value"}]
    assert seen["modes"] == [0o600] and not list(tmp_path.glob("sre-vars-*")), "the vars file is removed after the run"
    assert seen["env"]["ANSIBLE_CONFIG"] == str(runner.ANSIBLE_CFG) and seen["env"]["ANSIBLE_NOCOLOR"] == "1"
    assert seen["env"]["SRE_INCIDENT_DIR"] == str(tmp_path / "incidents") and seen["env"]["SRE_X"] == "1"
    assert "HOME" not in seen["env"] and seen["cwd"] == str(runner.REPO) and seen["timeout"] == runner.DEFAULT_TIMEOUT
    assert result.rc == 0 and result.changed() == 0 and result.incident_dir == tmp_path / "incidents"


def test_lab_run_gets_the_lab_vault_id_and_no_local_interpreter(captured, tmp_path):
    runner, seen = captured
    secret = tmp_path / "secret.json"
    secret.write_text('{"secrets_values": {"A": "b"}}')
    runner.run_playbook("secrets_remediate", tmp_path=tmp_path, inventory=runner.LAB_INVENTORY, limit="lab-fly",
                        extra_vars={"sre_confirm": "yes"}, var_files=[secret])
    argv = seen["argv"]
    assert argv[1:7] == ["-i", str(runner.LAB_INVENTORY), "-l", "lab-fly", "--vault-id", runner.LAB_VAULT_ID]
    assert "-c" not in argv and seen["vars"] == [{"sre_confirm": "yes"}, {"secrets_values": {"A": "b"}}]
    assert argv[-2:] == ["@%s" % secret, "playbooks/secrets_remediate.yml"]  # extra_vars first, then var_files


def test_secrets_in_the_output_fail_without_being_printed(captured, tmp_path):
    runner, _seen = captured
    with pytest.raises(AssertionError) as error:
        runner.run_playbook("x", tmp_path=tmp_path, secrets=["ok=9 changed=9"])
    assert "ok=9 changed=9" not in str(error.value)
