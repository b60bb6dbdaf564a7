# SPDX-License-Identifier: GPL-3.0-or-later
"""Canaries on the lab (issue 11, "Canary test"): the lab's own secrets and a process-list sampler.

    with LabSampler(canaries) as sampler:
        ... run playbooks against the lab ...
    assert not sampler.leaks(), sampler.leaks()

- ``lab_canaries()``: every secret of the lab vault (the twins' database password, CookCam's and HotDash's
  DATABASE_URLs and the passwords inside them), decrypted with the lab's vault id; these values are the real
  ones the playbooks use, so a leak of any of them is a real leak.
- ``LabSampler``: every process's command line (what ``ps -ww -eo args`` shows, read from /proc/<pid>/cmdline)
  every 50 ms on the control node (a thread) and in each running lab host container (a python3 loop inside it,
  started with ``docker exec -d``, writing only the lines that hold a canary, read back and removed at the end).
  A probe process started with a marker proves each sampler saw processes (a sampler that sees nothing would
  prove nothing); the marker is in no sampler's own command line, so only the probe can show it.
  Reading /proc costs about a fifth of a ``ps`` run (and a shell loop forks ps, grep and sleep on every tick):
  the samplers ran through every canary test and took CPU from both integration lanes.
- ``leaks_in(text, canaries, where)``: the names of the canaries found in a text (never their values).

A module of its own (not a conftest.py): imported by the lab tests of several directories.
"""

from __future__ import annotations

import os
import secrets as random_secrets
import shlex
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import yaml

from playbook_runner import BIN, LAB_INVENTORY

LAB_HOST_CONTAINERS = ("sre-lab-systemd", "sre-lab-pm2")


def lab_canaries() -> dict[str, str]:
    """name -> value for every secret of the lab vault (and the password inside each URL)."""
    proc = subprocess.run([str(BIN / "ansible-vault"), "view", str(LAB_INVENTORY / "group_vars" / "all" / "vault.yml"),
                           "--vault-id", "lab@%s" % (LAB_INVENTORY / ".vault-pass")],
                          capture_output=True, text=True, check=True)
    values = yaml.safe_load(proc.stdout)
    found = {}
    for key, value in values.items():
        value = str(value)
        found[key] = value
        if "://" in value:
            parts = urlsplit(value)
            if parts.password:
                found[key + " (password)"] = unquote(parts.password)
                found[key + " (quoted password)"] = parts.password
    for key, value in list(found.items()):
        if "password" in key and quote(value, safe="") != value:
            found[key + " (url-quoted)"] = quote(value, safe="")
    return {k: v for k, v in found.items() if len(v) >= 8}


def leaks_in(text: str, canaries: dict[str, str], where: str) -> list[str]:
    return ["the %s in %s" % (name, where) for name, value in canaries.items() if value in (text or "")]


def command_lines():
    """Every process's whole command line, as ``ps -ww -eo args`` shows it (arguments joined by spaces)."""
    lines = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry.name, "rb") as handle:
                raw = handle.read()
        except OSError:  # the process ended meanwhile
            continue
        if raw:
            lines.append(raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace"))
    return lines


class ArgvSampler(threading.Thread):
    """Reads every command line on the control node (command_lines) every 50 ms and keeps those that hold one of the
    patterns (and how many samples it took): start() it, set() its stop event, join() it, read hits and samples."""

    def __init__(self, patterns):
        super().__init__(daemon=True)
        self.patterns = [p for p in patterns if p]
        self.hits: set[str] = set()
        self.samples = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            lines = command_lines()
            self.samples += 1
            for line in lines:
                if any(p in line for p in self.patterns):
                    self.hits.add(line)  # whole: a canary may come after any length
            self.stop.wait(0.05)


# The sampler inside a lab host: python3 (every lab host has it: Ansible runs there), its output path as its one
# argument, the patterns in <output>.pat (read, then removed). It stops when <output>.stop exists; <output>.n holds
# how many samples it took. The same /proc reading as command_lines().
REMOTE_SAMPLER = r"""
import os, sys, time
out = sys.argv[1]
with open(out + ".pat") as handle:
    patterns = [line for line in handle.read().splitlines() if line]
os.remove(out + ".pat")
seen, samples, started = set(), 0, time.time()


def count(n):
    with open(out + ".n.tmp", "w") as handle:
        handle.write(str(n))
    os.rename(out + ".n.tmp", out + ".n")


with open(out, "a") as hits:
    # until told to stop, or the hits file is gone (the test cleaned up), or an hour at most
    while not os.path.exists(out + ".stop") and os.path.exists(out) and time.time() - started < 3600:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % name, "rb") as handle:
                    line = handle.read().rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if line and line not in seen and any(p in line for p in patterns):
                seen.add(line)
                hits.write(line + "\n")
                hits.flush()
        samples += 1
        if samples % 10 == 1:
            count(samples)
        time.sleep(0.05)
count(samples)
"""


class LabSampler:
    """Process lists sampled every 50 ms on the control node and inside every running lab host container."""

    def __init__(self, canaries: dict[str, str], containers=LAB_HOST_CONTAINERS):
        self.canaries = dict(canaries)
        self.tag = "sre-canary-probe-%s" % random_secrets.token_hex(4)
        self.scratch = "/tmp/sre-sampler-%s" % random_secrets.token_hex(6)  # the samplers' files: not the tag
        self.containers = [c for c in containers if self._running(c)]
        self.remote: dict[str, str] = {}
        self._patterns = list(self.canaries.values()) + [self.tag]
        self._local = ArgvSampler(self._patterns)

    @staticmethod
    def _running(container):
        return subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", container], capture_output=True,
                              text=True, check=False).stdout.strip() == "true"

    @property
    def hits(self):
        return self._local.hits

    def __enter__(self):
        self._local.start()
        for container in self.containers:
            out = "%s.hits" % self.scratch
            self.remote[container] = out
            # the patterns reach the container on stdin (a 0600 file in its tmpfs /tmp), never in an argv; a detached
            # exec has no stdin, so they are written first
            subprocess.run(["docker", "exec", "-i", container, "sh", "-c",
                            "umask 077; : > %(o)s; cat > %(o)s.pat" % {"o": shlex.quote(out)}],
                           input="\n".join(self._patterns) + "\n", text=True, check=True, capture_output=True)
            subprocess.run(["docker", "exec", "-d", container, "python3", "-c", REMOTE_SAMPLER, out],
                           text=True, check=True, capture_output=True)
        # a probe in every process list: each sampler must see it
        time.sleep(0.3)
        subprocess.run(["sh", "-c", "sleep 0.4; true", self.tag], check=True)
        for container in self.containers:
            subprocess.run(["docker", "exec", container, "sh", "-c", "sleep 0.4; true", self.tag], check=False)
        return self

    def __exit__(self, *exc):
        self._local.stop.set()
        self._local.join()
        for container, out in self.remote.items():
            script = ("touch %(o)s.stop; sleep 0.3; cat %(o)s; echo; echo SAMPLES=$(cat %(o)s.n 2>/dev/null); "
                      "rm -f %(o)s %(o)s.stop %(o)s.n %(o)s.n.tmp %(o)s.pat" % {"o": shlex.quote(out)})
            text = subprocess.run(["docker", "exec", container, "sh", "-c", script], capture_output=True,
                                  text=True, check=False).stdout
            self.remote[container] = text
        return False

    def leaks(self) -> list[str]:
        """One line per canary seen in a process list (where, never the value); a sampler that did not see its
        probe is a failure too."""
        found = []
        if not any(self.tag in line for line in self.hits):
            found.append("the control node sampler did not see its probe process")
        for line in self.hits:
            if self.tag not in line:
                found += leaks_in(line, self.canaries, "a control node argv (%s)" % line.split(" ", 1)[0])
        for container, text in self.remote.items():
            lines = text.splitlines()
            samples = [int(x.split("=", 1)[1] or 0) for x in lines if x.startswith("SAMPLES=")]
            if self.tag not in text or not samples or samples[0] < 5:
                found.append("the sampler in %s did not work (probe seen: %s, samples %s)"
                             % (container, self.tag in text, samples))
            for line in lines:
                if self.tag not in line and not line.startswith("SAMPLES="):
                    found += leaks_in(line, self.canaries, "an argv in %s (%s)" % (container, line.split(" ", 1)[0]))
        return sorted(set(found))


def runner_events_text(private_data_dir: Path) -> str:
    """Every job event ansible-runner wrote (artifacts/*/job_events/*.json), as AWX would keep them."""
    parts = []
    for path in sorted(Path(private_data_dir).glob("artifacts/*/job_events/*.json")):
        parts.append(path.read_text(errors="replace"))
    return "\n".join(parts)


def runner_job(tmp_path: Path, playbook, extravars: dict, limit=None, verbosity: int = 4, check: bool = False,
               inventory=LAB_INVENTORY, extra_env=None):
    """Run a playbook the way AWX runs a job template: ansible-runner, a private data directory with the answers
    in env/extravars, the envvars and the cmdline, the project = the repository. playbook: a name under playbooks/
    or a path. Returns (runner, private data dir, incident records text); the records are in tmp_path/incidents."""
    import ansible_runner  # pylint: disable=import-outside-toplevel

    repo = LAB_INVENTORY.parents[1]
    private = Path(tmp_path) / "pdd"
    (private / "env").mkdir(parents=True)
    (private / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    envvars = {"SRE_INCIDENT_DIR": str(Path(tmp_path) / "incidents"), "ANSIBLE_CONFIG": str(repo / "ansible.cfg"),
               "ANSIBLE_NOCOLOR": "1", "PATH": "%s:%s" % (BIN, os.environ.get("PATH", ""))}
    envvars.update(extra_env or {})
    (private / "env" / "envvars").write_text(yaml.safe_dump(envvars))
    cmdline = (["--check"] if check else []) + (["-" + "v" * verbosity] if verbosity else [])
    if cmdline:
        (private / "env" / "cmdline").write_text(" ".join(cmdline))
    path = Path(playbook) if "/" in str(playbook) else repo / "playbooks" / (str(playbook) + ".yml")
    runner = ansible_runner.run(private_data_dir=str(private), project_dir=str(repo), playbook=str(path),
                                inventory=str(inventory), quiet=True, ident="job", limit=limit)
    records = "".join(p.read_text() for p in sorted((Path(tmp_path) / "incidents").glob("*")) if p.is_file())
    return runner, private, records
