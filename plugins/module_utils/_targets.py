# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: normalise app state from systemd, compose, pm2 and Fly.

Pure functions only (no I/O): each takes what a tool printed or an API returned and gives the one
status shape every runbook reads::

    {kind, app, running, state, instances: [{id, name, state, pid, restarts, uptime_s, mem_bytes,
     cpu_pct, health}], release: {id, ...}, findings: [{severity, code, message}]}

Instance ``state`` is one of ``running``, ``starting``, ``stopping``, ``stopped``, ``failed``,
``unknown``. Numbers a source does not report are ``None``, never 0.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import json
import os
import re

KINDS = ("systemd", "compose", "pm2", "fly")
STATES = ("running", "starting", "stopping", "stopped", "failed", "unknown")

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
COMPOSE_NUMBER_LABEL = "com.docker.compose.container-number"
COMPOSE_ONEOFF_LABEL = "com.docker.compose.oneoff"

SYSTEMD_PROPERTIES = (
    "Id", "LoadState", "ActiveState", "SubState", "MainPID", "NRestarts", "Result",
    "ActiveEnterTimestampMonotonic", "ExecMainStartTimestampMonotonic", "MemoryCurrent",
    "CPUUsageNSec", "FragmentPath", "UnitFileState", "MemoryMax",
)

_UNSET = ("", "[not set]", "18446744073709551615", "infinity")


class ParseError(ValueError):
    """Raised when a tool's output is not what it should be (message says what and where)."""


def _int_or_none(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text in _UNSET:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _round(value, digits=1):
    return None if value is None else round(float(value), digits)


def instance(ident, state, name=None, pid=None, restarts=None, uptime_s=None, mem_bytes=None,
             cpu_pct=None, health=None):
    """Return one normalised instance dict (all keys always present)."""
    if state not in STATES:
        raise ValueError("unknown instance state %r" % (state,))
    if pid is not None and pid <= 0:
        pid = None
    return {
        "id": str(ident), "name": name if name is not None else str(ident), "state": state,
        "pid": pid, "restarts": restarts,
        "uptime_s": None if uptime_s is None else max(0, int(uptime_s)),
        "mem_bytes": mem_bytes, "cpu_pct": _round(cpu_pct), "health": health,
    }


def overall_state(instances):
    """One word for a list of instances: the state all share, else the worst that is not running."""
    if not instances:
        return "stopped"
    states = set(i["state"] for i in instances)
    if len(states) == 1:
        return states.pop()
    for state in ("failed", "starting", "stopping", "stopped", "unknown"):
        if state in states:
            return state
    return "unknown"


def is_running(instances):
    """True when there is at least one instance and every instance is running."""
    return bool(instances) and all(i["state"] == "running" for i in instances)


def _cpu_avg_pct(cpu_ns, uptime_s):
    if cpu_ns is None or not uptime_s or uptime_s <= 0:
        return None
    return 100.0 * (cpu_ns / 1e9) / uptime_s


# ---------------------------------------------------------------- systemd

def parse_systemctl_show(text):
    """Parse ``systemctl show`` key=value output into a dict (values kept as strings)."""
    props = {}
    for line in (text or "").splitlines():
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        props[key.strip()] = value.strip()
    return props


def systemd_state(active_state, sub_state):
    active_state = (active_state or "").strip()
    sub_state = (sub_state or "").strip()
    if active_state in ("active", "reloading"):
        return "running"
    if active_state == "activating":
        return "starting"
    if active_state == "deactivating":
        return "stopping"
    if active_state == "inactive":
        return "stopped"
    if active_state == "failed":
        return "failed"
    return "unknown"


def systemd_instance(props, now_monotonic):
    """One instance from ``systemctl show`` properties; ``now_monotonic`` is CLOCK_MONOTONIC seconds.

    ``cpu_pct`` is the average since the unit became active (systemd keeps no instantaneous value).
    """
    if props.get("LoadState") == "not-found":
        raise ParseError("systemd unit %s not found" % props.get("Id", "?"))
    state = systemd_state(props.get("ActiveState"), props.get("SubState"))
    uptime = None
    entered = _int_or_none(props.get("ActiveEnterTimestampMonotonic"))
    if state == "running" and entered and now_monotonic is not None:
        uptime = max(0.0, now_monotonic - entered / 1e6)
    item = instance(
        props.get("Id", "?"), state, pid=_int_or_none(props.get("MainPID")),
        restarts=_int_or_none(props.get("NRestarts")), uptime_s=uptime,
        mem_bytes=_int_or_none(props.get("MemoryCurrent")) if state == "running" else None,
        cpu_pct=_cpu_avg_pct(_int_or_none(props.get("CPUUsageNSec")), uptime) if state == "running" else None,
    )
    # the unit's MemoryMax= (the kernel OOM-kills it above; None: no limit)
    item["mem_limit_bytes"] = _int_or_none(props.get("MemoryMax")) or None
    return item


# ---------------------------------------------------------------- docker / compose

_RFC3339_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")


def parse_rfc3339(text):
    """Epoch seconds (float) for Docker/Fly timestamps (nanoseconds and offsets allowed); None for zero dates."""
    if not text:
        return None
    match = _RFC3339_RE.match(str(text).strip())
    if not match:
        raise ParseError("not an RFC 3339 timestamp: %r" % (text,))
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if year <= 1:
        return None
    epoch = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if match.group(7):
        epoch += float("0" + match.group(7)[:10])
    offset = match.group(8)
    if offset and offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        epoch -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return epoch


def docker_state(status, exit_code=0):
    status = (status or "").lower()
    if status == "running":
        return "running"
    if status == "restarting":
        return "starting"
    if status == "removing":
        return "stopping"
    if status in ("created", "paused"):
        return "stopped"
    if status == "exited":
        return "stopped" if not exit_code else "failed"
    if status == "dead":
        return "failed"
    return "unknown"


def docker_memory_bytes(stats):
    """Memory in use from a Docker stats document, page cache excluded (as ``docker stats`` does)."""
    mem = (stats or {}).get("memory_stats") or {}
    usage = mem.get("usage")
    if usage is None:
        return None
    inner = mem.get("stats") or {}
    cache = inner.get("inactive_file", inner.get("total_inactive_file", 0)) or 0
    return max(0, int(usage) - int(cache))


def compose_instance_from_inspect(inspect, now, stats=None):
    """One instance from ``GET /containers/{id}/json`` (plus optional one-shot stats)."""
    state_doc = inspect.get("State") or {}
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    state = docker_state(state_doc.get("Status"), state_doc.get("ExitCode"))
    started = parse_rfc3339(state_doc.get("StartedAt"))
    uptime = (now - started) if (state == "running" and started is not None and now is not None) else None
    health = (state_doc.get("Health") or {}).get("Status")
    cpu_ns = None
    if stats:
        cpu_ns = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    name = (inspect.get("Name") or "").lstrip("/") or inspect.get("Id", "?")[:12]
    result = instance(
        inspect.get("Id", "?")[:12], state, name=name, pid=_int_or_none(state_doc.get("Pid")),
        restarts=_int_or_none(inspect.get("RestartCount")), uptime_s=uptime,
        mem_bytes=docker_memory_bytes(stats) if (stats and state == "running") else None,
        cpu_pct=_cpu_avg_pct(cpu_ns, uptime) if state == "running" else None, health=health,
    )
    result["service"] = labels.get(COMPOSE_SERVICE_LABEL)
    # the container's memory limit (compose mem_limit / deploy.resources.limits.memory; None: no limit)
    result["mem_limit_bytes"] = _int_or_none((inspect.get("HostConfig") or {}).get("Memory")) or None
    result["image"] = (inspect.get("Config") or {}).get("Image")
    result["image_id"] = inspect.get("Image")
    return result


def compose_release(instances):
    """Release of a compose service: the image ids its containers run (sorted, de-duplicated)."""
    images = {}
    for item in instances:
        if item.get("image_id"):
            images.setdefault(item.get("service") or item["name"], {"image": item.get("image"),
                                                                    "image_id": item["image_id"]})
    ids = sorted(set(v["image_id"] for v in images.values()))
    return {"id": ",".join(ids) if ids else None, "images": images}


def _parse_json_documents(text, what):
    text = (text or "").strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ParseError("%s: invalid JSON: %s" % (what, exc))
        if not isinstance(data, list):
            raise ParseError("%s: expected a JSON array" % what)
        return data
    docs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            docs.append(json.loads(line))
        except ValueError as exc:
            raise ParseError("%s: line %d is not JSON: %s" % (what, number, exc))
    return docs


def _labels_from_string(value):
    if isinstance(value, dict):
        return value
    labels = {}
    for part in (value or "").split(","):
        if "=" in part:
            key, val = part.split("=", 1)
            labels[key] = val
    return labels


def parse_compose_ps(text, service=None):
    """Instances from ``docker compose ps --all --format json``.

    Compose >= 2.21 prints JSON Lines (one object a line), older v2 a JSON array: both are read.
    ``Labels`` is a comma-joined string there. Pid, uptime and memory are not in this output (None).
    """
    result = []
    for doc in _parse_json_documents(text, "docker compose ps"):
        if not isinstance(doc, dict):
            raise ParseError("docker compose ps: expected objects, got %r" % (doc,))
        labels = _labels_from_string(doc.get("Labels"))
        svc = doc.get("Service") or labels.get(COMPOSE_SERVICE_LABEL)
        if service and svc != service:
            continue
        status = (doc.get("State") or "").lower()
        item = instance(
            (doc.get("ID") or doc.get("Name") or "?")[:12], docker_state(status, doc.get("ExitCode")),
            name=doc.get("Name"), health=doc.get("Health") or None,
        )
        item["service"] = svc
        item["image"] = doc.get("Image")
        item["image_id"] = labels.get("com.docker.compose.image")
        result.append(item)
    return result


# ---------------------------------------------------------------- pm2

PM2_STATES = {
    "online": "running", "launching": "starting", "waiting restart": "starting",
    "stopping": "stopping", "stopped": "stopped", "one-launch-status": "stopped", "errored": "failed",
}


def parse_pm2_jlist(text):
    """The process list from ``pm2 jlist`` (a JSON array); pm2 may print warnings before it."""
    text = text or ""
    start = text.find("[")
    if start < 0:
        raise ParseError("pm2 jlist: no JSON array in the output")
    try:
        data = json.loads(text[start:])
    except ValueError as exc:
        raise ParseError("pm2 jlist: invalid JSON: %s" % exc)
    if not isinstance(data, list):
        raise ParseError("pm2 jlist: expected a JSON array")
    return data


def pm2_instances(processes, name, now):
    """Instances of the pm2 app ``name``; ``now`` in epoch seconds. ``cpu_pct`` is pm2's live value."""
    result = []
    for proc in processes:
        env = proc.get("pm2_env") or {}
        if proc.get("name", env.get("name")) != name:
            continue
        state = PM2_STATES.get(env.get("status"), "unknown")
        monit = proc.get("monit") or {}
        started = env.get("pm_uptime")
        uptime = (now - started / 1000.0) if (state == "running" and started and now is not None) else None
        item = instance(
            proc.get("pm_id", env.get("pm_id", "?")), state, name="%s:%s" % (name, proc.get("pm_id")),
            pid=_int_or_none(proc.get("pid")), restarts=_int_or_none(env.get("restart_time")),
            uptime_s=uptime,
            mem_bytes=_int_or_none(monit.get("memory")) if state == "running" else None,
            cpu_pct=monit.get("cpu") if state == "running" else None,
        )
        item["unstable_restarts"] = _int_or_none(env.get("unstable_restarts"))
        # pm2 restarts the app when its memory goes over this (max_memory_restart, bytes; None: no limit)
        item["mem_limit_bytes"] = _int_or_none(env.get("max_memory_restart")) or None
        item["cwd"] = env.get("pm_cwd")
        item["revision"] = (env.get("versioning") or {}).get("revision")
        # the files pm2 writes the app's stdout and stderr to (what `pm2 logs` reads)
        item["out_log"] = env.get("pm_out_log_path")
        item["err_log"] = env.get("pm_err_log_path")
        result.append(item)
    return result


def pm2_release(instances):
    """pm2's own idea of the release: the git revision it recorded (``versioning.revision``)."""
    revisions = sorted(set(i["revision"] for i in instances if i.get("revision")))
    return {"id": revisions[0] if len(revisions) == 1 else (",".join(revisions) or None),
            "revision": revisions[0] if revisions else None}


# ---------------------------------------------------------------- fly

FLY_STATES = {
    "started": "running", "created": "starting", "starting": "starting", "replacing": "starting",
    "launching": "starting", "stopping": "stopping", "destroying": "stopping", "stopped": "stopped",
    "suspended": "stopped", "suspending": "stopping", "destroyed": "stopped", "failed": "failed",
}


def parse_fly_json(text, what="flyctl"):
    """JSON from flyctl (it may print notices before it; a fake also says FAKE on stderr)."""
    text = (text or "").strip()
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        raise ParseError("%s: no JSON in the output" % what)
    try:
        return json.loads(text[min(starts):])
    except ValueError as exc:
        raise ParseError("%s: invalid JSON: %s" % (what, exc))


def fly_image_ref(ref):
    """``registry/repository:tag@digest`` from a Machine ``image_ref`` object (or a string)."""
    if not ref:
        return None
    if isinstance(ref, str):
        return ref
    text = ref.get("registry", "")
    if text:
        text += "/"
    text += ref.get("repository", "")
    if ref.get("tag"):
        text += ":" + ref["tag"]
    if ref.get("digest"):
        text += "@" + ref["digest"]
    return text or None


def _fly_ts(value):
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return value / 1000.0 if value > 1e11 else float(value)
    return parse_rfc3339(value)


def fly_instances(status_doc, now):
    """Instances from ``flyctl status --json``: one per Machine (``restarts`` counts "exit" events)."""
    if not isinstance(status_doc, dict):
        raise ParseError("flyctl status: expected a JSON object")
    result = []
    for machine in status_doc.get("Machines") or []:
        state = FLY_STATES.get(machine.get("state"), "unknown")
        events = machine.get("events") or []
        starts = [_fly_ts(e.get("timestamp")) for e in events if e.get("type") in ("start", "launch")
                  and e.get("status") in ("started", None, "")]
        starts = [s for s in starts if s is not None]
        uptime = (now - max(starts)) if (state == "running" and starts and now is not None) else None
        checks = machine.get("checks") or []
        health = None
        if checks:
            health = "healthy" if all(c.get("status") == "passing" for c in checks) else "unhealthy"
        item = instance(
            machine.get("id", "?"), state, name=machine.get("name"),
            restarts=sum(1 for e in events if e.get("type") == "exit"), uptime_s=uptime, health=health,
        )
        item["region"] = machine.get("region")
        # exits the machine's own events say were the kernel's OOM killer (request.exit_event.oom_killed), and the
        # memory the machine has: what high_resource needs on Fly, where no kernel log can be read
        # since the machine's current instance (its last update or launch: a `fly scale memory` starts a new one)
        renewed = [t for t in (_fly_ts(e.get("timestamp")) for e in events if e.get("type") in ("update", "launch"))
                   if t is not None]
        since = max(renewed) if renewed else None
        item["oom_kills"] = sum(1 for e in events if e.get("type") == "exit"
                                and ((e.get("request") or {}).get("exit_event") or {}).get("oom_killed") is True
                                and (since is None or (_fly_ts(e.get("timestamp")) or 0) > since))
        guest = (machine.get("config") or {}).get("guest") or {}
        item["memory_mb"] = guest.get("memory_mb") if isinstance(guest.get("memory_mb"), int) else None
        item["image_ref"] = fly_image_ref(machine.get("image_ref"))
        item["version"] = machine.get("version")
        item["host_status"] = machine.get("host_status")
        result.append(item)
    return result


def fly_release(status_doc, instances):
    """Fly release: the image the machines run (``ImageRef``) and the app's Version. ``image_ref`` is the image of
    the started machines; ``id`` names every machine's image, so a half-done rolling deploy (a machine stopped on
    the new image beside started ones on the old) is not mistaken for the old release. ``deployed_at`` is None:
    the machines' events do not tell a deploy from a scale or a secrets change (each one updates them); the
    release's own time is in ``flyctl releases`` (CreatedAt), which status does not read."""
    running = sorted(set(i["image_ref"] for i in instances if i.get("image_ref") and i["state"] == "running"))
    every = sorted(set(i["image_ref"] for i in instances if i.get("image_ref")))
    refs = running or every
    return {"id": every[0] if len(every) == 1 else (",".join(every) or None),
            "image_ref": refs[0] if refs else None, "version": status_doc.get("Version"),
            "deployed_at": None}


def git_head_moved_at(app_dir):
    """When HEAD of the git checkout ``app_dir`` last moved (a pull, a checkout, a reset: the newest entry of its
    reflog, ``.git/logs/HEAD``), epoch seconds; None without a reflog. Read from the file: no git process."""
    path = os.path.join(app_dir, ".git", "logs", "HEAD")
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8192))
            lines = [line for line in handle.read().splitlines() if line.strip()]
    except (IOError, OSError):
        return None
    if not lines:
        return None
    # "<old> <new> Name <email> <epoch> <tz>\t<message>"
    match = re.search(br"> (\d+) [+-]\d{4}\t", lines[-1] + b"\t")
    return int(match.group(1)) if match else None


def parse_fly_releases(text):
    """``flyctl releases --json [--image]`` (PascalCase keys) -> list sorted newest Version first."""
    data = parse_fly_json(text, "flyctl releases")
    if not isinstance(data, list):
        raise ParseError("flyctl releases: expected a JSON array")
    rows = [{"version": r.get("Version"), "status": r.get("Status"), "stable": r.get("Stable"),
             "image_ref": r.get("ImageRef"), "created_at": r.get("CreatedAt"),
             "description": r.get("Description")} for r in data]
    rows.sort(key=lambda r: r["version"] or 0, reverse=True)
    return rows


def parse_fly_logs(text):
    """Entries of ``flyctl logs --json --no-tail``: flyctl prints each ``logs.LogEntry`` with render.JSON
    (4-space indented, one object after another, not one per line). Text that is not a JSON object (a notice)
    is skipped. Returns [{timestamp, epoch, instance, region, level, message}] in the order printed; epoch is
    None when the timestamp is missing or not RFC 3339."""
    text = text or ""
    decoder = json.JSONDecoder()
    entries = []
    pos = 0
    while True:
        start = text.find("{", pos)
        if start < 0:
            return entries
        try:
            obj, pos = decoder.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        if not isinstance(obj, dict):
            continue
        try:
            epoch = parse_rfc3339(obj.get("timestamp"))
        except ParseError:
            epoch = None
        entries.append({"timestamp": obj.get("timestamp") or "", "epoch": epoch,
                        "instance": obj.get("instance") or "", "region": obj.get("region") or "",
                        "level": obj.get("level") or "", "message": obj.get("message") or ""})


def fly_log_lines(entries, since_epoch=None):
    """One text line per entry at or after since_epoch (flyctl's text form: ``<timestamp> <instance> <region>
    [<level>] <message>``, newlines in the message made spaces); entries without a timestamp cannot be placed
    in the window and are left out when a window is given."""
    lines = []
    for entry in entries:
        if since_epoch is not None and (entry["epoch"] is None or entry["epoch"] < float(since_epoch)):
            continue
        message = " ".join(str(entry["message"]).splitlines())
        lines.append("%s %s %s [%s] %s" % (entry["timestamp"], entry["instance"], entry["region"], entry["level"],
                                           message.strip()))
    return lines


# ---------------------------------------------------------------- findings

# an instance at this share of its own memory limit (pm2 max_memory_restart) is a finding
MEMORY_LIMIT_WARN = 0.9


def _mib(value):
    return "%.0f MB" % (value / 1048576.0)


def findings_for(kind, app, instances, restart_warn=3, health=None):
    """Findings (severity, code, message) a runbook can name as the cause."""
    found = []

    def add(severity, code, message):
        found.append({"severity": severity, "code": code, "message": message})

    if not instances:
        add("critical", "app_missing", "%s %s has no instance (not deployed, deleted or not started)" % (kind, app))
    for item in instances:
        label = "%s %s" % (kind, item["name"])
        if item["state"] == "failed":
            add("critical", "app_failed", "%s is failed" % label)
        elif item["state"] == "stopped":
            add("critical", "app_stopped", "%s is stopped" % label)
        elif item["state"] == "starting":
            if (item.get("restarts") or 0) >= restart_warn:
                add("critical", "app_crash_loop",
                    "%s is restarting in a loop (%s restarts)" % (label, item.get("restarts")))
            else:
                add("warning", "app_starting", "%s is starting" % label)
        elif item["state"] in ("stopping", "unknown"):
            add("warning", "app_%s" % item["state"], "%s is %s" % (label, item["state"]))
        elif (item.get("restarts") or 0) >= restart_warn:
            add("warning", "app_restarts", "%s restarted %s times" % (label, item.get("restarts")))
        if item.get("health") == "unhealthy":
            add("critical", "instance_unhealthy", "%s reports unhealthy" % label)
        down = item["state"] != "running" or item.get("health") == "unhealthy"
        if (item.get("oom_kills") or 0) > 0:
            add("critical" if down else "warning", "oom_kills", "%s was OOM-killed %d times%s%s: it needs more memory"
                % (label, item["oom_kills"], " (%s MB)" % item["memory_mb"] if item.get("memory_mb") else "",
                   ", and is down now" if down else ""))
        limit, used = item.get("mem_limit_bytes"), item.get("mem_bytes")
        if limit and used and used >= MEMORY_LIMIT_WARN * limit:
            add("critical" if used >= limit else "warning", "memory_limit",
                "%s uses %s, %d%% of its memory limit %s%s: raise the limit or find what grows" % (
                    label, _mib(used), round(100.0 * used / limit), _mib(limit),
                    " (max_memory_restart: pm2 restarts it each time it goes over)" if kind == "pm2" else ""))
    if health is not None and health.get("url") and not health.get("ok"):
        add("critical", "health_failed", "health check %s failed: %s" % (
            health["url"], health.get("error") or "HTTP %s" % health.get("status")))
    return found
