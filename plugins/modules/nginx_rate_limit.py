#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nginx_rate_limit
short_description: Read nginx rate limit rejections, raise a zone's rate or exempt addresses, and put it back
version_added: 0.1.0
description:
  - Reads the C(limiting requests) and C(delaying request) lines of the nginx error logs in a window (what
    C(grep "limiting requests" error.log) shows), counted per zone, with the top clients and the top request paths
    (method and path only; a query string can carry a token and is never returned).
  - Reads the C(limit_req_zone) definitions and the C(limit_req) uses from C(nginx -T), with the file each is in.
  - With O(zone) and O(rate), sets that zone's rate in the file that defines it. With O(zone) and O(allow), exempts
    those addresses or networks from the zone (a C(geo) and a C(map) block before its definition; the zone is then
    keyed by the map, and an empty key is not limited); an empty O(allow) list removes the exemption.
  - A change keeps the file's content first in a C(0600) backup under O(state_dir) (never next to the file, where an
    C(include *.conf) or C(sites-enabled/*) would load it), writes the file atomically (mode kept), runs C(nginx -t),
    and puts the file back at once when the test fails; then it reloads nginx (O(reload_command)).
  - With O(restore=true), puts every file this module changed back as it was before its first change (the records
    under O(state_dir)), tests and reloads; a second restore finds nothing to put back.
  - With O(revert_after), a change also leaves a systemd timer (C(systemd-run --on-active)) that puts the files back
    at that deadline, tests and reloads, even when nobody comes back; RV(revert) names it. A restore stops it.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: In check mode nothing is written or reloaded; RV(would_change) and the diff show what would change.
  diff_mode:
    support: full
    description: The changed file before and after.
options:
  error_log:
    description: The nginx error logs to read.
    type: list
    elements: path
    default: [/var/log/nginx/error.log]
  since:
    description: The window of the error log read, seconds or V(90s), V(15m), V(2h).
    type: str
    default: 1h
  top:
    description: How many clients and request paths to list.
    type: int
    default: 10
  nginx_bin:
    description: The nginx executable (C(nginx -T), C(nginx -t)).
    type: str
    default: nginx
  reload_command:
    description: How nginx is reloaded after a change that passed C(nginx -t).
    type: list
    elements: str
    default: [nginx, -s, reload]
  zone:
    description: The zone to change (a C(limit_req_zone) name).
    type: str
  rate:
    description: The new rate of O(zone), like V(20r/s) or V(600r/m).
    type: str
  allow:
    description:
      - Addresses or networks exempt from O(zone) (V(10.0.0.0/8), V(203.0.113.7)); an empty list removes the
        exemption. Not set, the exemption is left as it is.
    type: list
    elements: str
  restore:
    description: Put every file this module changed back as it was before its first change.
    type: bool
    default: false
  revert_after:
    description:
      - With a change, put the files back by themselves after this long (seconds or V(30m), V(2h)), through a
        systemd timer. Not set, nothing is scheduled.
    type: str
  state_dir:
    description: Where the backups and the records of the changes are kept (C(0700)).
    type: path
    default: /var/lib/sre-runbooks/rate_limit
  rejected_warn:
    description: This many rejected requests or more in the window is the finding C(rate_limited) (warning).
    type: int
    default: 1
notes:
  - Runs where nginx runs (the managed host); reading the error log and C(nginx -T) needs root.
seealso:
  - name: ngx_http_limit_req_module
    description: The nginx module whose zones and log lines this module reads.
    link: https://nginx.org/en/docs/http/ngx_http_limit_req_module.html
"""

EXAMPLES = r"""
- name: What the rate limits rejected in the last 15 minutes
  sre.runbooks.nginx_rate_limit:
    since: 15m
  register: limits

- name: Raise the api zone to 20 r/s for two hours
  sre.runbooks.nginx_rate_limit:
    zone: api
    rate: 20r/s
    revert_after: 2h

- name: Exempt the office network from the api zone
  sre.runbooks.nginx_rate_limit:
    zone: api
    allow: [203.0.113.0/24]

- name: Put the configuration back
  sre.runbooks.nginx_rate_limit:
    restore: true
"""

RETURN = r"""
status:
  description: V(ok), V(warning) or V(critical).
  returned: always
  type: str
findings:
  description: What is wrong or worth knowing, as C({severity, code, message}).
  returned: always
  type: list
  elements: dict
zones:
  description:
    - Every C(limit_req_zone) of the configuration, as C({name, key, size, rate, file, line, rejected, delayed,
      clients, used_in, allowed}); C(rejected)/C(delayed)/C(clients) count the window's log lines, C(used_in) the
      C(limit_req) uses (C({file, line, burst, nodelay})), C(allowed) the addresses this module exempted.
  returned: always
  type: list
  elements: dict
rejected:
  description: Requests rejected (C(limiting requests)) in the window, all zones.
  returned: always
  type: int
delayed:
  description: Requests delayed (C(delaying request)) in the window, all zones.
  returned: always
  type: int
top_clients:
  description: The clients with the most rejections, as C({client, rejected, zones, share_pct}).
  returned: always
  type: list
  elements: dict
top_requests:
  description: The most rejected request paths (method and path, no query string), as C({request, rejected}).
  returned: always
  type: list
  elements: dict
window:
  description: C({since, first, last}) epoch seconds of the window and of the first and last line in it.
  returned: always
  type: dict
would_change:
  description: The files a change or restore writes (in check mode, would write).
  returned: always
  type: list
  elements: str
changed_files:
  description: The files written, as C({file, backup}) (C(backup) holds the content before).
  returned: always
  type: list
  elements: dict
restored:
  description: The files put back by O(restore), as C({file, backup}).
  returned: always
  type: list
  elements: dict
revert:
  description: The systemd timer unit that puts the files back at the deadline (null when none), with its C(at).
  returned: always
  type: dict
nginx_test:
  description: The output of the last C(nginx -t) (null when none ran).
  returned: always
  type: str
"""

import hashlib
import json
import os
import re
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sre.runbooks.plugins.module_utils._common import Findings, parse_duration
from ansible_collections.sre.runbooks.plugins.module_utils import _nginx

RECORDS = "changes.json"
REVERT_UNIT = "sre-rate-limit-revert"
# The job a systemd timer runs at the deadline (revert_after), without Ansible: every recorded file back as before its
# first change, nginx -t (refused: the files as they were, the unit fails and says why), the records marked
# reverted, the reload. Nothing recorded (restored already): nothing to do.
REVERT_PY = r"""
import hashlib, json, os, subprocess, sys, time
state, nginx, reload = sys.argv[1], sys.argv[2], sys.argv[3:]
records_path = os.path.join(state, "changes.json")
try:
    with open(records_path) as handle:
        records = json.load(handle)
except (IOError, OSError, ValueError):
    raise SystemExit(0)  # nothing recorded: put back already
first, last = {}, {}
for record in records:
    first.setdefault(record["file"], record["backup"])
    last[record["file"]] = record
backups, current = {}, {}
try:
    for path in first:
        with open(first[path], "rb") as handle:
            backups[path] = handle.read()
        with open(path, "rb") as handle:
            current[path] = handle.read()
        wanted = last[path].get("sha256_after")
        if wanted and hashlib.sha256(current[path]).hexdigest() != wanted and current[path] != backups[path]:
            raise SystemExit("%s was edited after the rate_limit change: not put back (its backup: %s)" % (path, first[path]))
except (IOError, OSError) as exc:
    raise SystemExit("cannot read a file or its backup (%s): nothing was put back" % exc)


def write(path, data):
    with open(os.path.realpath(path), "wb") as handle:
        handle.write(data)


for path in first:
    write(path, backups[path])
if subprocess.call([nginx, "-t"]) != 0:
    for path in first:
        write(path, current[path])
    raise SystemExit("nginx -t refused the configuration put back: the files are as they were")
os.rename(records_path, records_path + "." + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ".reverted")
raise SystemExit(subprocess.call(reload))
"""


class Failure(Exception):
    pass


def _read_tail(path, since, limit=64 << 20):
    """The lines of path (at most its last limit bytes), or None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            data = handle.read()
    except (IOError, OSError):
        return None
    return data.decode("utf-8", "replace").splitlines()


def _records(state_dir):
    try:
        with open(os.path.join(state_dir, RECORDS)) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return []


def _write_private(path, data, mode=0o600):
    tmp = "%s.tmp-%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_keeping_mode(path, text):
    path = os.path.realpath(path)  # sites-enabled/* are often links: the file they point to is written, the link stays
    st = os.stat(path)
    tmp = "%s.sre-tmp-%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, st.st_mode & 0o7777)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except OSError:
            pass
    finally:
        os.close(fd)
    os.rename(tmp, path)


class RateLimits(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.findings = Findings()
        self.result = dict(changed=False, status="ok", findings=[], zones=[], rejected=0, delayed=0, top_clients=[],
                           top_requests=[], window={}, would_change=[], changed_files=[], restored=[],
                           revert=None, nginx_test=None)
        self.diff = []

    def run_cmd(self, argv, what):
        rc, out, err = self.module.run_command(argv)
        return rc, (out or "") + (err or "")

    def nginx_test(self):
        rc, out = self.run_cmd([self.p["nginx_bin"], "-t"], "nginx -t")
        self.result["nginx_test"] = out.strip()
        return rc == 0

    def reload(self):
        sizes = {}
        for path in self.p["error_log"]:
            try:
                sizes[path] = os.path.getsize(path)
            except OSError:
                pass
        rc, out = self.run_cmd(self.p["reload_command"], "reload")
        if rc != 0:
            raise Failure("the configuration passed nginx -t but the reload failed: %s" % out.strip()[:500])
        # the master reads the new configuration after the signal; what it refuses (a zone's key changed) it only logs
        deadline = time.time() + 2.0
        while time.time() < deadline:
            time.sleep(0.25)
            for path, size in sizes.items():
                try:
                    with open(path, "rb") as handle:
                        handle.seek(size)
                        new = handle.read().decode("utf-8", "replace")
                except (IOError, OSError):
                    continue
                emerg = [line for line in new.splitlines() if "[emerg]" in line]
                if emerg:
                    raise Failure("nginx did not take the new configuration (it runs the one before): %s"
                                  % emerg[0][:400])

    # ------------------------------------------------------------------ reading

    def read(self, since_s):
        nginx = self.p["nginx_bin"]
        if not (os.path.isfile(nginx) and os.access(nginx, os.X_OK)) and not self.module.get_bin_path(nginx):
            raise Failure("cannot run %s (nginx_bin): not found here (is nginx installed on this host?)" % nginx)
        rc, dump = self.run_cmd([nginx, "-T"], "nginx -T")
        if rc != 0:
            raise Failure("nginx -T failed (is nginx installed, and the configuration valid?): %s"
                          % dump.strip()[-500:])
        zones, uses = _nginx.parse_dump(dump)
        since = time.time() - since_s
        events, unreadable = [], []
        for path in self.p["error_log"]:
            lines = _read_tail(path, since)
            if lines is None:
                unreadable.append(path)
                continue
            events += _nginx.rate_limit_events(lines, since)
        if unreadable:
            self.findings.add("warning", "error_log_unreadable", "cannot read the error log %s: the rejections there "
                              "are not counted" % ", ".join(unreadable))
        summary = _nginx.summarise(events, self.p["top"])
        counted = dict((z["zone"], z) for z in summary["zones"])
        texts = {}
        for zone in zones:
            count = counted.get(zone["name"], {})
            zone.update(rejected=count.get("rejected", 0), delayed=count.get("delayed", 0),
                        clients=count.get("clients", 0),
                        used_in=[dict((k, u[k]) for k in ("file", "line", "burst", "nodelay"))
                                 for u in uses if u["zone"] == zone["name"]])
            if zone["file"] and zone["file"] not in texts:
                texts[zone["file"]] = self.read_file(zone["file"])
            try:
                zone["allowed"] = _nginx.allowed(texts.get(zone["file"]) or "", _nginx.base_zone(zone["name"]))
            except ValueError as exc:
                zone["allowed"] = []
                self.findings.add("warning", "allow_list_damaged", str(exc))
        res = self.result
        res.update(zones=zones, rejected=summary["rejected"], delayed=summary["delayed"],
                   top_clients=summary["top_clients"], top_requests=summary["top_requests"],
                   window=dict(since=round(since), first=summary["first"], last=summary["last"]))
        unknown = sorted(set(counted) - set(z["name"] for z in zones))
        if unknown:
            self.findings.add("info", "zone_not_in_config", "the log names zones the configuration no longer defines: %s"
                              % ", ".join(unknown))
        if res["rejected"] >= self.p["rejected_warn"] and res["rejected"] > 0:
            worst = sorted(summary["zones"], key=lambda z: -z["rejected"])[0]
            top = res["top_clients"][0] if res["top_clients"] else None
            rate = dict((z["name"], z["rate"]) for z in zones).get(worst["zone"], "?")
            self.findings.add("warning", "rate_limited", "%d requests rejected by the rate limits in the last %s (zone %s "
                              "at %s: %d, from %d clients)%s" % (
                                  res["rejected"], self.p["since"], worst["zone"], rate, worst["rejected"],
                                  worst["clients"], (", top client %s with %s%%" % (top["client"], top["share_pct"]))
                                  if top else ""), zone=worst["zone"])
            if top and top["share_pct"] >= 50 and len(res["top_clients"]) > 0:
                self.findings.add("warning", "abusive_client", "one client makes %s%% of the rejections (%s, %d): an "
                                  "abuser or a broken client more likely than a traffic spike (allow-list it if it is "
                                  "yours, else block it)" % (top["share_pct"], top["client"], top["rejected"]),
                                  client=top["client"])
            elif top:
                self.findings.add("info", "spread_rejections", "no client makes half of the rejections (top %s with %s%%): "
                                  "more like a real traffic spike (raise the zone's rate for a while)"
                                  % (top["client"], top["share_pct"]))
        elif res["delayed"] > 0:
            self.findings.add("info", "rate_delayed", "%d requests delayed (not rejected) by the rate limits in the last %s"
                              % (res["delayed"], self.p["since"]))
        return zones

    def read_file(self, path):
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except (IOError, OSError):
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise Failure("%s is not UTF-8 text: not read or changed" % path)

    # ------------------------------------------------------------------ changing

    def check_state_dir(self):
        """The state directory (backups, records, the revert job run as root) is this user's and nobody else's."""
        state = self.p["state_dir"]
        for directory in (state, os.path.join(state, "backups")):
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o700)
            st = os.stat(directory)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                mode = st.st_mode & 0o7777
                raise Failure("%s is not owned by this user only (owner uid %d, mode %o): its backups and the revert "
                              "job cannot be trusted; fix its owner and mode (0700)" % (directory, st.st_uid, mode))

    def backup(self, path, text):
        state = self.p["state_dir"]
        backups = os.path.join(state, "backups")
        self.check_state_dir()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = "%s.%s" % (re.sub(r"[^A-Za-z0-9._-]", "_", path.strip("/")), stamp)
        target = os.path.join(backups, name)
        n = 1
        while os.path.exists(target):
            n += 1
            target = os.path.join(backups, "%s.%d" % (name, n))
        _write_private(target, text.encode("utf-8"))
        return target

    def save_records(self, records):
        _write_private(os.path.join(self.p["state_dir"], RECORDS), (json.dumps(records, indent=2) + "\n").encode())

    def change(self, zones):
        p = self.p
        defined = dict((z["name"], z) for z in zones)
        name = p["zone"]
        if name not in defined and name + _nginx.ALLOW_SUFFIX in defined:
            name += _nginx.ALLOW_SUFFIX  # the zone while an allow-list is in place
        if name not in defined:
            raise Failure("zone %s is not defined in the nginx configuration (zones: %s)"
                          % (p["zone"], ", ".join(sorted(defined)) or "none"))
        path = defined[name]["file"]
        texts = {}

        def text_of(file_path):
            if file_path not in texts:
                texts[file_path] = self.read_file(file_path) if file_path else None
                if texts[file_path] is None:
                    raise Failure("cannot read %s, where zone %s is defined or used" % (file_path, p["zone"]))
            return texts[file_path]
        try:
            edits = {path: text_of(path)}
            if p["rate"] is not None:
                edits[path] = _nginx.set_rate(edits[path], name, p["rate"])
            new_name = name
            if p["allow"] is not None:
                edits[path], new_name = _nginx.set_allow(edits[path], _nginx.base_zone(name), p["allow"])
            if new_name != name:
                # every limit_req use of the zone follows it to its new name (in whichever file it is)
                for use in defined[name]["used_in"]:
                    current = edits.get(use["file"], text_of(use["file"]))
                    edits[use["file"]] = _nginx.rename_uses(current, name, new_name)
        except ValueError as exc:
            raise Failure(str(exc))
        edits = dict((f, t) for f, t in edits.items() if t != text_of(f))
        if not edits:
            return
        files = sorted(edits)
        self.result["would_change"] = files
        self.diff = [dict(before=text_of(f), after=edits[f], before_header=f, after_header=f) for f in files]
        self.result["changed"] = True
        if self.module.check_mode:
            return
        if p["revert_after"] and not (os.path.isdir("/run/systemd/system") and self.module.get_bin_path("systemd-run")):
            raise Failure("revert_after needs systemd on this host (systemd-run, a running systemd): nothing was "
                          "changed; without a deadline (revert_after unset) the rollback puts it back")
        saved = dict((f, self.backup(f, text_of(f))) for f in files)
        for f in files:
            _write_keeping_mode(f, edits[f])
        if not self.nginx_test():
            self.undo(files, text_of, saved)
            raise Failure("nginx -t refused the change, %s as it was: %s"
                          % (", ".join(files) + (" is" if len(files) == 1 else " are"), self.result["nginx_test"][-500:]))
        try:
            self.reload()
            if p["revert_after"]:
                self.schedule_revert()
            else:
                # a change without a deadline is kept until the rollback: an earlier deadline would undo it too
                self.run_cmd(["systemctl", "stop", REVERT_UNIT + ".timer"], "stop timer")
        except Failure as exc:
            self.undo(files, text_of, saved)
            self.run_cmd(self.p["reload_command"], "reload")
            raise Failure("%s; the files are put back as they were" % exc)
        records = _records(p["state_dir"])
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        records += [dict(file=f, backup=saved[f], zone=p["zone"], rate=p["rate"], allow=p["allow"], at=at,
                         sha256_after=_sha256(edits[f])) for f in files]
        self.save_records(records)
        self.result["changed_files"] = [dict(file=f, backup=saved[f]) for f in files]
        self.read(self.since_s)  # the zones as they are now

    def undo(self, files, text_of, saved):
        for f in files:
            _write_keeping_mode(f, text_of(f))
            try:
                os.remove(saved[f])
            except OSError:
                pass

    def schedule_revert(self):
        seconds = int(parse_duration(self.p["revert_after"]))
        unit = REVERT_UNIT
        self.run_cmd(["systemctl", "stop", unit + ".timer"], "stop timer")
        self.run_cmd(["systemctl", "reset-failed", unit + ".service"], "reset")
        script = os.path.join(self.p["state_dir"], "revert.py")
        _write_private(script, REVERT_PY.encode("utf-8"), 0o700)
        rc, out = self.run_cmd(["systemd-run", "--unit", unit, "--on-active=%ds" % seconds,
                                "--timer-property=AccuracySec=1s", sys.executable, script, self.p["state_dir"],
                                self.p["nginx_bin"]] + list(self.p["reload_command"]), "systemd-run")
        if rc != 0:
            raise Failure("the change is in place but the revert at the deadline could not be scheduled "
                          "(systemd-run: %s): run the rate_limit rollback by hand" % out.strip()[:300])
        at = time.time() + seconds
        self.result["revert"] = dict(unit=unit + ".timer", at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)))
        self.findings.add("info", "revert_scheduled", "the files go back by themselves at %s (systemd timer %s.timer; "
                          "the rate_limit rollback does it sooner)" % (self.result["revert"]["at"], unit))

    def restore(self):
        records = _records(self.p["state_dir"])
        first, last = {}, {}
        for record in records:
            first.setdefault(record["file"], record["backup"])
            last[record["file"]] = record
        if not first:
            return
        backups, current = {}, {}
        for path in sorted(first):
            try:
                with open(first[path], "rb") as handle:
                    backups[path] = handle.read().decode("utf-8")
            except (IOError, OSError, UnicodeDecodeError) as exc:
                raise Failure("the backup %s of %s cannot be read (%s): nothing was put back" % (first[path], path, exc))
            current[path] = self.read_file(path)
            if current[path] is None:
                raise Failure("%s cannot be read: nothing was put back" % path)
            wanted = last[path].get("sha256_after")
            if wanted and _sha256(current[path]) != wanted and current[path] != backups[path]:
                raise Failure("%s was edited after the rate_limit change (by hand?): nothing was put back; its content "
                              "before the first change is in %s" % (path, first[path]))
        todo = sorted(path for path in first if current[path] != backups[path])
        self.result["would_change"] = todo
        self.result["changed"] = bool(todo)
        if self.module.check_mode:
            return
        for path in todo:
            _write_keeping_mode(path, backups[path])
        if todo and not self.nginx_test():
            for path in todo:
                _write_keeping_mode(path, current[path])
            raise Failure("nginx -t refused the configuration put back, the files are as they were: %s"
                          % self.result["nginx_test"][-500:])
        os.rename(os.path.join(self.p["state_dir"], RECORDS),
                  os.path.join(self.p["state_dir"], RECORDS + "." + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                               + ".restored"))
        self.run_cmd(["systemctl", "stop", REVERT_UNIT + ".timer"], "stop timer")
        self.result["restored"] = [dict(file=path, backup=first[path]) for path in todo]
        if todo:
            self.reload()

    def main(self):
        p = self.p
        try:
            self.since_s = parse_duration(p["since"])
            if p["revert_after"] is not None:
                parse_duration(p["revert_after"])
        except ValueError as exc:
            self.module.fail_json(msg="nginx_rate_limit: %s" % exc, **self.result)
        if p["top"] < 1 or p["rejected_warn"] < 1:
            self.module.fail_json(msg="nginx_rate_limit: top and rejected_warn must be at least 1", **self.result)
        if (p["rate"] is not None or p["allow"] is not None) and not p["zone"]:
            self.module.fail_json(msg="nginx_rate_limit: rate and allow need zone", **self.result)
        if p["restore"] and (p["rate"] is not None or p["allow"] is not None):
            self.module.fail_json(msg="nginx_rate_limit: restore cannot be combined with rate or allow", **self.result)
        try:
            zones = self.read(self.since_s)
            if p["restore"]:
                self.restore()
            elif p["zone"] and (p["rate"] is not None or p["allow"] is not None):
                self.change(zones)
        except Failure as exc:
            self.result.update(findings=self.findings.items, status=self.findings.status())
            self.module.fail_json(msg="nginx_rate_limit: %s" % exc, **self.result)
        except (IOError, OSError, ValueError) as exc:
            self.result.update(findings=self.findings.items, status=self.findings.status())
            self.module.fail_json(msg="nginx_rate_limit: %s" % exc, **self.result)
        seen, unique = set(), []
        for item in self.findings.items:  # (a change reads the zones again: the same findings once)
            key = (item["code"], item["message"])
            if key not in seen:
                seen.add(key)
                unique.append(item)
        self.findings.items[:] = unique
        self.result.update(findings=self.findings.items, status=self.findings.status())
        if self.module._diff and self.result["changed"] and self.diff:
            self.result["diff"] = self.diff
        self.module.exit_json(**self.result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            error_log=dict(type="list", elements="path", default=["/var/log/nginx/error.log"]),
            since=dict(type="str", default="1h"),
            top=dict(type="int", default=10),
            nginx_bin=dict(type="str", default="nginx"),
            reload_command=dict(type="list", elements="str", default=["nginx", "-s", "reload"]),
            zone=dict(type="str"),
            rate=dict(type="str"),
            allow=dict(type="list", elements="str"),
            restore=dict(type="bool", default=False),
            revert_after=dict(type="str"),
            state_dir=dict(type="path", default="/var/lib/sre-runbooks/rate_limit"),
            rejected_warn=dict(type="int", default=1),
        ),
        supports_check_mode=True,
    )
    RateLimits(module).main()


if __name__ == "__main__":
    main()
