#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: app_status
short_description: One normalised status for an app on systemd, docker compose, pm2 or Fly.io
version_added: 0.1.0
description:
  - Reads the state of an application and returns the same shape for every kind of target.
  - C(systemd) reads C(systemctl show); C(compose) asks the Docker Engine API for the containers
    carrying the compose labels (works for compose v1 and v2); C(pm2) reads C(pm2 jlist);
    C(fly) reads C(flyctl status --json).
  - Also reports the running release (the C(current) symlink target of an ansistrano-style
    C(releases/) layout or the git commit of O(app_dir), compose image ids, pm2's revision,
    Fly's image reference), optionally probes the health URL once, and lists findings.
  - Never changes anything.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: The module only reads, so it runs the same way in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  kind:
    description: How the app runs.
    type: str
    required: true
    choices: [systemd, compose, pm2, fly]
  name:
    description:
      - The systemd unit, compose service, pm2 app name or Fly app.
      - A systemd unit name without a suffix gets C(.service).
    type: str
    required: true
  app_dir:
    description:
      - App directory. When it holds a C(current) symlink (ansistrano layout), the release is
        the directory it points to; when it is a git checkout, the release is the commit.
      - Used for O(kind=systemd) and O(kind=pm2).
    type: path
  compose_project:
    description: Compose project name (the C(com.docker.compose.project) label). Required for O(kind=compose).
    type: str
  docker_host:
    description: Docker Engine API endpoint, C(unix://) path or C(tcp://host:port).
    type: str
    default: unix:///var/run/docker.sock
  container_stats:
    description: Read one-shot container stats for memory and CPU (compose only).
    type: bool
    default: true
  pm2_bin:
    description: The pm2 executable.
    type: str
    default: pm2
  pm2_home:
    description: C(PM2_HOME) of the pm2 daemon to ask (default is pm2's own, C(~/.pm2)).
    type: path
  flyctl:
    description: The flyctl executable.
    type: str
    default: flyctl
  related:
    description:
      - Other units, compose services or pm2 apps whose state is reported too, in RV(related)
        (for example the proxy and the database).
    type: list
    elements: str
    default: []
  health_url:
    description: When set, one GET request is made to this URL and the result is in RV(health).
    type: str
  health_timeout:
    description: Timeout of the health request, in seconds.
    type: int
    default: 5
  health_status_codes:
    description: HTTP status codes that count as healthy.
    type: list
    elements: int
    default: [200]
  validate_certs:
    description: Verify the TLS certificate of O(health_url).
    type: bool
    default: true
  restart_warn:
    description: Number of restarts from which an instance is reported as restarting too often.
    type: int
    default: 3
notes:
  - C(cpu_pct) is the average since start for systemd and compose (neither keeps a live value
    without sampling twice) and pm2's live value for pm2. Fly reports neither memory nor CPU
    in its status (they are C(null)).
seealso:
  - name: docker compose ps JSON output
    description: Compose v2.21 and later print JSON Lines; this module uses the Engine API instead.
    link: https://docs.docker.com/reference/cli/docker/compose/ps/
"""

EXAMPLES = r"""
- name: Read the state of the saasresto unit
  sre.runbooks.app_status:
    kind: systemd
    name: saasresto
    app_dir: /srv/saasresto
    related: [caddy, postgresql]
    health_url: http://127.0.0.1:3000/health
  register: app

- name: Read the web service of a compose project
  sre.runbooks.app_status:
    kind: compose
    name: web
    compose_project: ferreteria
    related: [db, proxy]

- name: Read a Fly app
  sre.runbooks.app_status:
    kind: fly
    name: hotdash-production
    flyctl: /usr/local/bin/flyctl
"""

RETURN = r"""
status:
  description: The whole normalised status (the other return values, in one dict).
  returned: always
  type: dict
kind:
  description: The kind of target.
  returned: always
  type: str
  sample: systemd
app:
  description: The app name as given.
  returned: always
  type: str
running:
  description: True when there is at least one instance and every instance is running.
  returned: always
  type: bool
state:
  description: Overall state, C(running), C(starting), C(stopping), C(stopped), C(failed) or C(unknown).
  returned: always
  type: str
instances:
  description: One entry per unit, container, pm2 process or Fly machine.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Unit name, short container id, pm2 id or machine id.
      type: str
    name:
      description: A readable name of the instance.
      type: str
    state:
      description: Normalised state (see RV(state)).
      type: str
    pid:
      description: Main process id, or null where not applicable.
      type: int
    restarts:
      description: Restarts counted by the supervisor.
      type: int
    uptime_s:
      description: Seconds since the instance started, null when not running.
      type: int
    mem_bytes:
      description: Memory in use, null when not known.
      type: int
    mem_limit_bytes:
      description:
        - The instance's own memory limit (pm2 C(max_memory_restart), systemd C(MemoryMax=), the container's memory
          limit), null when it has none or the kind has no such limit (for Fly, see C(memory_mb)).
        - At 90 % of it the finding C(memory_limit) is reported (critical at 100 %).
      type: int
      returned: for systemd, compose and pm2
    out_log:
      description: The file pm2 writes the instance's stdout to (C(pm_out_log_path)), what C(pm2 logs) reads.
      type: str
      returned: for pm2
    err_log:
      description: The file pm2 writes the instance's stderr to (C(pm_err_log_path)).
      type: str
      returned: for pm2
    oom_kills:
      description: Exits of the machine its own events record as OOM kills (C(oom_killed)) since its current instance
        (finding C(oom_kills)).
      type: int
      returned: for fly
    memory_mb:
      description: Memory of the Fly machine (C(config.guest.memory_mb)), null when not reported.
      type: int
      returned: for fly
    cpu_pct:
      description: CPU use in percent of one core, null when not known.
      type: float
    health:
      description: The supervisor's own health verdict (docker healthcheck, Fly checks), or null.
      type: str
  sample:
    - {id: saasresto.service, name: saasresto.service, state: running, pid: 412, restarts: 0,
       uptime_s: 3600, mem_bytes: 52428800, cpu_pct: 0.4, health: null}
release:
  description:
    - The running release. C(id) identifies it; the other keys depend on the kind
      (C(path)/C(revision) for a release layout, C(images) for compose, C(image_ref) for Fly).
    - C(deployed_at) (epoch seconds, null when unknown) is when that release went live, as the app's own
      history says it, from the C(current) symlink's own time (a release layout) or the newest entry of the
      checkout's reflog (a git pull, checkout or reset). Compose and Fly have none here (a container recreated
      on the same image is no deploy; a Fly machine's update events are also scales and secrets changes).
  returned: always
  type: dict
  sample: {id: "20240101120000Z", strategy: symlink, path: /srv/saasresto/releases/20240101120000Z}
health:
  description: Result of the single health request (C(url) is null when O(health_url) is not set).
  returned: always
  type: dict
  sample: {url: "http://127.0.0.1:3000/health", ok: true, status: 200, error: null}
related:
  description: State of the O(related) units, services or apps.
  returned: always
  type: list
  elements: dict
  sample: [{name: caddy, state: running, running: true}]
findings:
  description: What looks wrong, worst first.
  returned: always
  type: list
  elements: dict
  sample: [{severity: critical, code: app_stopped, message: "systemd saasresto.service is stopped"}]
"""

import json
import os
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves.urllib.parse import quote, urlparse
from ansible.module_utils.urls import open_url
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError

from ansible_collections.sre.runbooks.plugins.module_utils._targets import (
    SYSTEMD_PROPERTIES, COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL, COMPOSE_ONEOFF_LABEL,
    ParseError, parse_systemctl_show, systemd_instance, compose_instance_from_inspect,
    compose_release, parse_compose_ps, parse_pm2_jlist, pm2_instances, pm2_release, parse_fly_json,
    fly_instances, fly_release, findings_for, overall_state, is_running, git_head_moved_at,
)


class TargetError(Exception):
    """A read failed; the message says what was attempted and why."""


class _UnixHTTPConnection(http_client.HTTPConnection):
    def __init__(self, path, timeout):
        http_client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class DockerApi:
    """The few Docker Engine API calls the status needs (no docker SDK required)."""

    def __init__(self, docker_host, timeout=10):
        self.docker_host = docker_host
        self.timeout = timeout

    def _connection(self):
        parsed = urlparse(self.docker_host)
        if parsed.scheme == "unix":
            return _UnixHTTPConnection(parsed.path, self.timeout)
        if parsed.scheme in ("tcp", "http"):
            return http_client.HTTPConnection(parsed.hostname, parsed.port or 2375, timeout=self.timeout)
        raise TargetError("unsupported docker_host %r (use unix:// or tcp://)" % self.docker_host)

    def get(self, path):
        conn = self._connection()
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
        except (socket.error, OSError, http_client.HTTPException) as exc:
            raise TargetError("Docker API %s via %s: %s" % (path.split("?")[0], self.docker_host, to_native(exc)))
        finally:
            conn.close()
        if resp.status >= 400:
            raise TargetError("Docker API %s answered HTTP %s: %s"
                              % (path.split("?")[0], resp.status, to_native(body[:200])))
        try:
            return json.loads(to_native(body))
        except ValueError as exc:
            raise TargetError("Docker API %s: invalid JSON: %s" % (path.split("?")[0], exc))


class StatusReader:
    def __init__(self, module):
        self.module = module
        self.params = module.params

    def run(self, argv, what, environ=None):
        rc, out, err = self.module.run_command(argv, environ_update=environ or {})
        if rc != 0:
            raise TargetError("%s: exit %s: %s" % (what, rc, (err or out).strip()[-300:]))
        return out

    # ------------------------------------------------------------ systemd
    def _unit(self, name):
        return name if "." in name else name + ".service"

    def systemd_props(self, name):
        systemctl = self.module.get_bin_path("systemctl", required=True)
        out = self.run([systemctl, "show", self._unit(name), "--property=" + ",".join(SYSTEMD_PROPERTIES)],
                       "systemctl show %s" % self._unit(name))
        return parse_systemctl_show(out)

    def systemd(self):
        props = self.systemd_props(self.params["name"])
        if props.get("LoadState") == "not-found":
            return [], self.dir_release(self.params["app_dir"])
        inst = systemd_instance(props, time.monotonic())
        return [inst], self.dir_release(self.params["app_dir"])

    def systemd_related(self, name):
        props = self.systemd_props(name)
        if props.get("LoadState") == "not-found":
            return {"name": name, "state": "missing", "running": False}
        inst = systemd_instance(props, time.monotonic())
        return {"name": name, "state": inst["state"], "running": inst["state"] == "running"}

    # ------------------------------------------------------------ release directory
    def dir_release(self, app_dir):
        release = {"id": None, "strategy": None}
        if not app_dir:
            return release
        current = os.path.join(app_dir, "current")
        if os.path.islink(current):
            real = os.path.realpath(current)
            release.update(id=os.path.basename(real), strategy="symlink", path=real,
                           link=os.readlink(current), exists=os.path.isdir(real),
                           deployed_at=int(os.lstat(current).st_mtime))
            revision_file = os.path.join(real, "REVISION")
            if os.path.isfile(revision_file):
                with open(revision_file) as handle:
                    release["revision"] = handle.read().strip()
            return release
        if os.path.isdir(os.path.join(app_dir, ".git")):
            git = self.module.get_bin_path("git")
            if git:
                sha = self.run([git, "-C", app_dir, "rev-parse", "HEAD"], "git rev-parse in %s" % app_dir).strip()
                release.update(id=sha, strategy="git", revision=sha, path=app_dir,
                               deployed_at=git_head_moved_at(app_dir))
        return release

    # ------------------------------------------------------------ compose
    def compose_containers(self, api, service):
        filters = {"label": ["%s=%s" % (COMPOSE_PROJECT_LABEL, self.params["compose_project"])]}
        if service:
            filters["label"].append("%s=%s" % (COMPOSE_SERVICE_LABEL, service))
        listing = api.get("/containers/json?all=1&filters=" + quote(json.dumps(filters)))
        return [c for c in listing if (c.get("Labels") or {}).get(COMPOSE_ONEOFF_LABEL, "False") != "True"]

    def compose(self):
        parsed = urlparse(self.params["docker_host"])
        if parsed.scheme == "unix" and not os.path.exists(parsed.path):
            return self.compose_cli()
        api = DockerApi(self.params["docker_host"])
        now = time.time()
        result = []
        for summary in self.compose_containers(api, self.params["name"]):
            inspect = api.get("/containers/%s/json" % summary["Id"])
            stats = None
            if self.params["container_stats"] and (inspect.get("State") or {}).get("Running"):
                stats = api.get("/containers/%s/stats?stream=false&one-shot=true" % summary["Id"])
            result.append(compose_instance_from_inspect(inspect, now, stats))
        result.sort(key=lambda i: i["name"])
        return result, compose_release(result)

    def compose_cli(self):
        """No Docker socket here: ask compose v2 itself (``ps --format json``)."""
        docker = self.module.get_bin_path("docker")
        if not docker:
            raise TargetError("compose status: no Docker socket at %s and no docker CLI" % self.params["docker_host"])
        out = self.run([docker, "compose", "-p", self.params["compose_project"], "ps", "--all", "--format", "json"],
                       "docker compose ps")
        result = parse_compose_ps(out, self.params["name"])
        return result, compose_release(result)

    def compose_related(self, name):
        parsed = urlparse(self.params["docker_host"])
        if parsed.scheme == "unix" and not os.path.exists(parsed.path):
            items = parse_compose_ps(self.run([self.module.get_bin_path("docker", required=True), "compose", "-p",
                                               self.params["compose_project"], "ps", "--all", "--format", "json"],
                                              "docker compose ps"), name)
        else:
            api = DockerApi(self.params["docker_host"])
            items = [compose_instance_from_inspect(api.get("/containers/%s/json" % c["Id"]), time.time())
                     for c in self.compose_containers(api, name)]
        state = overall_state(items) if items else "missing"
        return {"name": name, "state": state, "running": is_running(items),
                "health": ",".join(sorted(set(i["health"] for i in items if i.get("health")))) or None}

    # ------------------------------------------------------------ pm2
    def pm2_list(self):
        pm2 = self.module.get_bin_path(self.params["pm2_bin"]) or self.params["pm2_bin"]
        if not os.path.exists(pm2):
            raise TargetError("pm2 jlist: pm2 executable %s not found" % self.params["pm2_bin"])
        env = {"PM2_HOME": self.params["pm2_home"]} if self.params["pm2_home"] else {}
        return parse_pm2_jlist(self.run([pm2, "jlist"], "pm2 jlist", env))

    def pm2(self):
        items = pm2_instances(self.pm2_list(), self.params["name"], time.time())
        app_dir = self.params["app_dir"]
        if not app_dir and items and items[0].get("cwd"):
            cwd = items[0]["cwd"]
            app_dir = os.path.dirname(cwd) if os.path.basename(cwd) == "current" else cwd
        release = self.dir_release(app_dir)
        own = pm2_release(items)
        release["pm2_revision"] = own["revision"]
        if release["id"] is None and own["id"]:
            release.update(id=own["id"], strategy="pm2_versioning", revision=own["revision"])
        return items, release

    def pm2_related(self, name):
        items = pm2_instances(self.pm2_list(), name, time.time())
        return {"name": name, "state": overall_state(items) if items else "missing", "running": is_running(items)}

    # ------------------------------------------------------------ fly
    def fly(self):
        flyctl = self.module.get_bin_path(self.params["flyctl"]) or self.params["flyctl"]
        if not os.path.exists(flyctl):
            raise TargetError("flyctl status: flyctl executable %s not found" % self.params["flyctl"])
        doc = parse_fly_json(self.run([flyctl, "status", "--app", self.params["name"], "--json"],
                                      "flyctl status --app %s" % self.params["name"]), "flyctl status")
        items = fly_instances(doc, time.time())
        return items, fly_release(doc, items)

    # ------------------------------------------------------------ health
    def health(self):
        url = self.params["health_url"]
        result = {"url": url, "ok": None, "status": None, "error": None}
        if not url:
            return result
        try:
            resp = open_url(url, method="GET", timeout=self.params["health_timeout"],
                            validate_certs=self.params["validate_certs"], follow_redirects="safe")
            result["status"] = resp.getcode()
        except HTTPError as exc:
            result["status"] = exc.code
        except (URLError, socket.error, OSError, http_client.HTTPException) as exc:
            result["error"] = to_native(getattr(exc, "reason", exc))
        result["ok"] = result["status"] in self.params["health_status_codes"]
        if not result["ok"] and result["error"] is None:
            result["error"] = "HTTP %s" % result["status"]
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kind=dict(type="str", required=True, choices=["systemd", "compose", "pm2", "fly"]),
            name=dict(type="str", required=True),
            app_dir=dict(type="path"),
            compose_project=dict(type="str"),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
            container_stats=dict(type="bool", default=True),
            pm2_bin=dict(type="str", default="pm2"),
            pm2_home=dict(type="path"),
            flyctl=dict(type="str", default="flyctl"),
            related=dict(type="list", elements="str", default=[]),
            health_url=dict(type="str"),
            health_timeout=dict(type="int", default=5),
            health_status_codes=dict(type="list", elements="int", default=[200]),
            validate_certs=dict(type="bool", default=True),
            restart_warn=dict(type="int", default=3),
        ),
        required_if=[("kind", "compose", ["compose_project"])],
        supports_check_mode=True,
    )
    kind = module.params["kind"]
    reader = StatusReader(module)
    try:
        instances, release = getattr(reader, kind)()
        related = []
        for name in module.params["related"]:
            if kind == "fly":
                related.append({"name": name, "state": "unknown", "running": None})
            else:
                related.append(getattr(reader, kind + "_related")(name))
        health = reader.health()
    except (TargetError, ParseError) as exc:
        module.fail_json(msg="Reading %s status of %s: %s" % (kind, module.params["name"], to_native(exc)))

    findings = findings_for(kind, module.params["name"], instances, module.params["restart_warn"], health)
    for item in related:
        if item["running"] is False:
            findings.append({"severity": "warning", "code": "related_down",
                             "message": "%s %s is %s" % (kind, item["name"], item["state"])})
    findings.sort(key=lambda f: {"critical": 0, "warning": 1}.get(f["severity"], 2))
    status = {
        "kind": kind, "app": module.params["name"], "running": is_running(instances),
        "state": overall_state(instances), "instances": instances, "release": release,
        "health": health, "related": related, "findings": findings,
    }
    result = dict(status)
    result["status"] = status
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
