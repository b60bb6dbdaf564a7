# SPDX-License-Identifier: GPL-3.0-or-later
# sre-lane: local (the FAKE flyctl and a FAKE docker on PATH, state under tmp_path: no engine, no lab)
"""The restart cooldown of sre.runbooks.target (issue 11, "Blast radius and leftovers"), on localhost with the
FAKE flyctl (lab/fake-flyctl; the fly kind runs on the control node, no systemd or docker needed):

- two restarts started at once: exactly one restarts, the other is refused by the cooldown;
- a record written by one run is honoured by a fresh run (another control-side tmp dir, another incident dir,
  as a new AWX job container), and it lives where target_cooldown_dir says (sre_state_dir by default);
- the record is replaced atomically: many concurrent claims lose no stamp, a reader never sees half a record.

And the compose hard restart's service selection (no docker: fake docker / docker-compose executables that log
their argv): the app's service only, the project without the database service, the database only when named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from playbook_runner import run_playbook

REPO = Path(__file__).resolve().parents[3]
FLYCTL = REPO / "lab" / "fake-flyctl" / "flyctl"
SCRIPT = REPO / "roles" / "target" / "files" / "restart_cooldown.py"
APP = "hotdash-production"

RESTART = """
- hosts: localhost
  gather_facts: false
  tasks:
    - {name: Restart, ansible.builtin.include_role: {name: sre.runbooks.target, tasks_from: restart}}
"""

HOOK = """
- name: Note that this run restarts
  ansible.builtin.lineinfile:
    path: "{{ hook_log }}"
    line: "{{ run_name }} {{ now().timestamp() }}"
    create: true
    mode: "0600"
"""


@pytest.fixture
def fly(tmp_path, collections_path):
    """restart(run_name, variables=None) -> PlaybookResult: target restart of the fake Fly app; every run gets its own
    control-side temporary directories (TMPDIR, ANSIBLE_LOCAL_TEMP, ANSIBLE_REMOTE_TEMP) and incident dir, as a
    fresh AWX job container would, and shares only the fake Fly state and the host directory tmp_path/host."""
    book = tmp_path / "restart.yml"
    book.write_text(RESTART)
    hook = tmp_path / "hook.yml"
    hook.write_text(HOOK)

    def restart(run_name, variables=None):
        run_dir = Path(tempfile.mkdtemp(prefix="run-%s-" % run_name, dir=str(tmp_path)))
        for sub in ("tmp", "local", "remote"):
            (run_dir / sub).mkdir()
        merged = {"sre_target_kind": "fly", "sre_app_name": APP, "sre_fly_app": APP, "sre_flyctl": str(FLYCTL),
                  "sre_runbook": "app_down", "sre_state_dir": str(tmp_path / "host" / "state"),
                  "target_health_retries": 1, "target_health_delay": 0,
                  "target_before_restart_tasks_file": str(hook), "hook_log": str(tmp_path / "restarts.log"),
                  "run_name": run_name}
        merged.update(variables or {})
        return run_playbook(book, tmp_path=run_dir, target="localhost", extra_vars=merged, verbosity=1, timeout=600,
                            incident_dir=run_dir / "incidents",
                            env={"FAKE_FLY_STATE": str(tmp_path / "fly" / "state.json"),
                                 "TMPDIR": str(run_dir / "tmp"), "ANSIBLE_LOCAL_TEMP": str(run_dir / "local"),
                                 "ANSIBLE_REMOTE_TEMP": str(run_dir / "remote"), "FAKE_FLY_REQUIRE_TOKEN_SHA256": None,
                                 "FLY_API_TOKEN": None, "FLY_ACCESS_TOKEN": None, "FLY_CONFIG_DIR": None,
                                 "FAKE_FLY_FAULT": None})

    return restart


def restarts_logged(tmp_path):
    log = tmp_path / "restarts.log"
    return log.read_text().splitlines() if log.exists() else []


def fly_stops(tmp_path):
    """Graceful stops the fake Fly app went through (one per machine and restart)."""
    state = json.loads((tmp_path / "fly" / "state.json").read_text())
    return sum("Sending signal SIGINT" in line for line in state["apps"][APP]["logs"])


def flat(text):
    return " ".join(text.split())


def test_two_restarts_started_at_once_only_one_restarts(fly, tmp_path):
    warmup = fly("warmup", {"target_cooldown_dir": str(tmp_path / "elsewhere")})  # the fake's state exists
    assert warmup.rc == 0, warmup.output[-3000:]
    stops_before = fly_stops(tmp_path)
    (tmp_path / "restarts.log").unlink()
    results = {}
    barrier = threading.Barrier(2)

    def one(name):
        barrier.wait()
        results[name] = fly(name)

    threads = [threading.Thread(target=one, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ok = [name for name, r in results.items() if r.rc == 0]
    refused = [name for name, r in results.items() if r.rc != 0]
    assert len(ok) == 1 and len(refused) == 1, {n: r.output[-3000:] for n, r in results.items()}
    assert "Restart cooldown" in flat(results[refused[0]].output) and "s ago by app_down" in flat(
        results[refused[0]].output), results[refused[0]].output[-3000:]
    assert [line.split()[0] for line in restarts_logged(tmp_path)] == ok  # only the winner ran the hook
    assert fly_stops(tmp_path) - stops_before == 2  # one restart of the two machines, not two
    record = json.loads((tmp_path / "host" / "state" / "cooldown" / (APP + ".json")).read_text())
    assert [e["runbook"] for e in record["restarts"]] == ["app_down"]
    assert not list((tmp_path / "host").rglob("*.tmp"))


def test_a_fresh_run_honours_the_record_of_an_earlier_one(fly, tmp_path):
    first = fly("first")
    assert first.rc == 0, first.output[-3000:]
    record = tmp_path / "host" / "state" / "cooldown" / (APP + ".json")
    assert record.exists() and oct(record.stat().st_mode & 0o777) == "0o640"

    again = fly("fresh")  # another control-side tmp dir, nothing shared but the host's directory
    assert again.rc != 0 and "less than target_cooldown_min_interval_s (300 s) ago" in flat(again.output), \
        again.output[-3000:]
    assert restarts_logged(tmp_path) == restarts_logged(tmp_path)[:1] and len(restarts_logged(tmp_path)) == 1

    # the per-runbook limit counts the same record: max 1 in the window, no minimum interval
    limited = fly("limited", {"target_cooldown_max": 1, "target_cooldown_min_interval_s": 0})
    assert limited.rc != 0 and "1 automatic restarts by app_down of %s" % APP in flat(limited.output), \
        limited.output[-3000:]
    # another runbook has its own limit, and the record says who restarted
    other = fly("other", {"target_cooldown_max": 1, "target_cooldown_min_interval_s": 0, "sre_runbook": "secrets"})
    assert other.rc == 0, other.output[-3000:]
    doc = json.loads(record.read_text())
    assert [e["runbook"] for e in doc["restarts"]] == ["app_down", "secrets"]
    assert all(e["job"].startswith("ansible-playbook by ") for e in doc["restarts"])
    assert len(restarts_logged(tmp_path)) == 2


def test_the_record_lives_in_target_cooldown_dir(fly, tmp_path):
    """For Fly the only host is the control node: target_cooldown_dir puts the record where every run sees it."""
    shared = tmp_path / "persistent-volume" / "sre-cooldown"
    assert fly("one", {"target_cooldown_dir": str(shared)}).rc == 0
    assert (shared / (APP + ".json")).exists() and not (tmp_path / "host" / "state" / "cooldown").exists()
    refused = fly("two", {"target_cooldown_dir": str(shared)})
    assert refused.rc != 0 and str(shared) in flat(refused.output), refused.output[-3000:]
    assert fly("three").rc == 0  # another directory, another record: the directory is what carries it
    assert len(restarts_logged(tmp_path)) == 2


def test_the_old_per_host_record_still_counts(fly, tmp_path):
    state = tmp_path / "host" / "state"
    state.mkdir(parents=True)
    now = int(time.time())
    (state / "cooldown.json").write_text(json.dumps({"app_down": [now - 30, now - 20, now - 10]}))
    refused = fly("after-upgrade", {"target_cooldown_min_interval_s": 0})
    assert refused.rc != 0 and "3 automatic restarts by app_down" in flat(refused.output), refused.output[-3000:]
    assert restarts_logged(tmp_path) == []


def test_check_mode_claims_nothing(fly, tmp_path):
    book = tmp_path / "restart.yml"
    result = run_playbook(book, tmp_path=tmp_path, target="localhost", check=True, verbosity=1, extra_vars={
        "sre_target_kind": "fly", "sre_app_name": APP, "sre_fly_app": APP, "sre_flyctl": str(FLYCTL),
        "sre_state_dir": str(tmp_path / "host" / "state")},
        env={"FAKE_FLY_STATE": str(tmp_path / "fly" / "state.json"), "FAKE_FLY_REQUIRE_TOKEN_SHA256": None})
    assert result.rc == 0 and result.changed() == 0, result.output[-3000:]
    assert "0 of 3 automatic restarts used in the window" in flat(result.output)
    assert not (tmp_path / "host" / "state" / "cooldown").exists()


# ---- the claim script itself: many claims at once, a reader all along ------------------------------------------

def claim(directory, index, **params):
    args = {"dir": str(directory), "key": "web", "runbook": "app_down", "max": 0, "min_interval_s": 0,
            "job": "claim-%d" % index}
    args.update(params)
    argv = [sys.executable, str(SCRIPT), "--claim"]
    for name, value in args.items():
        argv += ["--" + name.replace("_", "-"), str(value)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_claims_lose_nothing_and_a_reader_never_sees_half_a_record(tmp_path):
    directory = tmp_path / "cooldown"
    record = directory / "web.json"
    seen, bad, stop = [], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                text = record.read_text()
            except FileNotFoundError:
                continue
            try:
                seen.append(len(json.loads(text)["restarts"]))
            except ValueError:
                bad.append(text)

    watcher = threading.Thread(target=reader)
    watcher.start()
    procs = [claim(directory, i) for i in range(24)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    stop.set()
    watcher.join()
    assert all(o["claimed"] and o["allowed"] for o in outs), outs
    doc = json.loads(record.read_text())
    assert sorted(e["job"] for e in doc["restarts"]) == sorted("claim-%d" % i for i in range(24))  # no lost update
    assert bad == [] and seen and max(seen) == 24
    assert sorted(p.name for p in directory.iterdir()) == ["web.json", "web.lock"]  # no temporary file left


def test_concurrent_claims_with_a_minimum_interval_allow_exactly_one(tmp_path):
    directory = tmp_path / "cooldown"
    procs = [claim(directory, i, min_interval_s=300, max=3) for i in range(8)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert sorted(o["reason"] for o in outs) == ["interval"] * 7 + ["ok"], outs
    assert len(json.loads((directory / "web.json").read_text())["restarts"]) == 1


def test_an_unreadable_record_refuses_the_restart(tmp_path):
    directory = tmp_path / "cooldown"
    directory.mkdir()
    (directory / "web.json").write_text('{"restarts": [{"at": 17')  # what a non-atomic writer could leave
    out = json.loads(claim(directory, 0).communicate(timeout=60)[0])
    assert out.get("failed") and "not JSON" in out["msg"], out


# ---- compose hard restart: which services are recreated (fake docker, no engine) -------------------------

FAKE_DOCKER = r"""#!/bin/sh
# FAKE docker / docker-compose: logs its argv, answers 'compose version' as told, lists the project's services.
echo "$(basename "$0") $*" >> "$FAKE_LOG"
case "$(basename "$0") $*" in
  "docker compose version"*) [ "$FAKE_COMPOSE_V2" = 1 ] && echo "Docker Compose version v2.27.0" && exit 0; exit 1 ;;
  *" config --services"*) printf 'web\nworker\ndb\nproxy\n'; exit 0 ;;
esac
exit 0
"""

HARD = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Hard restart step of the compose kind
      ansible.builtin.include_role: {name: sre.runbooks.target, tasks_from: compose/restart_hard}
"""


@pytest.fixture
def compose_hard(tmp_path, collections_path):
    """run(variables, v2=True) -> (result, [the 'up' argv logged, split]) of the compose kind's hard restart step."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("docker", "docker-compose"):
        (bindir / name).write_text(FAKE_DOCKER)
        (bindir / name).chmod(0o755)
    book = tmp_path / "hard.yml"
    book.write_text(HARD)
    log = tmp_path / "docker.log"

    def run(variables, v2=True):
        if log.exists():
            log.unlink()
        merged = {"sre_target_kind": "compose", "sre_app_name": "web", "sre_compose_project": "shop",
                  "sre_compose_project_dir": str(tmp_path), "sre_db_service": "db"}
        merged.update(variables)
        result = run_playbook(book, tmp_path=tmp_path, target="localhost", extra_vars=merged, verbosity=1,
                              env={"PATH": "%s:%s" % (bindir, os.environ["PATH"]), "FAKE_LOG": str(log),
                                   "FAKE_COMPOSE_V2": "1" if v2 else "0"})
        lines = log.read_text().splitlines() if log.exists() else []
        return result, [line.split() for line in lines if " up " in line]

    return run


@pytest.mark.parametrize("v2, prefix", [(True, ["docker", "compose"]), (False, ["docker-compose"])])
@pytest.mark.parametrize("variables, services", [
    ({}, ["web"]),  # the app's service only
    ({"target_compose_restart_project": True}, ["web", "worker", "proxy"]),  # the project, never the database
    ({"target_compose_restart_project": True, "sre_db_service": ""}, ["web", "worker", "db", "proxy"]),  # unknown db
    ({"target_compose_restart_project": True, "target_db_service": "worker"}, ["web", "db", "proxy"]),
    ({"target_compose_restart_services": ["web", "worker"]}, ["web", "worker"]),
    ({"target_compose_restart_services": ["web", "db"], "target_compose_restart_project": True}, ["web", "db"]),  # named
])
def test_the_compose_hard_restart_recreates_the_app_never_the_database_unless_named(
        compose_hard, variables, services, v2, prefix):
    result, ups = compose_hard(variables, v2=v2)
    assert result.rc == 0, result.output[-3000:]
    assert len(ups) == 1, ups
    up = ups[0]
    assert up[:len(prefix)] == prefix and up[len(prefix):len(prefix) + 4] == ["-f", "docker-compose.yml", "-p", "shop"]
    assert "--force-recreate" in up and "--no-deps" in up  # a dependency (the database) is never recreated with it
    assert up[up.index("-t") + 2:] == services, up
    assert "Recreate %s" % ", ".join(services) in flat(result.output), result.output[-3000:]


def test_the_compose_hard_restart_refuses_a_service_the_project_does_not_have(compose_hard):
    result, ups = compose_hard({"target_compose_restart_services": ["web", "cache"]})
    assert result.rc != 0 and ups == [] and "cache" in flat(result.output), result.output[-3000:]
