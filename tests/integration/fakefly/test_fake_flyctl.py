# SPDX-License-Identifier: GPL-3.0-or-later
"""The FAKE flyctl (lab/fake-flyctl/flyctl): real flyctl JSON shapes and casing, FAKE banner, deploy and
rollback by ImageRef, secrets never printed, scale, faults, errors; and the contract with the fly parser
in plugins/module_utils/_targets.py and the app_status module, run on the fake's real output."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, ensure_collection_link, run_module

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _targets as t  # noqa: E402

FLYCTL = REPO / "lab" / "fake-flyctl" / "flyctl"
APP = "hotdash-production"
BANNER = "flyctl: FAKE (sre.runbooks lab stand-in, not Fly.io)"
STATUS_KEYS = {"ID", "Name", "Deployed", "Status", "Hostname", "Version", "AppURL", "Organization",
               "PlatformVersion", "Machines"}
MACHINE_KEYS = {"id", "name", "state", "region", "image_ref", "instance_id", "version", "private_ip", "created_at",
                "updated_at", "config", "events", "checks", "host_status"}
RELEASE_KEYS = {"ID", "Version", "Stable", "InProgress", "Reason", "Description", "Status", "DeploymentStrategy",
                "Metadata", "User", "EvaluationID", "CreatedAt", "ImageRef"}
BAD = "registry.fly.io/hotdash-production:deployment-bad-0042"


class Fly:
    """Runs the fake with its own state file."""

    def __init__(self, state: Path):
        self.state = state

    def __call__(self, *args, env=None, app=True, stdin=None):
        run_env = dict(os.environ, FAKE_FLY_STATE=str(self.state))
        run_env.pop("FAKE_FLY_FAULT", None)
        run_env.update(env or {})
        argv = [str(FLYCTL), *args] + (["--app", APP] if app else [])
        return subprocess.run(argv, capture_output=True, text=True, env=run_env, timeout=30, check=False,
                              input=stdin if stdin is not None else "")

    def ok(self, *args, **kwargs):
        proc = self(*args, **kwargs)
        assert proc.returncode == 0, proc.stderr
        return proc

    def json(self, *args, **kwargs):
        return json.loads(self.ok(*args, "--json", **kwargs).stdout)

    def status(self):
        return self.json("status")

    def releases(self):
        return self.json("releases", "--image")


@pytest.fixture
def fly(tmp_path):
    return Fly(tmp_path / "fly" / "state.json")


def assert_error(proc, *words):
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == BANNER
    assert len(lines) == 2 and lines[1].startswith("Error: "), proc.stderr
    for word in words:
        assert word in lines[1]


# ---------------------------------------------------------------- shapes and banner

@pytest.mark.parametrize("args", [("status", "--json"), ("releases", "--json"), ("logs", "--no-tail"),
                                  ("secrets", "list", "--json"), ("machine", "list", "--json"), ("nonsense",)])
def test_every_call_says_fake_on_stderr(fly, args):
    proc = fly(*args)
    assert proc.stderr.splitlines()[0] == BANNER
    assert BANNER not in proc.stdout


def test_status_shape_pascal_app_snake_machines(fly):
    doc = fly.status()
    assert set(doc) == STATUS_KEYS
    assert doc["Name"] == APP and doc["Version"] == 3 and doc["PlatformVersion"] == "machines"
    assert len(doc["Machines"]) == 2
    for machine in doc["Machines"]:
        assert set(machine) == MACHINE_KEYS
        assert machine["state"] == "started" and machine["region"] == "iad" and machine["host_status"] == "ok"
        assert set(machine["image_ref"]) == {"registry", "repository", "tag", "digest", "labels"}
        assert machine["image_ref"]["registry"] == "registry.fly.io"
        assert machine["image_ref"]["repository"] == APP
        assert machine["image_ref"]["tag"].startswith("deployment-")
        assert machine["image_ref"]["digest"].startswith("sha256:")
        assert [c["status"] for c in machine["checks"]] == ["passing"]
        assert set(machine["checks"][0]) == {"name", "status", "output", "updated_at"}
        assert all({"type", "status", "source", "timestamp"} <= set(e) for e in machine["events"])
    assert fly.json("machine", "list") == doc["Machines"]
    assert "started" in fly.ok("status").stdout  # the human form is a table, not JSON


def test_releases_shape_newest_first_image_only_with_flag(fly):
    rows = fly.releases()
    assert [r["Version"] for r in rows] == [3, 2, 1]
    for row in rows:
        assert set(row) == RELEASE_KEYS
        assert row["Status"] == "complete" and row["Stable"] is True
        assert row["ImageRef"].startswith("registry.fly.io/%s:deployment-" % APP)
    machine = fly.status()["Machines"][0]
    assert rows[0]["ImageRef"].endswith(":" + machine["image_ref"]["tag"])
    assert {r["ImageRef"] for r in fly.json("releases")} == {""}


def test_secrets_list_shape_digests_only(fly):
    rows = fly.json("secrets", "list")
    assert {r["name"] for r in rows} == {"DATABASE_URL", "SHOPIFY_API_SECRET", "SESSION_SECRET"}
    for row in rows:
        assert set(row) == {"name", "digest", "status"} and row["status"] == "Deployed"
        assert len(row["digest"]) == 16 and int(row["digest"], 16) >= 0


def test_samples_have_the_shapes_the_fake_prints():
    samples = REPO / "lab" / "fake-flyctl" / "samples"
    assert set(json.loads((samples / "status.json").read_text())) == STATUS_KEYS
    bad = json.loads((samples / "status-bad-deploy.json").read_text())
    assert {m["state"] for m in bad["Machines"]} == {"stopped"}
    releases = json.loads((samples / "releases-image.json").read_text())
    assert set(releases[0]) == RELEASE_KEYS and releases[0]["Status"] == "failed" and "bad" in releases[0]["ImageRef"]
    assert all(r["ImageRef"] == "" for r in json.loads((samples / "releases.json").read_text()))
    assert set(json.loads((samples / "secrets-list.json").read_text())[0]) == {"name", "digest", "status"}


# ---------------------------------------------------------------- deploy and rollback

def test_bad_deploy_then_rollback_to_previous_image_ref(fly):
    good = fly.releases()[0]["ImageRef"]
    out = fly.ok("deploy", "--image", BAD, "--strategy", "immediate")  # immediate: checks not awaited
    assert "release v4" in out.stdout
    rows = fly.releases()
    assert rows[0]["Version"] == 4 and rows[0]["ImageRef"] == BAD
    assert rows[0]["Status"] == "failed" and rows[0]["Stable"] is False
    assert rows[0]["DeploymentStrategy"] == "IMMEDIATE"
    for machine in fly.status()["Machines"]:
        assert machine["state"] == "stopped" and machine["image_ref"]["tag"] == "deployment-bad-0042"
        assert machine["checks"][0]["status"] == "critical"
        assert sum(1 for e in machine["events"] if e["type"] == "exit") >= 3
    logs = fly.ok("logs", "--no-tail").stdout
    assert "Error: migration 0042 failed" in logs and "[PC01]" in logs

    previous = [r for r in fly.releases() if r["Status"] == "complete"][0]["ImageRef"]
    assert previous == good
    fly.ok("deploy", "--image", previous, "--strategy", "rolling")
    rows = fly.releases()
    assert rows[0]["Version"] == 5 and rows[0]["Status"] == "complete" and rows[0]["ImageRef"] == good
    for machine in fly.status()["Machines"]:
        assert machine["state"] == "started" and machine["checks"][0]["status"] == "passing"
        assert good.endswith(machine["image_ref"]["tag"])


def test_rolling_bad_deploy_stops_at_first_machine_and_fails(fly):
    proc = fly("deploy", "--image", BAD, "--strategy", "rolling", "--wait-timeout", "60")
    assert_error(proc, "release v4 failed")
    states = [(m["state"], m["image_ref"]["tag"]) for m in fly.status()["Machines"]]
    assert states[0] == ("stopped", "deployment-bad-0042")
    assert states[1][0] == "started" and states[1][1] != "deployment-bad-0042"
    assert fly.releases()[0]["Status"] == "failed"


def test_bluegreen_bad_deploy_leaves_machines_alone(fly):
    before = fly.status()["Machines"]
    assert_error(fly("deploy", "--image", BAD, "--strategy", "bluegreen"), "failed")
    after = fly.status()["Machines"]
    assert [m["image_ref"] for m in after] == [m["image_ref"] for m in before]
    assert {m["state"] for m in after} == {"started"}


def test_deploy_keeps_a_digest_given_in_the_ref(fly):
    fly.ok("deploy", "--image", "registry.fly.io/hotdash-production:deployment-x@sha256:abc123", "--strategy",
           "immediate")
    ref = fly.status()["Machines"][0]["image_ref"]
    assert (ref["tag"], ref["digest"]) == ("deployment-x", "sha256:abc123")


# ---------------------------------------------------------------- secrets

def test_secret_values_are_never_printed_or_stored(fly):
    canary = "canary-%d-Zq9" % os.getpid()
    outputs = []
    outputs.append(fly.ok("secrets", "set", "SHOPIFY_API_SECRET=" + canary, "NEW_TOKEN=" + canary + "x"))
    outputs.append(fly.ok("secrets", "set", "STAGED_ONE=" + canary, "--stage"))
    outputs.append(fly("secrets", "set", canary))  # no NAME=: must not echo the argument
    outputs.append(fly("secrets", "set", "1" + canary + "=v"))  # bad name: must not echo it either
    outputs.append(fly.ok("secrets", "list", "--json"))
    outputs.append(fly.ok("secrets", "list"))
    outputs.append(fly.ok("status", "--json"))
    outputs.append(fly.ok("logs", "--no-tail"))
    for proc in outputs:
        assert canary not in proc.stdout and canary not in proc.stderr
    for path in fly.state.parent.iterdir():
        assert canary not in path.read_text(), path
    assert outputs[2].returncode == 1 and outputs[3].returncode == 1
    rows = {r["name"]: r for r in fly.json("secrets", "list")}
    assert rows["SHOPIFY_API_SECRET"]["digest"] == hashlib.sha256(canary.encode()).hexdigest()[:16]
    assert rows["SHOPIFY_API_SECRET"]["status"] == "Deployed" and rows["STAGED_ONE"]["status"] == "Staged"
    assert "Update secrets" in fly.releases()[0]["Description"]  # deployed secrets make a release


def test_secrets_import_reads_name_value_lines_on_stdin_and_never_echoes_them(fly):
    canary = "canary-%d-Import q=#'\"$x" % os.getpid()
    done = fly.ok("secrets", "import", stdin="# a comment\n\nIMPORTED_ONE=%s\nIMPORTED_TWO=\n" % canary)
    bad = fly("secrets", "import", stdin=canary + "\n")  # no NAME=: the line is not echoed
    empty = fly("secrets", "import", stdin="")
    for proc in (done, bad, empty):
        assert canary not in proc.stdout and canary not in proc.stderr
    assert canary not in fly.state.read_text()
    assert_error(bad, "line 1")
    assert empty.returncode == 1
    rows = {r["name"]: r for r in fly.json("secrets", "list")}
    assert rows["IMPORTED_ONE"]["digest"] == hashlib.sha256(canary.encode()).hexdigest()[:16]
    assert rows["IMPORTED_TWO"]["digest"] == hashlib.sha256(b"").hexdigest()[:16]
    assert "Update secrets: IMPORTED_ONE, IMPORTED_TWO" in fly.releases()[0]["Description"]


def test_secrets_unset_and_deploy_staged(fly):
    fly.ok("secrets", "set", "A_B=1", "--stage")
    fly.ok("secrets", "deploy")
    assert {r["name"]: r["status"] for r in fly.json("secrets", "list")}["A_B"] == "Deployed"
    fly.ok("secrets", "unset", "A_B")
    assert "A_B" not in {r["name"] for r in fly.json("secrets", "list")}
    assert_error(fly("secrets", "unset", "A_B"), "not set")


def test_a_required_secret_unset_stops_the_app_until_it_is_set_again(fly):
    # runbook 004: "Application won't start after secret update"
    fly("secrets", "unset", "SESSION_SECRET")
    machines = fly.status()["Machines"]
    assert {m["state"] for m in machines} == {"stopped"}
    assert {c["status"] for m in machines for c in m["checks"]} == {"critical"}
    assert "required secret SESSION_SECRET is not set, refusing to start" in fly.ok("logs", "--no-tail").stdout
    fly.ok("secrets", "set", "SESSION_SECRET=lab-value")
    machines = fly.status()["Machines"]
    assert {m["state"] for m in machines} == {"started"}
    assert {c["status"] for m in machines for c in m["checks"]} == {"passing"}


# ---------------------------------------------------------------- scale

def test_scale_count_and_memory(fly):
    fly.ok("scale", "count", "4", "--yes")
    machines = fly.status()["Machines"]
    assert len(machines) == 4 and len({m["id"] for m in machines}) == 4
    assert {m["state"] for m in machines} == {"started"}
    assert len({json.dumps(m["image_ref"], sort_keys=True) for m in machines}) == 1
    fly.ok("scale", "count", "1")
    assert [m["id"] for m in fly.status()["Machines"]] == [machines[0]["id"]]
    fly.ok("scale", "memory", "2048")
    machine = fly.status()["Machines"][0]
    assert machine["config"]["guest"]["memory_mb"] == 2048 and machine["instance_id"] != machines[0]["instance_id"]
    assert fly.json("scale", "show") == [{"Process": "app", "Count": 1, "CPUKind": "shared", "CPUs": 1,
                                          "Memory": 2048, "Regions": {"iad": 1}}]


@pytest.mark.parametrize("args, words", [
    (("scale", "memory", "1000"), ("multiple of 256",)),
    (("scale", "memory", "lots"), ("invalid memory",)),
    (("scale", "count", "-1"), ("unknown shorthand flag",)),
    (("scale", "count", "two"), ("invalid count",)),
])
def test_scale_rejects_bad_sizes(fly, args, words):
    assert_error(fly(*args), *words)
    assert len(fly.status()["Machines"]) == 2


# ---------------------------------------------------------------- machines and faults

def test_machine_stop_start_restart(fly):
    first = fly.status()["Machines"][0]["id"]
    fly.ok("machine", "stop", first)
    assert fly.status()["Machines"][0]["state"] == "stopped"
    fly.ok("machine", "start", first)
    assert fly.status()["Machines"][0]["state"] == "started"
    fly.ok("machine", "restart", first, "--force")
    machine = fly.status()["Machines"][0]
    assert machine["state"] == "started" and machine["checks"][0]["status"] == "passing"
    assert machine["events"][0]["type"] == "start"


def test_crash_fault_is_one_shot(fly):
    fly.ok("fake-fault", "crash")
    machines = fly.status()["Machines"]
    assert {m["state"] for m in machines} == {"stopped"}
    assert "ECONNREFUSED" in fly.ok("logs", "--no-tail").stdout
    fly.ok("machine", "start", *[m["id"] for m in machines])
    assert {m["state"] for m in fly.status()["Machines"]} == {"started"}


def test_crashloop_fault_sticks_until_cleared(fly):
    fly.ok("fake-fault", "crashloop")
    first = fly.status()["Machines"][0]["id"]
    assert_error(fly("machine", "restart", first), "did not reach state started")
    assert fly.status()["Machines"][0]["state"] == "stopped"
    fly.ok("fake-fault", "none")
    fly.ok("machine", "restart", first)
    assert fly.status()["Machines"][0]["state"] == "started"


def test_env_fault_applies_while_set(fly):
    doc = fly.status()
    assert {m["state"] for m in doc["Machines"]} == {"started"}
    crashed = fly.json("status", env={"FAKE_FLY_FAULT": "crashloop"})
    assert {m["state"] for m in crashed["Machines"]} == {"stopped"}
    first = crashed["Machines"][0]["id"]
    assert fly("machine", "start", first, env={"FAKE_FLY_FAULT": "crashloop"}).returncode == 0
    assert fly.status()["Machines"][0]["state"] == "stopped"
    fly.ok("machine", "start", first)
    assert fly.status()["Machines"][0]["state"] == "started"
    assert_error(fly("status", env={"FAKE_FLY_FAULT": "meteor"}), "FAKE_FLY_FAULT")


def test_oom_fault_cleared_by_more_memory(fly):
    fly.ok("fake-fault", "oom")
    machine = fly.status()["Machines"][0]
    assert machine["checks"][0]["status"] == "critical"
    assert any(e.get("request", {}).get("exit_event", {}).get("oom_killed") for e in machine["events"])
    assert "Out of memory" in fly.ok("logs", "--no-tail").stdout
    fly.ok("scale", "memory", "2048")
    assert {m["checks"][0]["status"] for m in fly.status()["Machines"]} == {"passing"}


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("args, words", [
    (("frobnicate",), ('unknown command "frobnicate" for "flyctl"',)),
    (("machine", "explode", "x"), ('unknown command "explode" for "flyctl machine"',)),
    (("status", "--json", "--colour"), ("unknown flag: --colour",)),
    (("machine", "restart", "doesnotexist"), ("machine not found",)),
    (("logs",), ("--no-tail",)),
    (("deploy",), ("--image",)),
    (("deploy", "--image", "registry.fly.io/x:1", "--strategy", "yolo"), ("unsupported deployment strategy",)),
    (("-a", APP, "deploy", "--image"), ("flag needs an argument",)),
    (("fake-fault", "meteor"), ("unknown fault",)),
])
def test_errors_are_one_line_and_exit_1(fly, args, words):
    assert_error(fly(*args, app="-a" not in args), *words)


def test_unknown_app_and_missing_app(fly):
    assert_error(fly("status", "--json", "-a", "nope", app=False), 'Could not find App "nope"')
    assert_error(fly("status", "--json", app=False), "specify with the -a flag")


def test_unwritable_state_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_error(Fly(blocker / "sub" / "state.json")("status", "--json"), "FAKE_FLY_STATE")


# ---------------------------------------------------------------- the contract with our parser and module

def test_targets_fly_parser_reads_the_fake(fly):
    out = fly.ok("status", "--json")
    doc = t.parse_fly_json(out.stdout, "flyctl status")
    items = t.fly_instances(doc, time.time())
    assert [i["state"] for i in items] == ["running", "running"]
    assert {i["health"] for i in items} == {"healthy"}
    assert all(i["uptime_s"] is not None for i in items)
    release = t.fly_release(doc, items)
    machine = doc["Machines"][0]["image_ref"]
    assert release["image_ref"] == "registry.fly.io/%s:%s@%s" % (APP, machine["tag"], machine["digest"])
    assert release["version"] == 3
    assert t.findings_for("fly", APP, items) == []
    rows = t.parse_fly_releases(fly.ok("releases", "--json", "--image").stdout)
    assert [r["version"] for r in rows] == [3, 2, 1] and rows[0]["status"] == "complete"

    fly.ok("deploy", "--image", BAD, "--strategy", "immediate")
    doc = t.parse_fly_json(fly.ok("status", "--json").stdout)
    items = t.fly_instances(doc, time.time())
    assert [(i["state"], i["health"]) for i in items] == [("stopped", "unhealthy")] * 2
    assert all(i["restarts"] >= 3 for i in items)
    codes = {f["code"] for f in t.findings_for("fly", APP, items)}
    assert {"app_stopped", "instance_unhealthy"} <= codes
    assert t.is_running(items) is False
    rows = t.parse_fly_releases(fly.ok("releases", "--json", "--image").stdout)
    assert (rows[0]["version"], rows[0]["status"], rows[0]["image_ref"]) == (4, "failed", BAD)


def test_rollback_to_the_recorded_release_id_restores_it_exactly(fly):
    """The target role records status.release.id (ref with digest) and deploys it back: it must round-trip."""
    doc = fly.status()
    recorded = t.fly_release(doc, t.fly_instances(doc, time.time()))["id"]
    fly.ok("deploy", "--image", BAD, "--strategy", "immediate")
    fly.ok("deploy", "--image", recorded, "--strategy", "immediate")
    doc = fly.status()
    assert t.fly_release(doc, t.fly_instances(doc, time.time()))["id"] == recorded


def test_app_status_module_on_the_fake(fly):
    fly.ok("status", "--json")  # create the state
    args = {"kind": "fly", "name": APP, "flyctl": str(FLYCTL)}
    env = {"FAKE_FLY_STATE": str(fly.state)}
    result = run_module("app_status", args, env=env)
    assert result["rc"] == 0, result["raw"]
    assert result["changed"] is False and result["running"] is True and result["state"] == "running"
    assert result["release"]["version"] == 3 and result["release"]["image_ref"].startswith("registry.fly.io/")
    assert result["findings"] == []

    fly.ok("fake-fault", "crash")
    result = run_module("app_status", args, env=env, check_mode=True)
    assert result["rc"] == 0, result["raw"]
    assert result["running"] is False and result["state"] == "stopped"
    assert "app_stopped" in {f["code"] for f in result["findings"]}

    result = run_module("app_status", dict(args, name="no-such-app"), env=env)
    assert result["rc"] == 1 and 'Could not find App \\"no-such-app\\"' in result["raw"]


# ---------------------------------------------------------------- credentials and logs --json

TOKEN = "FlyV1 fm2_fake-token, with: \"quotes\" and 'ticks'"
TOKEN_SHA = hashlib.sha256(TOKEN.encode()).hexdigest()


def config_dir_with(tmp_path, token, name="cfg"):
    directory = tmp_path / name
    directory.mkdir()
    (directory / "config.yml").write_text("metrics_token: x\naccess_token: %s\n" % json.dumps(token))
    return directory


def test_token_is_found_like_flyctl_and_never_printed(fly, tmp_path):
    """config.yml in FLY_CONFIG_DIR, overridden by FLY_ACCESS_TOKEN / FLY_API_TOKEN (first non-empty), overridden
    by --access-token; with FAKE_FLY_REQUIRE_TOKEN_SHA256 a missing or other token fails like flyctl."""
    need = {"FAKE_FLY_REQUIRE_TOKEN_SHA256": TOKEN_SHA, "HOME": str(tmp_path), "FLY_API_TOKEN": "", "FLY_ACCESS_TOKEN": ""}
    assert_error(fly("status", "--json", env=need), "No access token available")
    good = config_dir_with(tmp_path, TOKEN)
    bad = config_dir_with(tmp_path, "wrong-tok-42", "bad")
    runs = [fly("status", "--json", env=dict(need, FLY_CONFIG_DIR=str(good))),
            fly("status", "--json", env=dict(need, FLY_CONFIG_DIR=str(bad), FLY_API_TOKEN=TOKEN)),
            fly("status", "--json", env=dict(need, FLY_CONFIG_DIR=str(bad), FLY_ACCESS_TOKEN=TOKEN, FLY_API_TOKEN="x")),
            fly("status", "--json", "--access-token", TOKEN, env=dict(need, FLY_CONFIG_DIR=str(bad)))]
    assert [r.returncode for r in runs] == [0, 0, 0, 0], [r.stderr for r in runs]
    wrong = fly("status", "--json", env=dict(need, FLY_CONFIG_DIR=str(good), FLY_API_TOKEN="wrong-tok-42"))
    assert_error(wrong, "You must be authenticated")
    assert fly("version", env=need, app=False).returncode == 0
    for proc in runs + [wrong]:
        assert TOKEN not in proc.stdout + proc.stderr and "wrong-tok-42" not in proc.stdout + proc.stderr
    assert TOKEN not in fly.state.read_text()


def test_logs_json_is_flyctls_render_json_of_log_entries(fly):
    fly.ok("fake-fault", "crash")
    text = fly.ok("logs", "--no-tail").stdout.splitlines()
    out = fly.ok("logs", "--no-tail", "--json").stdout
    assert out.startswith("{\n    \"level\": ") and "\n}\n{\n" in out  # indented, one object after another
    decoder, pos, entries = json.JSONDecoder(), 0, []
    while pos < len(out.rstrip()):
        obj, pos = decoder.raw_decode(out, pos)
        entries.append(obj)
        pos += 1
    assert len(entries) == len(text)
    assert set(entries[0]) == {"level", "instance", "message", "region", "timestamp", "meta"}
    assert set(entries[0]["meta"]) == {"Instance", "Region", "Event", "HTTP", "Error", "URL"}
    assert any("ECONNREFUSED" in e["message"] for e in entries)
    parsed = t.parse_fly_logs(out)
    assert [p["message"] for p in parsed] == [e["message"] for e in entries]
    assert all(p["epoch"] is not None for p in parsed)
    assert t.fly_log_lines(parsed)[0].split()[:3] == [entries[0]["timestamp"], entries[0]["instance"], "iad"]
