# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for plugins/module_utils/_targets.py on recorded outputs of systemctl, the Docker API,
docker compose v2 (JSON Lines and the older array), pm2 jlist and flyctl (status, releases)."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _targets as t  # noqa: E402

# --- systemctl show saasresto.service --property=... (systemd 252, Debian 12)
SYSTEMCTL_RUNNING = """Id=saasresto.service
LoadState=loaded
ActiveState=active
SubState=running
MainPID=412
NRestarts=2
Result=success
ActiveEnterTimestampMonotonic=5000000000
ExecMainStartTimestampMonotonic=5000000000
MemoryCurrent=52428800
CPUUsageNSec=3000000000
FragmentPath=/etc/systemd/system/saasresto.service
UnitFileState=enabled
"""
SYSTEMCTL_CRASHLOOP = """Id=saasresto.service
LoadState=loaded
ActiveState=activating
SubState=auto-restart
MainPID=0
NRestarts=7
Result=exit-code
ActiveEnterTimestampMonotonic=0
MemoryCurrent=[not set]
CPUUsageNSec=[not set]
"""
SYSTEMCTL_FAILED = "Id=saasresto.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\nMainPID=0\nNRestarts=5\n"
SYSTEMCTL_MISSING = "Id=nope.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=0\n"

# --- GET /containers/{id}/json on Docker 20.10 for a compose v1 container (trimmed)
INSPECT_WEB = {
    "Id": "c2a51261b7e0cc9e7f83bd4f4eafcecafd58da55c5b9165b3fa033c1dad52378",
    "Name": "/sretgt_web_1",
    "RestartCount": 0,
    "Image": "sha256:89dc1845b3a68cea3410ce312dc5c0588d86b0d2481a3d789b1b869db6fe2950",
    "State": {"Status": "running", "Running": True, "Pid": 14879, "ExitCode": 0,
              "StartedAt": "2026-11-22T11:46:51.167242633Z", "FinishedAt": "2026-11-22T11:46:50.799470422Z",
              "Health": {"Status": "healthy", "FailingStreak": 0}},
    "Config": {"Image": "sre-target-web:current", "Labels": {
        "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False",
        "com.docker.compose.project": "sretgt", "com.docker.compose.service": "web",
        "com.docker.compose.version": "1.29.2"}},
}
STATS_WEB = {"memory_stats": {"usage": 20000000, "stats": {"inactive_file": 4000000}},
             "cpu_stats": {"cpu_usage": {"total_usage": 2000000000}}}

# --- docker compose ps --all --format json, compose v2.24 (JSON Lines, one object a line)
COMPOSE_V2_JSONL = "\n".join(json.dumps(d) for d in [
    {"Command": "\"node /app/server.js\"", "CreatedAt": "2024-05-02 10:00:00 +0000 UTC", "ExitCode": 0,
     "Health": "healthy", "ID": "0b1c2d3e4f5a6b7c", "Image": "ferreteria-web:latest",
     "Labels": "com.docker.compose.project=ferreteria,com.docker.compose.service=web,"
               "com.docker.compose.image=sha256:aaaa,com.docker.compose.oneoff=False",
     "LocalVolumes": "0", "Mounts": "", "Name": "ferreteria-web-1", "Names": "ferreteria-web-1",
     "Networks": "ferreteria_default", "Ports": "0.0.0.0:8000->8000/tcp", "Project": "ferreteria",
     "Publishers": [{"URL": "0.0.0.0", "TargetPort": 8000, "PublishedPort": 8000, "Protocol": "tcp"}],
     "RunningFor": "2 hours ago", "Service": "web", "Size": "0B", "State": "running", "Status": "Up 2 hours (healthy)"},
    {"Command": "\"docker-entrypoint.s…\"", "ExitCode": 1, "Health": "", "ID": "9f8e7d6c5b4a3210",
     "Image": "postgres:15", "Labels": "com.docker.compose.project=ferreteria,com.docker.compose.service=db",
     "Name": "ferreteria-db-1", "Project": "ferreteria", "Publishers": None, "Service": "db",
     "State": "exited", "Status": "Exited (1) 3 minutes ago"},
])
# --- the same with compose v2.17 (a JSON array)
COMPOSE_V2_ARRAY = json.dumps([json.loads(line) for line in COMPOSE_V2_JSONL.splitlines()])

# --- pm2 jlist, pm2 7.0.4 (trimmed pm2_env), with the warning pm2 prints when the daemon was updated
PM2_JLIST = ">>>> In-memory PM2 is out-of-date, do:\n>>>> $ pm2 update\n" + json.dumps([
    {"pid": 15317, "name": "cookcam-api", "pm_id": 0, "monit": {"memory": 54132736, "cpu": 9},
     "pm2_env": {"name": "cookcam-api", "status": "online", "restart_time": 1, "unstable_restarts": 0,
                 "pm_uptime": 1795348031619, "created_at": 1795348031619, "exec_mode": "cluster_mode", "pm_id": 0,
                 "pm_cwd": "/srv/cookcam-api/current",
                 "pm_out_log_path": "/var/log/cookcam-api/out.log", "pm_err_log_path": "/var/log/cookcam-api/error.log",
                 "versioning": {"type": "git", "url": "git@example:cookcam.git", "revision": "4f2a9c1", "branch": "main"}}},
    {"pid": 0, "name": "cookcam-api", "pm_id": 1, "monit": {"memory": 0, "cpu": 0},
     "pm2_env": {"name": "cookcam-api", "status": "errored", "restart_time": 16, "unstable_restarts": 15,
                 "pm_uptime": 1795348031619, "exec_mode": "cluster_mode", "pm_id": 1,
                 "pm_cwd": "/srv/cookcam-api/current", "versioning": {"revision": "4f2a9c1"}}},
    {"pid": 999, "name": "worker", "pm_id": 2, "monit": {"memory": 1, "cpu": 1},
     "pm2_env": {"name": "worker", "status": "online", "restart_time": 0, "pm_uptime": 1795348031619}},
])

# --- flyctl status --json (flyctl v0.2, fly-go Machine structs; snake_case machines inside PascalCase app)
FLY_STATUS = {
    "ID": "hotdash-production", "Name": "hotdash-production", "Deployed": True, "Status": "deployed",
    "Hostname": "hotdash-production.fly.dev", "Version": 42, "AppURL": "", "Organization": {"Slug": "personal"},
    "PlatformVersion": "machines",
    "Machines": [
        {"id": "3d8d9e1a5e4908", "name": "bold-sun-1234", "state": "started", "region": "iad",
         "image_ref": {"registry": "registry.fly.io", "repository": "hotdash-production",
                       "tag": "deployment-01HX", "digest": "sha256:1111", "labels": {}},
         "instance_id": "01HX", "version": "01HX", "private_ip": "fdaa::3", "created_at": "2024-05-01T10:00:00Z",
         "updated_at": "2024-05-02T10:00:00Z",
         "events": [{"type": "start", "status": "started", "source": "flyd", "timestamp": 1714644000000},
                    {"type": "exit", "status": "stopped", "source": "flyd", "timestamp": 1714643990000},
                    {"type": "launch", "status": "created", "source": "user", "timestamp": 1714557600000}],
         "checks": [{"name": "servicecheck-00-http-3000", "status": "passing", "output": "OK"}],
         "host_status": "ok"},
        {"id": "91857e3dc43d83", "name": "red-moon-5678", "state": "stopped", "region": "iad",
         "image_ref": {"registry": "registry.fly.io", "repository": "hotdash-production",
                       "tag": "deployment-01HW", "digest": "sha256:0000"},
         "events": [], "checks": [{"name": "servicecheck-00-http-3000", "status": "critical"}], "host_status": "ok"},
    ],
}
FLY_RELEASES = json.dumps([
    {"ID": "r1", "Version": 41, "Stable": True, "InProgress": False, "Reason": "", "Description": "Deploy image",
     "Status": "complete", "DeploymentStrategy": "rolling", "Metadata": None, "User": {"Email": "a@b"},
     "EvaluationID": "", "CreatedAt": "2024-05-01T10:00:00Z", "ImageRef": "registry.fly.io/hotdash-production:deployment-01HW"},
    {"ID": "r2", "Version": 42, "Stable": True, "InProgress": False, "Reason": "", "Description": "Deploy image",
     "Status": "complete", "DeploymentStrategy": "rolling", "Metadata": None, "User": {"Email": "a@b"},
     "EvaluationID": "", "CreatedAt": "2024-05-02T10:00:00Z", "ImageRef": "registry.fly.io/hotdash-production:deployment-01HX"},
])


# ---------------------------------------------------------------- systemd
def test_systemd_running():
    inst = t.systemd_instance(t.parse_systemctl_show(SYSTEMCTL_RUNNING), now_monotonic=5100.0)
    assert inst == {"id": "saasresto.service", "name": "saasresto.service", "state": "running", "pid": 412,
                    "restarts": 2, "uptime_s": 100, "mem_bytes": 52428800, "cpu_pct": 3.0, "health": None,
                    "mem_limit_bytes": None}


@pytest.mark.parametrize("text, state, restarts", [
    (SYSTEMCTL_CRASHLOOP, "starting", 7),
    (SYSTEMCTL_FAILED, "failed", 5),
])
def test_systemd_not_running_has_no_numbers(text, state, restarts):
    inst = t.systemd_instance(t.parse_systemctl_show(text), now_monotonic=5100.0)
    assert (inst["state"], inst["restarts"], inst["pid"], inst["uptime_s"], inst["mem_bytes"]) == (
        state, restarts, None, None, None)


def test_systemd_missing_unit_is_an_error():
    with pytest.raises(t.ParseError, match="not found"):
        t.systemd_instance(t.parse_systemctl_show(SYSTEMCTL_MISSING), 1.0)


@pytest.mark.parametrize("active, sub, state", [
    ("active", "running", "running"), ("active", "exited", "running"), ("reloading", "reload", "running"),
    ("activating", "auto-restart", "starting"), ("deactivating", "stop-sigterm", "stopping"),
    ("inactive", "dead", "stopped"), ("failed", "failed", "failed"), ("maintenance", "", "unknown"),
])
def test_systemd_state_table(active, sub, state):
    assert t.systemd_state(active, sub) == state


# ---------------------------------------------------------------- docker / compose
@pytest.mark.parametrize("text, epoch", [
    ("2026-11-22T11:46:51Z", 1795348011.0),
    ("2026-11-22T11:46:51.5Z", 1795348011.5),
    ("2026-11-22T12:46:51+01:00", 1795348011.0),
    ("0001-01-01T00:00:00Z", None),
    ("", None),
])
def test_parse_rfc3339(text, epoch):
    assert t.parse_rfc3339(text) == epoch


def test_parse_rfc3339_rejects_garbage():
    with pytest.raises(t.ParseError):
        t.parse_rfc3339("yesterday")


def test_compose_inspect_running_with_stats():
    started = t.parse_rfc3339(INSPECT_WEB["State"]["StartedAt"])
    inst = t.compose_instance_from_inspect(INSPECT_WEB, now=started + 100, stats=STATS_WEB)
    assert inst["id"] == "c2a51261b7e0" and inst["name"] == "sretgt_web_1"
    assert (inst["state"], inst["pid"], inst["restarts"], inst["uptime_s"]) == ("running", 14879, 0, 100)
    assert inst["mem_bytes"] == 16000000 and inst["cpu_pct"] == 2.0 and inst["health"] == "healthy"
    assert inst["service"] == "web" and inst["image"] == "sre-target-web:current"
    release = t.compose_release([inst])
    assert release["id"] == INSPECT_WEB["Image"]
    assert release["images"] == {"web": {"image": "sre-target-web:current", "image_id": INSPECT_WEB["Image"]}}


@pytest.mark.parametrize("status, exit_code, state", [
    ("running", 0, "running"), ("restarting", 1, "starting"), ("exited", 0, "stopped"), ("exited", 137, "failed"),
    ("created", 0, "stopped"), ("paused", 0, "stopped"), ("dead", 1, "failed"), ("removing", 0, "stopping"),
    ("weird", 0, "unknown"),
])
def test_docker_state_table(status, exit_code, state):
    assert t.docker_state(status, exit_code) == state


def test_compose_inspect_exited_has_no_live_numbers():
    doc = json.loads(json.dumps(INSPECT_WEB))
    doc["State"].update(Status="exited", Running=False, Pid=0, ExitCode=1)
    doc["RestartCount"] = 4
    inst = t.compose_instance_from_inspect(doc, now=2e9, stats=STATS_WEB)
    assert (inst["state"], inst["pid"], inst["uptime_s"], inst["mem_bytes"], inst["restarts"]) == (
        "failed", None, None, None, 4)


@pytest.mark.parametrize("text", [COMPOSE_V2_JSONL, COMPOSE_V2_ARRAY], ids=["jsonlines-v2.21+", "array-v2.17"])
def test_compose_v2_ps_both_shapes(text):
    items = t.parse_compose_ps(text)
    assert [(i["service"], i["state"], i["health"]) for i in items] == [
        ("web", "running", "healthy"), ("db", "failed", None)]
    assert items[0]["image_id"] == "sha256:aaaa"
    assert [i["name"] for i in t.parse_compose_ps(text, service="db")] == ["ferreteria-db-1"]


def test_compose_ps_empty_and_broken():
    assert t.parse_compose_ps("") == []
    with pytest.raises(t.ParseError, match="line 2"):
        t.parse_compose_ps('{"Service": "web", "State": "running"}\nnot json')


# ---------------------------------------------------------------- pm2
def test_pm2_jlist_filters_app_and_maps_states():
    procs = t.parse_pm2_jlist(PM2_JLIST)
    items = t.pm2_instances(procs, "cookcam-api", now=1795348031.619 + 60)
    assert [(i["id"], i["state"], i["restarts"]) for i in items] == [("0", "running", 1), ("1", "failed", 16)]
    assert items[0]["uptime_s"] == 60 and items[0]["mem_bytes"] == 54132736 and items[0]["cpu_pct"] == 9
    assert items[1]["mem_bytes"] is None and items[1]["cpu_pct"] is None and items[1]["pid"] is None
    assert items[1]["unstable_restarts"] == 15
    assert (items[0]["out_log"], items[0]["err_log"]) == ("/var/log/cookcam-api/out.log", "/var/log/cookcam-api/error.log")
    assert items[1]["out_log"] is None and items[1]["err_log"] is None
    assert t.pm2_release(items) == {"id": "4f2a9c1", "revision": "4f2a9c1"}
    assert not t.is_running(items) and t.overall_state(items) == "failed"


def test_pm2_unknown_app_has_no_instances():
    assert t.pm2_instances(t.parse_pm2_jlist(PM2_JLIST), "nope", now=0) == []


@pytest.mark.parametrize("text", ["", "pm2 not running", "[{"])
def test_pm2_jlist_bad_output(text):
    with pytest.raises(t.ParseError):
        t.parse_pm2_jlist(text)


@pytest.mark.parametrize("status, state", sorted(t.PM2_STATES.items()))
def test_pm2_state_table(status, state):
    procs = [{"pid": 1, "name": "a", "pm_id": 0, "pm2_env": {"status": status, "pm_uptime": 1000}}]
    assert t.pm2_instances(procs, "a", now=10)[0]["state"] == state


# ---------------------------------------------------------------- fly
def test_fly_status_machines():
    doc = t.parse_fly_json("FAKE flyctl notice\n" + json.dumps(FLY_STATUS))
    items = t.fly_instances(doc, now=1714644000 + 30)
    assert [(i["id"], i["state"], i["restarts"], i["health"]) for i in items] == [
        ("3d8d9e1a5e4908", "running", 1, "healthy"), ("91857e3dc43d83", "stopped", 0, "unhealthy")]
    assert items[0]["uptime_s"] == 30 and items[0]["mem_bytes"] is None and items[0]["pid"] is None
    assert items[0]["image_ref"] == "registry.fly.io/hotdash-production:deployment-01HX@sha256:1111"
    release = t.fly_release(doc, items)
    # the started machine's image, and an id naming both images: the stopped machine is on another one, so the
    # app is not wholly on either release (a half-done rolling deploy), and a rollback to either is not a no-op
    assert release == {"id": "registry.fly.io/hotdash-production:deployment-01HW@sha256:0000,"
                             "registry.fly.io/hotdash-production:deployment-01HX@sha256:1111",
                       "image_ref": "registry.fly.io/hotdash-production:deployment-01HX@sha256:1111", "version": 42,
                       # the machines' events do not tell a deploy from a scale: no deploy time here
                       "deployed_at": None}
    same = dict(doc, Machines=[dict(m, image_ref=doc["Machines"][0]["image_ref"]) for m in doc["Machines"]])
    assert t.fly_release(same, t.fly_instances(same, now=1714644000 + 30))["id"] == \
        "registry.fly.io/hotdash-production:deployment-01HX@sha256:1111"


def test_fly_releases_newest_first():
    rows = t.parse_fly_releases(FLY_RELEASES)
    assert [(r["version"], r["image_ref"]) for r in rows] == [
        (42, "registry.fly.io/hotdash-production:deployment-01HX"),
        (41, "registry.fly.io/hotdash-production:deployment-01HW")]


@pytest.mark.parametrize("text", ["", "Error: app not found", "{broken"])
def test_fly_bad_output(text):
    with pytest.raises(t.ParseError):
        t.parse_fly_json(text)


def test_fly_status_must_be_an_object():
    with pytest.raises(t.ParseError):
        t.fly_instances([], now=0)


# ---------------------------------------------------------------- shape and findings
def _inst(state, restarts=0, health=None):
    return t.instance("x", state, restarts=restarts, health=health)


@pytest.mark.parametrize("states, overall, running", [
    ([], "stopped", False),
    (["running"], "running", True),
    (["running", "running"], "running", True),
    (["running", "failed"], "failed", False),
    (["running", "stopped"], "stopped", False),
    (["running", "starting"], "starting", False),
])
def test_overall_state(states, overall, running):
    items = [_inst(s) for s in states]
    assert t.overall_state(items) == overall and t.is_running(items) is running


@pytest.mark.parametrize("items, health, codes", [
    ([], None, ["app_missing"]),
    ([_inst("running")], {"url": "http://x/health", "ok": True}, []),
    ([_inst("running")], {"url": "http://x/health", "ok": False, "status": 502}, ["health_failed"]),
    ([_inst("stopped")], None, ["app_stopped"]),
    ([_inst("failed")], None, ["app_failed"]),
    ([_inst("starting", restarts=9)], None, ["app_crash_loop"]),
    ([_inst("starting", restarts=1)], None, ["app_starting"]),
    ([_inst("running", restarts=5)], None, ["app_restarts"]),
    ([_inst("running", health="unhealthy")], None, ["instance_unhealthy"]),
])
def test_findings(items, health, codes):
    assert [f["code"] for f in t.findings_for("systemd", "app", items, 3, health)] == codes


def test_instance_shape_is_the_same_for_every_kind():
    keys = {"id", "name", "state", "pid", "restarts", "uptime_s", "mem_bytes", "cpu_pct", "health"}
    sys_i = t.systemd_instance(t.parse_systemctl_show(SYSTEMCTL_RUNNING), 5100.0)
    dock_i = t.compose_instance_from_inspect(INSPECT_WEB, 2e9)
    pm2_i = t.pm2_instances(t.parse_pm2_jlist(PM2_JLIST), "cookcam-api", 2e9)[0]
    fly_i = t.fly_instances(FLY_STATUS, 2e9)[0]
    for item in (sys_i, dock_i, pm2_i, fly_i):
        assert keys <= set(item)


def test_instance_rejects_unknown_state():
    with pytest.raises(ValueError):
        t.instance("x", "sleepy")


def test_fly_oom_kills_are_counted_from_the_machine_events():
    machine = {"id": "m1", "state": "started", "config": {"guest": {"memory_mb": 512}}, "checks": [], "events": [
        {"type": "exit", "status": "stopped", "timestamp": 1, "request": {"exit_event": {"exit_code": 137, "oom_killed": True}}},
        {"type": "start", "status": "started", "timestamp": 2},
        {"type": "exit", "status": "stopped", "timestamp": 3, "request": {"exit_event": {"exit_code": 1, "oom_killed": False}}},
        {"type": "exit", "status": "stopped", "timestamp": 4},
        {"type": "exit", "status": "stopped", "timestamp": 5, "request": {"exit_event": {"exit_code": 137, "oom_killed": True}}},
    ]}
    item = t.fly_instances({"Machines": [machine]}, now=10)[0]
    assert (item["restarts"], item["oom_kills"], item["memory_mb"]) == (4, 2, 512)
    # a new instance (fly scale memory updates the machine): the OOM kills before it no longer count
    machine["events"].append({"type": "update", "status": "replacing", "timestamp": 6})
    assert t.fly_instances({"Machines": [machine]}, now=10)[0]["oom_kills"] == 0
    machine["events"].append({"type": "exit", "status": "stopped", "timestamp": 7,
                              "request": {"exit_event": {"exit_code": 137, "oom_killed": True}}})
    assert t.fly_instances({"Machines": [machine]}, now=10)[0]["oom_kills"] == 1
    bare = t.fly_instances({"Machines": [{"id": "m2", "state": "stopped"}]}, now=10)[0]
    assert (bare["oom_kills"], bare["memory_mb"]) == (0, None)


def test_findings_name_oom_kills_and_an_instance_at_its_memory_limit():
    fly = t.instance("m1", "stopped", restarts=4)
    fly.update(oom_kills=3, memory_mb=1024)
    up = t.instance("m2", "running", restarts=0, health="healthy")
    up.update(oom_kills=1, memory_mb=1024)
    found = {(f["code"], f["severity"]) for f in t.findings_for("fly", "hotdash", [fly, up])}
    assert ("oom_kills", "critical") in found and ("oom_kills", "warning") in found
    over = t.instance("0", "running", mem_bytes=70 * 1048576)
    over["mem_limit_bytes"] = 40 * 1048576
    near = t.instance("1", "running", mem_bytes=95 * 1048576)
    near["mem_limit_bytes"] = 100 * 1048576
    fine = t.instance("2", "running", mem_bytes=50 * 1048576)
    fine["mem_limit_bytes"] = 300 * 1048576
    limits = [f for f in t.findings_for("pm2", "cookcam-api", [over, near, fine]) if f["code"] == "memory_limit"]
    assert [f["severity"] for f in limits] == ["critical", "warning"]
    assert "70 MB, 175% of its memory limit 40 MB (max_memory_restart" in limits[0]["message"]


def test_memory_limits_of_a_unit_and_a_container():
    props = t.parse_systemctl_show(SYSTEMCTL_RUNNING + "\nMemoryMax=104857600\n")
    assert t.systemd_instance(props, now_monotonic=5100.0)["mem_limit_bytes"] == 104857600
    props = t.parse_systemctl_show(SYSTEMCTL_RUNNING + "\nMemoryMax=infinity\n")
    assert t.systemd_instance(props, now_monotonic=5100.0)["mem_limit_bytes"] is None
    doc = {"Id": "abc", "Name": "/web", "State": {"Status": "running", "StartedAt": "2024-05-01T12:00:00Z"},
           "HostConfig": {"Memory": 268435456}}
    assert t.compose_instance_from_inspect(doc, now=0)["mem_limit_bytes"] == 268435456
    doc["HostConfig"]["Memory"] = 0
    assert t.compose_instance_from_inspect(doc, now=0)["mem_limit_bytes"] is None


def test_git_head_moved_at_reads_the_newest_reflog_entry(tmp_path):
    logs = tmp_path / ".git" / "logs"
    logs.mkdir(parents=True)
    assert t.git_head_moved_at(str(tmp_path)) is None  # no reflog: unknown, not an error
    (logs / "HEAD").write_text(
        "0000000000000000000000000000000000000000 1111111111111111111111111111111111111111 Ops <ops@x> 1714557600 +0000"
        "\tclone: from /srv/saasresto.git\n"
        "1111111111111111111111111111111111111111 2222222222222222222222222222222222222222 Ops <ops@x> 1714644000 -0300"
        "\tpull: Fast-forward\n\n")
    assert t.git_head_moved_at(str(tmp_path)) == 1714644000
    (logs / "HEAD").write_text("not a reflog line\n")
    assert t.git_head_moved_at(str(tmp_path)) is None
