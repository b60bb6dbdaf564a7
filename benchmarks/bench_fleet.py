# SPDX-License-Identifier: GPL-3.0-or-later
"""app_down and db_connections diagnose on one host and on a fleet of 30, vs runbook 001 pasted per host (issue 16).

Needs the lab (make lab-up): it reads which image runs sre-lab-pm2 and starts --hosts (30) light targets from
that image on the lab network sre-lab, named sre-bench-fleet-NN and labelled sre.runbooks.bench=fleet. Each
runs the cookcam-api twin under pm2 and nginx in front, without systemd (pm2 start of the ecosystem, as the
image's pm2-cookcam unit does, then nginx; with no systemd, app_down's host_checks reads nginx's state from its init
script, as service_facts falls back to `service`); its database is the lab's, cookcam on sre-lab-systemd. A temporary
inventory puts them in the group cookcam (ansible_connection community.docker.docker, the lab's group_vars), and
playbooks/app_down_diagnose.yml and playbooks/db_connections_diagnose.yml run in --check the way the tests run
playbooks (tests/playbook_runner.py: the repository's ansible.cfg and its forks, ANSIBLE_COLLECTIONS_PATH =
build/collections):

  one host   -l sre-bench-fleet-01, median of --runs (3)
  fleet      all --hosts, median of --runs (3; 1 with --quick; fewer when a run takes over --slow-s, said so)
  lab-pm2    the lab's own pm2 host (systemd, the issue's "7.6 s for 35 tasks"), for reference; --no-lab-host

Baseline, measured in the same run on the same containers: what runbook 001 has a person paste, one command
after another over `docker exec`, host after host (1 host and all hosts):

  app down   pm2 status cookcam-api; pm2 logs cookcam-api --lines 100 (--nostream: the person reads and presses
             Ctrl-C); curl <the health URL>; netstat -tlnp | grep 3000 (as ss: the image has no net-tools)
  database   psql $DATABASE_URL -c "SELECT COUNT(*) FROM pg_stat_activity;" and the long-running query (its
             password in a 0600 ~/.pgpass of the light target, never on a command line)

Goals (issue 16): one host <= 3 s; all hosts <= 3x one host with the default forks. Printed met / NOT met, never
asserted. The containers are removed at the end, also on Ctrl-C or an error; between runs the bench waits until
the fleet holds no session on the lab's PostgreSQL (the twins' pools close idle sessions after 10 s), and it
checks none is left at the end.

    python benchmarks/bench_fleet.py            # 30 hosts, 3 runs of each
    python benchmarks/bench_fleet.py --quick    # 30 hosts, 1 run of each fleet measurement
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from playbook_runner import COLLECTIONS, LAB_INVENTORY, LAB_VAULT_ID, ensure_collection_link, run_playbook  # noqa: E402

NETWORK = "sre-lab"
LAB_PM2 = "sre-lab-pm2"
LAB_DB = "sre-lab-systemd"
PREFIX = "sre-bench-fleet-"
LABEL = "sre.runbooks.bench=fleet"
PLAYBOOKS = [("app_down", "app_down_diagnose"), ("db_connections", "db_connections_diagnose")]
GOAL_ONE_S = 3.0
GOAL_FLEET_RATIO = 3.0
PLAY_TIMEOUT = 1800
CFG_FORKS = int((re.findall(r"^forks\s*=\s*(\d+)", (REPO / "ansible.cfg").read_text(), re.M) or ["5"])[0])
GROUP_VARS = yaml.safe_load((LAB_INVENTORY / "group_vars" / "cookcam.yml").read_text())
HEALTH_URL = GROUP_VARS["sre_app_health_url"]
APP = GROUP_VARS["sre_app_name"]
PORT = int(GROUP_VARS["sre_app_port"])

# The light target: what the image's pm2-cookcam unit starts (pm2 start of the ecosystem, PM2_HOME=/root/.pm2),
# nginx in front, no systemd. DATABASE_URL's password goes into a 0600 ~/.pgpass for the baseline's psql.
START_SCRIPT = """set -e
export PM2_HOME=/root/.pm2
mkdir -p /var/log/cookcam-api
node -e "$BENCH_PGPASS_JS"
pm2 start /opt/cookcam-api/ecosystem.production.config.js >/var/log/bench-pm2-start.log 2>&1
nginx
exec sleep infinity
"""
PGPASS_JS = r"""
const fs = require('fs');
const line = fs.readFileSync('/opt/cookcam-api/.env', 'utf8').match(/^DATABASE_URL=(.*)$/m);
const u = new URL(line[1]);
const esc = (s) => decodeURIComponent(s).replace(/([:\\])/g, '\\$1');
fs.writeFileSync('/root/.pgpass', [u.hostname, u.port || '5432', u.pathname.slice(1), esc(u.username),
  esc(u.password)].join(':') + '\n', { mode: 0o600 });
u.password = '';
fs.writeFileSync('/root/.dburl', u.toString() + '\n');
"""

# runbook 001 (../shared/source-runbooks/001_*.txt), "API Not Responding" with step 2's health check and the
# resolution's logs; "Database Connection Issues". (shown text, argv inside the container)
APP_DOWN_COMMANDS = [
    ("pm2 status %s" % APP, ["pm2", "status", APP]),
    ("pm2 logs %s --lines 100" % APP, ["pm2", "logs", APP, "--lines", "100", "--nostream"]),
    ("curl %s" % HEALTH_URL, ["curl", "-sS", "-m", "10", HEALTH_URL]),
    ("netstat -tlnp | grep %d" % PORT, ["sh", "-c", "ss -tlnp | grep %d" % PORT]),
]
DB_SQL = [
    "SELECT COUNT(*) FROM pg_stat_activity;",
    "SELECT pid, now() - pg_stat_activity.query_start AS duration, query FROM pg_stat_activity "
    "WHERE state = 'active' ORDER BY duration DESC;",
]
DB_COMMANDS = [('psql $DATABASE_URL -c "%s"' % sql, ["sh", "-c", 'psql "$(cat /root/.dburl)" -X -c "%s"' % sql])
               for sql in DB_SQL]


class BenchError(Exception):
    """One line for the user, no traceback."""


def log(msg=""):
    print(msg, flush=True)


def docker(*args, check=True, timeout=120):
    try:
        proc = subprocess.run(["docker"] + list(args), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise BenchError("the docker CLI is not installed (apt-get install docker.io)") from exc
    except subprocess.TimeoutExpired as exc:
        raise BenchError("docker %s did not answer in %d s" % (args[0], timeout)) from exc
    if check and proc.returncode != 0:
        raise BenchError("docker %s failed: %s" % (" ".join(args[:2]), (proc.stderr or proc.stdout).strip()[-300:]))
    return proc


def running(name):
    proc = docker("inspect", "-f", "{{.State.Running}} {{.Config.Image}}", name, check=False)
    state, dummy, image = proc.stdout.strip().partition(" ")
    return image if proc.returncode == 0 and state == "true" else None


def check_lab():
    """The pm2 host's image (what the light targets run); BenchError when the lab is not up."""
    if docker("info", check=False, timeout=30).returncode != 0:
        raise BenchError("the Docker engine is not running (scripts/bootstrap.sh starts it), so the lab is not up")
    image = running(LAB_PM2)
    if not image or not running(LAB_DB):
        raise BenchError("the lab is not up (%s and %s must run): start it with make lab-up" % (LAB_PM2, LAB_DB))
    if docker("network", "inspect", NETWORK, check=False).returncode != 0:
        raise BenchError("the lab network %s is missing: start the lab with make lab-up" % NETWORK)
    if docker("exec", LAB_PM2, "curl", "-fsS", "-m", "5", HEALTH_URL, check=False).returncode != 0:
        raise BenchError("the lab's %s on %s is not healthy (lab/break.sh heal undoes a drill)" % (APP, LAB_PM2))
    return image


def lab_psql(sql):
    """One value from the lab's PostgreSQL (on sre-lab-systemd, read-only queries as postgres over its socket)."""
    proc = docker("exec", LAB_DB, "runuser", "-u", "postgres", "--", "psql", "-XAtc", sql, check=False)
    if proc.returncode != 0:
        raise BenchError("could not read the lab's PostgreSQL on %s: %s" % (LAB_DB, proc.stderr.strip()[-200:]))
    return proc.stdout.strip()


def free_connections():
    return int(lab_psql("SELECT current_setting('max_connections')::int - "
                        "current_setting('superuser_reserved_connections')::int - count(*) "
                        "FROM pg_stat_activity WHERE backend_type = 'client backend'"))


class Fleet:
    """The light targets: started, waited on, and always removed (by their label)."""

    def __init__(self, image, count):
        self.image = image
        self.names = ["%s%02d" % (PREFIX, i + 1) for i in range(count)]
        self.addresses = []

    @staticmethod
    def leftovers():
        return docker("ps", "-aq", "--filter", "label=%s" % LABEL).stdout.split()

    def remove(self):
        ids = self.leftovers()
        if ids:
            docker("rm", "-f", *ids, check=False, timeout=300)
        return len(ids)

    def _run(self, name):
        docker("run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, "--label", LABEL,
               "--label", "sre.runbooks.bench.owner=benchmarks/bench_fleet.py", "-e", "BENCH_PGPASS_JS=%s" % PGPASS_JS,
               "--entrypoint", "bash", self.image, "-c", START_SCRIPT)

    def _healthy(self, name, deadline):
        while time.time() < deadline:
            if docker("exec", name, "curl", "-fsS", "-m", "3", HEALTH_URL, check=False).returncode == 0:
                return True
            if not running(name):
                return False
            time.sleep(1)
        return False

    def start(self, wait_s=120):
        stale = self.remove()
        if stale:
            log("removed %d container(s) an earlier run left behind (label %s)" % (stale, LABEL))
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(self._run, self.names))
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
        self.addresses = [a for n in self.names for a in docker("inspect", "-f", fmt, n, check=False).stdout.split()]
        deadline = time.time() + wait_s
        with ThreadPoolExecutor(6) as pool:
            healthy = list(pool.map(lambda n: self._healthy(n, deadline), self.names))
        bad = [n for n, ok in zip(self.names, healthy) if not ok]
        if bad:
            tail = docker("logs", "--tail", "5", bad[0], check=False)
            raise BenchError("%d light target(s) not healthy in %d s (%s ...): %s" % (
                len(bad), wait_s, bad[0], (tail.stdout + tail.stderr).strip().replace("\n", " | ")[-300:]))
        if len(self.addresses) != len(self.names):
            raise BenchError("%d of %d light targets have an address on %s"
                             % (len(self.addresses), len(self.names), NETWORK))

    def db_sessions(self):
        if not self.addresses:
            return 0
        return int(lab_psql("SELECT count(*) FROM pg_stat_activity WHERE client_addr = ANY('{%s}'::inet[])"
                            % ",".join(self.addresses)))

    def wait_db_quiet(self, wait_s=20):
        """Until the fleet holds no session on the lab's PostgreSQL (the twins' pools idle out after 10 s)."""
        deadline = time.time() + wait_s
        left = self.db_sessions()
        while left and time.time() < deadline:
            time.sleep(1)
            left = self.db_sessions()
        return left

    def end_db_sessions(self):
        """Sessions of the removed fleet still open after the wait: ended (they are the bench's own)."""
        return int(lab_psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE client_addr = ANY('{%s}'::inet[])" % ",".join(self.addresses)))

    def inventory(self, base):
        """A temporary inventory: the light targets in the group cookcam, with the lab's group_vars and kinds."""
        inv = base / "inventory"
        inv.mkdir()
        hosts = {n: {"ansible_connection": "community.docker.docker", "ansible_host": n} for n in self.names}
        (inv / "hosts.yml").write_text(yaml.safe_dump(
            {"all": {"children": {"lab": {"children": {"cookcam": {"hosts": hosts}}}}}}, sort_keys=False))
        (inv / "group_vars").symlink_to(LAB_INVENTORY / "group_vars", target_is_directory=True)
        shutil.copy(LAB_INVENTORY / "kinds.yml", inv / "kinds.yml")
        return inv


class Playbooks:
    """ansible-playbook --check of the diagnose playbooks, as tests/playbook_runner.py runs them."""

    def __init__(self, base, forks):
        self.base = base
        self.forks = forks
        self.first_summary = {}

    def run(self, playbook, inventory, limit, hosts):
        args = ["-f", str(self.forks)] if self.forks else []
        env = {"ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_FORKS": None, "SRE_INCIDENT_WEBHOOK": None}
        start = time.perf_counter()
        try:
            res = run_playbook(playbook, tmp_path=self.base, inventory=inventory, limit=limit, check=True,
                               vault_ids=(LAB_VAULT_ID,), env=env, args=args, timeout=PLAY_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise BenchError("%s did not finish in %d s on %d host(s)" % (playbook, PLAY_TIMEOUT, hosts)) from exc
        took = time.perf_counter() - start
        bad = sorted(h for h, r in res.recap.items() if r.failed or r.unreachable)
        missing = hosts - len(res.recap)
        note = ""
        if res.rc != 0 or bad or missing > 0:
            lines = [ln.strip() for ln in res.output.splitlines() if ln.strip()]
            fatal = next((ln for ln in lines if ln.startswith(("fatal:", "ERROR", "[ERROR]"))),
                         lines[-1] if lines else "no output")
            note = "rc %d, %d host(s) failed or unreachable, %d without a recap: %s" % (
                res.rc, len(bad), max(missing, 0), fatal[:200])
        first = res.recap.get(sorted(res.recap)[0]) if res.recap else None
        if playbook not in self.first_summary and first:
            found = re.search(r"(pm2 %s: (?:UP|DOWN)[^\n]*)" % re.escape(APP), res.stdout)
            self.first_summary[playbook] = "ok=%d skipped=%d rescued=%d%s" % (
                first.ok, first.skipped, first.rescued, ("; " + found.group(1).strip()[:160]) if found else "")
        return took, note


def time_commands(names, commands):
    """Seconds for commands, one after another over docker exec, host after host; and how many failed."""
    failed = 0
    start = time.perf_counter()
    for name in names:
        for dummy, argv in commands:
            proc = subprocess.run(["docker", "exec", "-e", "PM2_HOME=/root/.pm2", name] + argv, capture_output=True,
                                  check=False)
            failed += proc.returncode != 0
    return time.perf_counter() - start, failed


def med(values):
    return statistics.median(values) if values else None


def fmt_s(value):
    return "%.2f s" % value if value is not None else "-"


def fmt_ratio(num, den):
    return "%.2f" % (num / den) if num is not None and den else "-"


def measure(args, fleet, base):
    plays = Playbooks(base, args.forks)
    inventory = fleet.inventory(base)
    one, allh, notes, results = fleet.names[:1], fleet.names, [], {}
    fleet_runs = 1 if args.quick and args.runs is None else (args.runs or 3)
    one_runs = args.runs or 3
    log("warm-up: app_down_diagnose on %s (not timed)" % one[0])
    dummy, note = plays.run("app_down_diagnose", inventory, one[0], 1)
    if note:
        raise BenchError("the warm-up run of app_down_diagnose on %s failed (%s)" % (one[0], note))
    for short, playbook in PLAYBOOKS:
        t_one, t_all, slow = [], [], None
        for i in range(max(one_runs, fleet_runs)):
            if i < one_runs:
                fleet.wait_db_quiet()
                took, note = plays.run(playbook, inventory, one[0], 1)
                t_one.append(took)
                notes += ["%s, one host, run %d: %s" % (playbook, i + 1, note)] if note else []
                log("  %s one host run %d: %.2f s" % (playbook, i + 1, took))
            if i < fleet_runs and slow is None:
                fleet.wait_db_quiet()
                took, note = plays.run(playbook, inventory, None, len(allh))
                t_all.append(took)
                notes += ["%s, %d hosts, run %d: %s" % (playbook, len(allh), i + 1, note)] if note else []
                log("  %s %d hosts run %d: %.2f s" % (playbook, len(allh), i + 1, took))
                if took > args.slow_s and i + 1 < fleet_runs:
                    slow = "%d of %d runs (run %d took %.0f s > --slow-s %.0f)" % (
                        i + 1, fleet_runs, i + 1, took, args.slow_s)
        results[short] = {"one": t_one, "all": t_all, "slow": slow}
    if not args.no_lab_host:
        for short, playbook in PLAYBOOKS:
            times = []
            for i in range(one_runs):
                took, note = plays.run(playbook, LAB_INVENTORY, "lab-pm2", 1)
                times.append(took)
                notes += ["%s on lab-pm2, run %d: %s" % (playbook, i + 1, note)] if note else []
            log("  %s on lab-pm2 (the lab's own pm2 host, systemd): %s" % (playbook, ", ".join("%.2f s" % t for t in times)))
            results[short]["lab"] = times
    fleet.wait_db_quiet()
    for key, commands in (("app_down", APP_DOWN_COMMANDS), ("db_connections", DB_COMMANDS)):
        b_one, b_all, failed = [], [], 0
        for i in range(max(one_runs, fleet_runs)):
            if i < one_runs:
                took, bad = time_commands(one, commands)
                b_one.append(took)
                failed += bad
            if i < fleet_runs:
                took, bad = time_commands(allh, commands)
                b_all.append(took)
                failed += bad
        log("  baseline %s: one host %s, %d hosts %s"
            % (key, ", ".join("%.2f s" % t for t in b_one), len(allh), ", ".join("%.2f s" % t for t in b_all)))
        results[key]["base_one"], results[key]["base_all"] = b_one, b_all
        if failed:
            notes.append("baseline %s: %d command(s) exited non-zero" % (key, failed))
    return results, notes, plays.first_summary, one_runs, fleet_runs


def report(args, results, notes, summaries, one_runs, fleet_runs, sessions_left):
    hosts = args.hosts
    forks = args.forks or "%d (ansible.cfg)" % CFG_FORKS
    log("")
    load_after = "%.2f %.2f %.2f" % os.getloadavg()
    log("load average before %s, after %s (%d CPUs)" % (args.load_before, load_after, os.cpu_count() or 0))
    log("hosts = %d light targets (pm2 twin of cookcam-api, no systemd), forks = %s, --check; medians of %d run(s) "
        "on one host and %d on %d hosts" % (hosts, forks, one_runs, fleet_runs, hosts))
    head = "%-58s %10s %10s %9s" % ("", "one host", "%d hosts" % hosts, "ratio")
    log(head)
    goals = []
    for short, playbook in PLAYBOOKS:
        r = results[short]
        one, allh = med(r["one"]), med(r["all"])
        b_one, b_all = med(r["base_one"]), med(r["base_all"])
        cmds = APP_DOWN_COMMANDS if short == "app_down" else DB_COMMANDS
        log("%-58s %10s %10s %9s" % ("playbooks/%s.yml" % playbook, fmt_s(one), fmt_s(allh), fmt_ratio(allh, one)))
        log("%-58s %10s %10s %9s" % ("  baseline: runbook 001's %d commands/host, docker exec" % len(cmds),
                                     fmt_s(b_one), fmt_s(b_all), fmt_ratio(b_all, b_one)))
        log("%-58s %10s %10s" % ("  ratio = ours / baseline", fmt_ratio(one, b_one), fmt_ratio(allh, b_all)))
        if "lab" in r:
            log("%-58s %10s" % ("  lab-pm2 (the lab's pm2 host, systemd), for reference", fmt_s(med(r["lab"]))))
        if r["slow"]:
            log("  %d hosts: %s" % (hosts, r["slow"]))
        if playbook in summaries:
            log("  one host's recap: %s" % summaries[playbook])
        goals.append(("%s: one host <= %.0f s" % (playbook, GOAL_ONE_S), fmt_s(one),
                      one is not None and one <= GOAL_ONE_S))
        goals.append(("%s: %d hosts <= %.0fx one host" % (playbook, hosts, GOAL_FLEET_RATIO), fmt_ratio(allh, one),
                      one is not None and allh is not None and allh <= GOAL_FLEET_RATIO * one))
    log("baseline commands (sequential, as a person pastes them, host after host):")
    for text, dummy in APP_DOWN_COMMANDS + DB_COMMANDS:
        log("  %s" % text)
    log("goals (issue 16):")
    for text, value, met in goals:
        log("  %-62s %8s  %s" % (text, value, "met" if met else "NOT met"))
    for note in notes:
        log("NOTE: %s" % note)
    log("database sessions of the fleet left on %s after the removal: %d" % (LAB_DB, sessions_left))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of each fleet measurement (one host: still 3)")
    parser.add_argument("--hosts", type=int, default=30, help="light targets in the fleet (default 30)")
    parser.add_argument("--runs", type=int, default=None, help="runs of each measurement (default 3)")
    parser.add_argument("--forks", type=int, default=None, help="-f for ansible-playbook (default: ansible.cfg's)")
    parser.add_argument("--slow-s", type=float, default=240.0,
                        help="after a fleet run slower than this, stop its repeats (default 240)")
    parser.add_argument("--no-lab-host", action="store_true", help="skip the reference runs on lab-pm2")
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.hosts > 99 or (args.runs is not None and args.runs < 1):
        parser.error("--hosts must be 1..99 and --runs at least 1")

    def on_term(signum, frame):  # pylint: disable=unused-argument
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    fleet, base, sessions_left = None, None, None
    args.load_before = "%.2f %.2f %.2f" % os.getloadavg()
    try:
        image = check_lab()
        need = args.hosts + (args.forks or CFG_FORKS) + 2
        free = free_connections()
        if free < need:
            raise BenchError("the lab's PostgreSQL on %s has %d free connections; %d twins and the forks need %d "
                             "(fewer --hosts)" % (LAB_DB, free, args.hosts, need))
        ensure_collection_link()
        base = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
        fleet = Fleet(image, args.hosts)
        log("starting %d light targets %s01..%02d from %s (label %s) ..." % (args.hosts, PREFIX, args.hosts, image, LABEL))
        started = time.perf_counter()
        fleet.start()
        log("%d light targets healthy in %.1f s" % (args.hosts, time.perf_counter() - started))
        results, notes, summaries, one_runs, fleet_runs = measure(args, fleet, base)
    except BenchError as exc:
        print("bench_fleet: %s" % exc, file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("bench_fleet: interrupted, removing the light targets", file=sys.stderr, flush=True)
        return 130
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if fleet is not None:
                try:
                    removed = fleet.remove()
                    log("removed %d light target(s) (docker rm -f, label %s)" % (removed, LABEL))
                    sessions_left = fleet.wait_db_quiet(10)
                    if sessions_left:
                        log("ended %d session(s) the removed fleet left on %s" % (fleet.end_db_sessions(), LAB_DB))
                        sessions_left = fleet.db_sessions()
                except BenchError as exc:
                    print("bench_fleet: cleaning up: %s" % exc, file=sys.stderr, flush=True)
            if base is not None:
                shutil.rmtree(base, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, previous)
    report(args, results, notes, summaries, one_runs, fleet_runs, sessions_left if sessions_left is not None else -1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
