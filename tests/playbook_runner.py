# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way the tests run ansible-playbook (issue 10, item 7).

    from playbook_runner import run_playbook, LAB_INVENTORY

    result = run_playbook("login_diagnose", tmp_path=tmp_path, extra_vars={"login_email": EMAIL},
                          check=True, verbosity=1, secrets=[cluster.password])
    assert result.rc == 0 and result.changed() == 0, result.output

What every run gets:

- the repository's ansible.cfg (``ANSIBLE_CONFIG``, cwd = the repository) and so its collections path,
  with ``build/collections/ansible_collections/sre/runbooks`` linked to the checkout;
- ``SRE_INCIDENT_DIR`` (``<tmp_path>/incidents`` by default), ``ANSIBLE_NOCOLOR=1``, ``ANSIBLE_FORCE_COLOR=0``;
- extra vars in a 0600 JSON file (``-e @file``, removed after the run): no value is ever on the command line;
- ``-i localhost, -c local`` and ``ansible_python_interpreter`` = this Python unless told otherwise;
  ``inventory=LAB_INVENTORY`` adds the lab's vault id (``lab@inventories/lab/.vault-pass``).

The result has ``rc``, ``stdout``, ``stderr``, ``output`` (both), ``recap`` (the PLAY RECAP parsed per host)
and the incident records the callback wrote (``records()``, ``last_record()``, ``incident_text()``).

A module of its own, not tests/conftest.py: several conftest.py files exist under tests/, and
``from conftest import ...`` gets whichever of them was imported first. tests/unit/test_one_runner.py
fails when another test file starts ansible-playbook itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = BIN / "ansible-playbook"
ANSIBLE_CFG = REPO / "ansible.cfg"
COLLECTIONS = REPO / "build" / "collections"
LOCALHOST = "localhost,"
LAB_INVENTORY = REPO / "inventories" / "lab"
LAB_VAULT_ID = "lab@%s" % (LAB_INVENTORY / ".vault-pass")
DEFAULT_TIMEOUT = 300
LAB_CONTAINER = "sre-lab-systemd"

_RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)(?:\s+skipped=(?P<skipped>\d+))?(?:\s+rescued=(?P<rescued>\d+))?"
    r"(?:\s+ignored=(?P<ignored>\d+))?", re.MULTILINE)


def ensure_collection_link() -> Path:
    """build/collections/ansible_collections/sre/runbooks -> the repository (tests/conftest.py re-exports it)."""
    target = COLLECTIONS / "ansible_collections" / "sre" / "runbooks"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(REPO, target_is_directory=True)
        except FileExistsError:
            pass
    return COLLECTIONS


@dataclass(frozen=True)
class HostRecap:
    """One host's line of the PLAY RECAP."""

    ok: int
    changed: int
    unreachable: int
    failed: int
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


def parse_recap(stdout: str) -> dict[str, HostRecap]:
    """{host: HostRecap} from the last PLAY RECAP in stdout; {} when there is none (syntax error, crash)."""
    start = stdout.rfind("PLAY RECAP")
    if start < 0:
        return {}
    recap = {}
    for match in _RECAP_LINE.finditer(stdout[start:]):
        counts = {k: int(v) for k, v in match.groupdict().items() if k != "host" and v is not None}
        recap[match.group("host")] = HostRecap(**counts)
    return recap


def incident_records(incident_dir, suffix=".json") -> list[Path]:
    """The incident records (top level of the directory) with that suffix, oldest name first."""
    incident_dir = Path(incident_dir) if incident_dir else None
    return sorted(incident_dir.glob("*" + suffix)) if incident_dir and incident_dir.is_dir() else []


def incident_text(incident_dir) -> str:
    """Everything the incident callback wrote under incident_dir ("" when it wrote nothing)."""
    root = Path(incident_dir)
    if not root.exists():
        return ""
    return "".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file())


@dataclass
class PlaybookResult:
    rc: int
    stdout: str
    stderr: str
    argv: list[str]
    incident_dir: Path | None = None
    log: Path | None = None
    recap: dict[str, HostRecap] = field(default_factory=dict)

    @property
    def output(self) -> str:
        """stdout + stderr, the text most assertions look into."""
        return self.stdout + self.stderr

    @property
    def returncode(self) -> int:
        return self.rc

    def host(self, name="localhost") -> HostRecap | None:
        return self.recap.get(name)

    def changed(self, host="localhost") -> int | None:
        """changed= of host's recap line, None when the run printed no recap for it."""
        line = self.recap.get(host)
        return line.changed if line else None

    def failed(self, host="localhost") -> int | None:
        line = self.recap.get(host)
        return line.failed if line else None

    def records(self, suffix=".json") -> list[Path]:
        return incident_records(self.incident_dir, suffix)

    def last_record(self) -> dict:
        paths = self.records()
        assert paths, "no incident record written; stdout:\n%s\nstderr:\n%s" % (self.stdout, self.stderr)
        return json.loads(paths[-1].read_text())

    def incident_text(self) -> str:
        return incident_text(self.incident_dir) if self.incident_dir else ""


def _playbook_arg(playbook) -> str:
    """A name ("login_diagnose" or "login_diagnose.yml") is playbooks/<name>.yml of the repository;
    any other path is used as given (relative to the repository)."""
    text = str(playbook)
    if "/" not in text:
        return "playbooks/%s" % (text if text.endswith((".yml", ".yaml")) else text + ".yml")
    return text


def run_playbook(playbook, *, tmp_path=None, inventory=LOCALHOST, connection=None, limit=None, extra_vars=None,
                 var_files=(), target=None, python_interpreter=None, check=False, diff=False, verbosity=0,
                 vault_ids=(), vault_password_file=None, env=None, incident_dir=None, log_path=None,
                 venv_on_path=False, args=(), secrets=(), timeout=DEFAULT_TIMEOUT, cwd=REPO) -> PlaybookResult:
    """Run ansible-playbook and return a PlaybookResult (never raises on a failed play).

    playbook: a name under playbooks/ ("db_restore" or "db_restore.yml") or a path.
    tmp_path: where the vars file goes and, by default, the incident records (<tmp_path>/incidents).
    inventory: "localhost," (default: then -c local and ansible_python_interpreter = this Python),
        LAB_INVENTORY (adds --vault-id LAB_VAULT_ID), any other path, or None (ansible.cfg's inventory).
    connection: -c (default: "local" for "localhost,"); limit: -l.
    extra_vars: a dict written to a JSON vars file, passed first; var_files: more -e @files, in order
        (later ones win, as on the command line). target: sets the playbooks' ``target`` variable.
    python_interpreter: ansible_python_interpreter (default: sys.executable for "localhost,", else unset;
        False: never set). Values in extra_vars win over target and python_interpreter.
    check, diff: --check, --diff; verbosity: -v count (0: none).
    vault_ids: --vault-id each; vault_password_file: --vault-password-file.
    env: variables over os.environ and the defaults above (a value None unsets it);
        incident_dir: SRE_INCIDENT_DIR; log_path: ANSIBLE_LOG_PATH (result.log); venv_on_path: PATH
        starts with this Python's bin directory.
    args: more ansible-playbook arguments (never secrets: they would be in argv).
    secrets: strings that must not appear in stdout or stderr (asserted, without printing them).
    """
    ensure_collection_link()
    local = inventory == LOCALHOST
    variables = {}
    if target is not None:
        variables["target"] = target
    if python_interpreter is None and local:
        python_interpreter = sys.executable
    if python_interpreter:
        variables["ansible_python_interpreter"] = str(python_interpreter)
    variables.update(extra_vars or {})

    argv = [str(ANSIBLE_PLAYBOOK)]
    if inventory is not None:
        argv += ["-i", str(inventory)]
    if connection or local:
        argv += ["-c", connection or "local"]
    if limit:
        argv += ["-l", limit]
    vault_ids = tuple(vault_ids)
    if not local and inventory is not None and (Path(cwd) / str(inventory)).resolve() == LAB_INVENTORY.resolve() \
            and LAB_VAULT_ID not in vault_ids:
        vault_ids = (LAB_VAULT_ID,) + vault_ids
    for vault_id in vault_ids:
        argv += ["--vault-id", str(vault_id)]
    if vault_password_file:
        argv += ["--vault-password-file", str(vault_password_file)]

    varfile = None
    if variables:
        handle, name = tempfile.mkstemp(prefix="sre-vars-", suffix=".json", dir=str(tmp_path) if tmp_path else None)
        with os.fdopen(handle, "w") as out:
            json.dump(variables, out)
        varfile = Path(name)
        argv += ["-e", "@%s" % varfile]
    for path in var_files:
        argv += ["-e", "@%s" % path]
    argv.append(_playbook_arg(playbook))
    argv += ["-" + "v" * verbosity] if verbosity else []
    argv += ["--check"] if check else []
    argv += ["--diff"] if diff else []
    argv += [str(a) for a in args]

    if incident_dir is None:
        incident_dir = Path(tmp_path) / "incidents" if tmp_path else Path(tempfile.mkdtemp(prefix="sre-incidents-"))
    run_env = dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_CFG), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   SRE_INCIDENT_DIR=str(incident_dir))
    if log_path:
        run_env["ANSIBLE_LOG_PATH"] = str(log_path)
    if venv_on_path:
        run_env["PATH"] = str(BIN) + os.pathsep + run_env.get("PATH", "")
    for key, value in (env or {}).items():
        if value is None:
            run_env.pop(key, None)
        else:
            run_env[key] = str(value)
    try:
        proc = subprocess.run(argv, cwd=str(cwd), env=run_env, capture_output=True, text=True, timeout=timeout,
                              check=False)
    finally:
        if varfile:
            varfile.unlink()
    for secret in secrets:
        if secret and (secret in proc.stdout or secret in proc.stderr):
            raise AssertionError("a secret shows in the output of ansible-playbook %s" % " ".join(argv[1:]))
    return PlaybookResult(rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr, argv=argv,
                          incident_dir=Path(run_env["SRE_INCIDENT_DIR"]) if "SRE_INCIDENT_DIR" in run_env else None,
                          log=Path(log_path) if log_path else None, recap=parse_recap(proc.stdout))


def lab_marks(container=LAB_CONTAINER):
    """pytestmark of the lab tests: docker, and skipped (with the reason) when the lab is not running.
    `make test` sets SRE_LAB_REQUIRED=1 and tests/conftest.py turns such a skip into a failure."""
    # this module is also imported outside pytest: pytest only where a test asks for the marks
    import pytest  # pylint: disable=import-outside-toplevel

    return [
        pytest.mark.docker,
        pytest.mark.skipif(
            subprocess.run(["docker", "inspect", container], capture_output=True, check=False).returncode != 0,
            reason="docker inspect %s failed: the lab is not running (lab/up.sh)" % container),
    ]
