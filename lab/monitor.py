#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's monitoring stack and the closed loop, with Debian's own packages (no mock):

  lab/monitor.py up       start Prometheus, Alertmanager, the blackbox, postgres and node exporters and
                          ansible-rulebook (the collection's rulebook) on loopback, scraping the twins
  lab/monitor.py status   one line per part, and the alerts firing
  lab/monitor.py loop     inject a fault (lab/break.sh stop-app: saasresto's unit stopped), then time each stage:
                          fault -> firing (Prometheus, the shipped rules) -> posted (Alertmanager) -> job start
                          (the rulebook runs app_down diagnose, then remediate with sre_confirm=yes) -> healthy
                          -> resolved (Prometheus and Alertmanager); prints the seconds and writes --json FILE
  lab/monitor.py down     stop every part it started

What is the collection's and what is the lab's:
  rules       extensions/prometheus/rules/*.yml, as shipped (thresholds and `for` untouched)
  rulebook    extensions/eda/rulebooks/alertmanager.yml, as shipped, but its source listens on the lab's port
  alertmanager extensions/prometheus/alertmanager.yml, as shipped, but the webhook URL is the lab's rulebook port
              and its timing is the lab's: group_wait 1s, group_interval 5s (the example's 30s/5m would only add
              waiting to the loop; repeat_interval stays 10m, the rulebook's throttle)
  prometheus  the scrape layout of extensions/prometheus/prometheus.yml (job names, labels app and host ->
              instance), targets are the running twins; scrape and evaluation every 2 s (the example: 15 s)

State, logs and the rendered configs live in $SRE_MONITOR_DIR (default build/monitor). Ports (loopback) come from
SRE_MONITOR_PORT_BASE (default 19000): Prometheus +90, Alertmanager +93, blackbox +115, postgres exporter +187,
node exporter +100, the rulebook's Alertmanager source +50.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LAB_PASSWORD_FILE_NAME = "pgpass-exporter"
# the exporter logs in as saasresto's own role (it sees the counts and settings the rules read); the password is
# the twin's lab-only credential (lab/README.md), read from the app's .env, handed over in a 0600 file
LAB_DB_USER = "saasresto"


class MonitorError(Exception):
    """One clear line for the operator."""


def _ports(base):
    return {"prometheus": base + 90, "alertmanager": base + 93, "blackbox": base + 115,
            "postgres_exporter": base + 187, "node_exporter": base + 100, "rulebook": base + 50}


class Stack:
    def __init__(self, state_dir=None, port_base=None):
        self.dir = Path(state_dir or os.environ.get("SRE_MONITOR_DIR") or REPO / "build" / "monitor").resolve()
        self.ports = _ports(int(port_base or os.environ.get("SRE_MONITOR_PORT_BASE") or 19000))
        self.venv_bin = Path(sys.executable).parent

    # ---------------------------------------------------------------- the twins, as the lab runs them
    @staticmethod
    def _ip(container):
        out = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                              container], capture_output=True, text=True, check=False)
        if out.returncode != 0 or not out.stdout.split():
            raise MonitorError("the lab is not running (container %s not found): start it with lab/up.sh" % container)
        return out.stdout.split()[0]

    def twins(self):
        """(app, inventory host, metrics address, health URL) of every twin that runs a process of its own.
        hotdash runs on the FAKE Fly (no process, no /metrics): it is not scraped."""
        vps, pm2 = self._ip("sre-lab-systemd"), self._ip("sre-lab-pm2")
        return [
            ("saasresto", "lab-systemd", "%s:3000" % vps, "http://%s:3000/health" % vps),
            ("sme_booking", "lab-sme", "%s:3001" % vps, "http://%s:3001/api/health" % vps),
            ("cookcam", "lab-pm2", "%s:3000" % pm2, "http://%s:3000/health" % pm2),
            ("ferreteria", "lab-compose", "127.0.0.1:13000", "http://127.0.0.1:13000/health"),
        ]

    # ---------------------------------------------------------------- configs
    def render(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        twins = self.twins()
        host_is_instance = [{"source_labels": ["host"], "target_label": "instance"},
                            {"regex": "host", "action": "labeldrop"}]
        probe = [{"source_labels": ["__address__"], "target_label": "__param_target"},
                 {"source_labels": ["__address__"], "target_label": "target"},
                 {"source_labels": ["host"], "target_label": "instance"},
                 {"target_label": "__address__", "replacement": "127.0.0.1:%d" % self.ports["blackbox"]},
                 {"regex": "host", "action": "labeldrop"}]
        prometheus = {
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s", "scrape_timeout": "1s"},
            "rule_files": [str(REPO / "extensions" / "prometheus" / "rules" / "*.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": ["127.0.0.1:%d" % self.ports["alertmanager"]]}]}]},
            "scrape_configs": [
                {"job_name": "sre_app", "static_configs": [
                    {"targets": [addr], "labels": {"app": app, "host": host}} for app, host, addr, _ in twins],
                 "relabel_configs": host_is_instance},
                {"job_name": "sre_health", "metrics_path": "/probe", "params": {"module": ["http_2xx"]},
                 "static_configs": [{"targets": [url], "labels": {"app": app, "host": host}}
                                    for app, host, _, url in twins],
                 "relabel_configs": probe},
                # this machine is ferreteria's compose host (the local engine): its node exporter is that host's
                {"job_name": "sre_node", "static_configs": [
                    {"targets": ["127.0.0.1:%d" % self.ports["node_exporter"]],
                     "labels": {"app": "ferreteria", "host": "lab-compose"}}],
                 "relabel_configs": host_is_instance},
                # saasresto's PostgreSQL (the VPS container's, published on 127.0.0.1:25432)
                {"job_name": "sre_postgres", "static_configs": [
                    {"targets": ["127.0.0.1:%d" % self.ports["postgres_exporter"]],
                     "labels": {"app": "saasresto", "host": "lab-systemd"}}],
                 "relabel_configs": host_is_instance},
            ],
        }
        alertmanager = yaml.safe_load((REPO / "extensions" / "prometheus" / "alertmanager.yml").read_text())
        alertmanager["route"].update({"group_wait": "1s", "group_interval": "5s"})
        for receiver in alertmanager["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = "http://127.0.0.1:%d/alerts" % self.ports["rulebook"]
        rulebook = yaml.safe_load((REPO / "extensions" / "eda" / "rulebooks" / "alertmanager.yml").read_text())
        rulebook[0]["sources"][0]["sre.runbooks.alertmanager"]["port"] = self.ports["rulebook"]
        files = {"prometheus.yml": prometheus, "alertmanager.yml": alertmanager, "rulebook.yml": rulebook}
        for name, data in files.items():
            (self.dir / name).write_text("# rendered by lab/monitor.py for the lab: do not edit\n"
                                         + yaml.safe_dump(data, sort_keys=False))
        shutil.copyfile(REPO / "extensions" / "prometheus" / "blackbox.yml", self.dir / "blackbox.yml")
        # ansible-rulebook copies the inventory into each run's private directory: the lab inventory's own paths
        # (sre_lab_root, relative to inventory_dir) are made absolute in the copy it is given
        inventory = self.dir / "inventory"
        shutil.rmtree(inventory, ignore_errors=True)
        shutil.copytree(REPO / "inventories" / "lab", inventory)
        all_vars = inventory / "group_vars" / "all" / "main.yml"
        all_vars.write_text(all_vars.read_text().replace('"{{ inventory_dir }}/../../lab"', '"%s"' % (REPO / "lab")))
        # the exporter's password: a 0600 file, never its argv or environment
        pass_file = self.dir / LAB_PASSWORD_FILE_NAME
        fd = os.open(pass_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self._lab_db_password())
        return files

    @staticmethod
    def _lab_db_password():
        """saasresto's database password, from its DATABASE_URL (a lab-only credential); never printed."""
        out = subprocess.run(["docker", "exec", "sre-lab-systemd", "sed", "-n", "s/^DATABASE_URL=//p",
                              "/opt/saasresto/.env"], capture_output=True, text=True, check=False)
        url = urllib.parse.urlsplit(out.stdout.strip().strip('"')) if out.returncode == 0 else None
        if url is None or not url.password:
            raise MonitorError("saasresto's DATABASE_URL is missing from /opt/saasresto/.env: heal the lab first")
        return urllib.parse.unquote(url.password)

    # ---------------------------------------------------------------- processes
    def _commands(self):
        d, p = self.dir, self.ports
        rulebook_env = {
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(REPO / "build" / "collections"),
            "ANSIBLE_VAULT_IDENTITY_LIST": "lab@%s" % (REPO / "inventories" / "lab" / ".vault-pass"),
            "SRE_INCIDENT_DIR": str(d / "incidents"),
            "PATH": "%s:%s" % (self.venv_bin, os.environ.get("PATH", "")),
        }
        java = shutil.which("java")
        if java:
            rulebook_env["JAVA_HOME"] = str(Path(os.path.realpath(java)).parents[1])
        return {
            "node_exporter": (["prometheus-node-exporter", "--web.listen-address=127.0.0.1:%d" % p["node_exporter"],
                               "--collector.textfile.directory=/var/lib/prometheus/node-exporter"], {}),
            "blackbox": (["prometheus-blackbox-exporter", "--config.file=%s" % (d / "blackbox.yml"),
                          "--web.listen-address=127.0.0.1:%d" % p["blackbox"]], {}),
            "postgres_exporter": (["prometheus-postgres-exporter",
                                   "--web.listen-address=127.0.0.1:%d" % p["postgres_exporter"],
                                   "--extend.query-path=%s" % (REPO / "extensions" / "prometheus" /
                                                               "postgres_exporter" / "queries.yml")],
                                  {"DATA_SOURCE_URI": "127.0.0.1:25432/saasresto?sslmode=disable",
                                   "DATA_SOURCE_USER": LAB_DB_USER,
                                   "DATA_SOURCE_PASS_FILE": str(d / LAB_PASSWORD_FILE_NAME)}),
            "alertmanager": (["prometheus-alertmanager", "--config.file=%s" % (d / "alertmanager.yml"),
                              "--storage.path=%s" % (d / "alertmanager-data"),
                              "--web.listen-address=127.0.0.1:%d" % p["alertmanager"],
                              "--cluster.listen-address="], {}),
            "prometheus": (["prometheus", "--config.file=%s" % (d / "prometheus.yml"),
                            "--storage.tsdb.path=%s" % (d / "prometheus-data"),
                            "--web.listen-address=127.0.0.1:%d" % p["prometheus"]], {}),
            "rulebook": ([str(self.venv_bin / "ansible-rulebook"), "--rulebook", str(d / "rulebook.yml"),
                          "-i", str(d / "inventory"), "-v"], rulebook_env),
        }

    def _pid(self, name):
        try:
            pid = int((self.dir / ("%s.pid" % name)).read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def up(self):
        for tool in ("prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter",
                     "prometheus-postgres-exporter", "prometheus-node-exporter"):
            if shutil.which(tool) is None:
                raise MonitorError("%s is not installed (scripts/bootstrap.sh installs it)" % tool)
        if not (self.venv_bin / "ansible-rulebook").exists() or shutil.which("java") is None:
            raise MonitorError("ansible-rulebook (requirements/dev.txt) and Java 17 are needed")
        self.down(quiet=True)
        for data in ("prometheus-data", "alertmanager-data", "incidents"):
            shutil.rmtree(self.dir / data, ignore_errors=True)
        self.render()
        for name, (argv, env) in self._commands().items():
            log = open(self.dir / ("%s.log" % name), "w")  # pylint: disable=consider-using-with
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=dict(os.environ, **env), cwd=str(self.dir), start_new_session=True)
            (self.dir / ("%s.pid" % name)).write_text(str(proc.pid))
        waits = {"prometheus": "/-/ready", "alertmanager": "/-/ready", "blackbox": "/metrics",
                 "postgres_exporter": "/metrics", "node_exporter": "/metrics"}
        for name, path in waits.items():
            url = "http://127.0.0.1:%d%s" % (self.ports[name], path)
            if not _wait(lambda url=url: _get(url) is not None, 30):
                raise MonitorError("%s did not start: see %s" % (name, self.dir / ("%s.log" % name)))
        if not _wait(lambda: _port_open(self.ports["rulebook"]), 90):
            raise MonitorError("ansible-rulebook did not listen: see %s" % (self.dir / "rulebook.log"))
        # every twin scraped once, so `up` has a value before anything is broken
        if not _wait(lambda: len(self.targets_up()) >= len(self.twins()), 30):
            raise MonitorError("Prometheus does not scrape every twin: %s" % self.targets_up())

    def down(self, quiet=False):
        for name in self._commands() if self.dir.is_dir() else []:
            pid = self._pid(name)
            if pid is None:
                continue
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                continue
            if not _wait(lambda pid=pid: not _alive(pid), 20):
                os.killpg(pid, signal.SIGKILL)
            if not quiet:
                print("stopped %s" % name)

    # ---------------------------------------------------------------- reading the stack
    def query(self, path, port="prometheus"):
        body = _get("http://127.0.0.1:%d%s" % (self.ports[port], path))
        return json.loads(body) if body else None

    def targets_up(self):
        res = self.query("/api/v1/query?query=" + urllib.parse.quote('up{job="sre_app"} == 1'))
        return sorted(r["metric"]["app"] for r in (res or {}).get("data", {}).get("result", []))

    def alerts(self, state="firing"):
        res = self.query("/api/v1/alerts") or {}
        return [a for a in res.get("data", {}).get("alerts", []) if a.get("state") == state]

    def am_alerts(self):
        return self.query("/api/v2/alerts?active=true&silenced=false&inhibited=false", "alertmanager") or []

    def am_webhook_counts(self):
        text = _get("http://127.0.0.1:%d/metrics" % self.ports["alertmanager"]) or ""
        counts = {"total": 0.0, "failed": 0.0}
        for line in text.splitlines():
            for key, metric in (("total", "alertmanager_notifications_total"),
                                ("failed", "alertmanager_notifications_failed_total")):
                if line.startswith(metric + "{") and 'integration="webhook"' in line:
                    counts[key] += float(line.rsplit(" ", 1)[1])
        return counts

    def records(self):
        incidents = self.dir / "incidents"
        return sorted(incidents.glob("*.json")) if incidents.is_dir() else []

    def status(self):
        for name in self._commands():
            print("%-18s %s" % (name, "running" if self._pid(name) else "stopped"))
        if self._pid("prometheus"):
            print("scraped and up: %s" % ", ".join(self.targets_up()))
            for alert in self.alerts():
                labels = alert["labels"]
                print("FIRING %s app=%s instance=%s signal=%s" % (labels.get("alertname"), labels.get("app"),
                                                                   labels.get("instance"), labels.get("signal")))

    # ---------------------------------------------------------------- the loop
    def loop(self, deadline_s=420):
        """Break saasresto (stop its unit), let the stack find and fix it, and time every stage."""
        app, host = "saasresto", "lab-systemd"
        health = [url for a, _, _, url in self.twins() if a == app][0]
        if _get(health) is None:
            raise MonitorError("%s is not healthy before the fault: heal the lab first (lab/break.sh heal)" % app)

        def mine(alerts):
            return [a for a in alerts if a.get("labels", {}).get("alertname") == "AppDown"
                    and a.get("labels", {}).get("app") == app]

        if mine(self.alerts()) or mine(self.alerts("pending")):
            raise MonitorError("AppDown of %s is already pending or firing: wait until it resolves" % app)
        # the lab's restart cooldown record of the app is cleared first (the twin is reset, as between drills): an
        # earlier run's restart would otherwise, rightly, make app_down refuse a second restart inside 5 minutes
        subprocess.run(["docker", "exec", "sre-lab-systemd", "rm", "-f", "/var/lib/sre-runbooks/cooldown/%s.json" % app,
                        "/var/lib/sre-runbooks/cooldown.json"], capture_output=True, check=False)
        records_before = set(self.records())
        posted_before = self.am_webhook_counts()["total"]
        log_offset = (self.dir / "rulebook.log").stat().st_size
        end = time.monotonic() + deadline_s
        marks = {}
        t0 = time.monotonic()
        subprocess.run([str(REPO / "lab" / "break.sh"), "stop-app"], check=True, capture_output=True)
        marks["fault"] = 0.0

        def left():
            return max(1.0, end - time.monotonic())

        checks = {
            "firing": lambda: bool(mine(self.alerts())),
            "posted": lambda: self.am_webhook_counts()["total"] > posted_before,
            # the diagnose playbook's first play has begun (ansible-rulebook prints the run's output in its log)
            "job_start": lambda: "App down - diagnose" in _tail(self.dir / "rulebook.log", log_offset),
            "healthy": lambda: _get(health) is not None,
            "resolved": lambda: not mine(self.alerts()) and not mine(self.am_alerts()),
        }
        order = list(checks)

        def poll():
            """Each stage's first moment, all watched at once; a stage counts only after the one before it (and
            the resolution only after the firing: it may come before the health URL answers again)."""
            for index, name in enumerate(order):
                if name in marks:
                    continue
                ready = "firing" in marks if name == "resolved" else (index == 0 or order[index - 1] in marks)
                if ready and checks[name]():
                    marks[name] = round(time.monotonic() - t0, 1)
            return len(marks) == len(order) + 1

        if not _wait(poll, left(), 0.5):
            missing = [name for name in order if name not in marks]
            raise MonitorError("the loop stopped before %s (marks so far: %s); logs in %s"
                               % (", ".join(missing), marks, self.dir))

        def mark(name, predicate):
            if not _wait(predicate, left(), 0.5):
                raise MonitorError("the loop stopped before '%s' (marks so far: %s); logs in %s"
                                   % (name, marks, self.dir))
            marks[name] = round(time.monotonic() - t0, 1)

        def new_records():
            return [json.loads(p.read_text()) for p in self.records() if p not in records_before]

        # both runs of the rule (diagnose, then remediate) are recorded once each
        mark("jobs_done", lambda: {r.get("phase") for r in new_records() if r.get("runbook") == "app_down"}
             >= {"diagnose", "remediate"})
        records = [r for r in new_records() if r.get("runbook") == "app_down"]
        counts = self.am_webhook_counts()
        return {
            "app": app, "host": host, "marks_s": marks,
            "stages_s": {"fault_to_firing": marks["firing"],
                         "firing_to_job_start": round(marks["job_start"] - marks["firing"], 1),
                         "job_start_to_healthy": round(marks["healthy"] - marks["job_start"], 1),
                         "healthy_to_resolved": round(marks["resolved"] - marks["healthy"], 1)},
            "records": [{"runbook": r.get("runbook"), "phase": r.get("phase"), "id": r.get("id"),
                         "hosts": r.get("hosts"), "outcome": r.get("outcome"),
                         "alert": (r.get("parameters") or {}).get("sre_alert")} for r in records],
            "webhook_posts": counts["total"] - posted_before, "webhook_failed": counts["failed"],
        }


# ---------------------------------------------------------------- small helpers
def _get(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # nosec - loopback and lab containers only
            return response.read().decode() if 200 <= response.status < 300 else None
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _port_open(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _tail(path, offset):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            handle.seek(offset)
            return handle.read()
    except OSError:
        return ""


def _wait(predicate, deadline_s, step=0.5):
    """Poll until predicate() holds; the deadline only ends a hung run (not a speed assertion)."""
    end = time.monotonic() + deadline_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(step)


def print_loop(result):
    stages = result["stages_s"]
    print("closed loop on %s (%s): the unit stopped, nobody touched it" % (result["app"], result["host"]))
    print("  fault -> firing (Prometheus, AppDown for 1m) %6.1f s" % stages["fault_to_firing"])
    print("  firing -> job start (Alertmanager -> rulebook) %6.1f s" % stages["firing_to_job_start"])
    print("  job start -> healthy (app_down diagnose+remediate) %6.1f s" % stages["job_start_to_healthy"])
    print("  healthy -> resolved (Prometheus and Alertmanager) %6.1f s%s" % (
        stages["healthy_to_resolved"], "  (resolved before the health URL answered: /metrics came back first)"
        if stages["healthy_to_resolved"] < 0 else ""))
    print("  fault -> resolved %6.1f s" % result["marks_s"]["resolved"])
    print("  webhook posts %d, failed %d" % (result["webhook_posts"], result["webhook_failed"]))
    for record in result["records"]:
        print("  record: %s/%s id=%s hosts=%s outcome=%s alert=%s" % (
            record["runbook"], record["phase"], record["id"], ",".join(record["hosts"] or []),
            record["outcome"], record["alert"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("action", choices=["up", "down", "status", "loop"])
    parser.add_argument("--json", help="loop: write the measured stages to this file")
    args = parser.parse_args(argv)
    stack = Stack()
    try:
        if args.action == "up":
            stack.up()
            print("monitoring up: Prometheus http://127.0.0.1:%d, Alertmanager http://127.0.0.1:%d, "
                  "rulebook source 127.0.0.1:%d (state in %s)" % (stack.ports["prometheus"],
                                                                 stack.ports["alertmanager"],
                                                                 stack.ports["rulebook"], stack.dir))
        elif args.action == "down":
            stack.down()
        elif args.action == "status":
            stack.status()
        else:
            result = stack.loop()
            print_loop(result)
            if args.json:
                Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    except MonitorError as exc:
        print("ERROR: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
