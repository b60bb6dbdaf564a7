#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: backup_schedule
short_description: Read an app's own backup log, script and cron schedule, and report a failed or missed run
version_added: 0.1.0
description:
  - For apps that back themselves up with their own script run by cron (for example C(infra/backups/backup_db.sh)
    logging to C(/var/log/ferreteria_backup.log)) - did the last run fail, did the nightly run not happen, is the
    script scheduled at all, can cron run it, is there a log.
  - The log is read from its end (O(log_tail_bytes)). A run starts at a line matching O(log_start_regex) and ends
    at one matching O(log_ok_regex) or O(log_failed_regex); the lines between are the run's own output (for
    example C(pg_dump)'s stderr). The first of them matching O(log_error_regex) is the error reported for a failed
    run, with passwords removed (URL passwords, C(password=...) pairs).
  - Timestamps are read at the start of lines (C(2026-12-01T03:15:00Z), C(2026-12-01 03:15:00), with an optional
    C([) and a zone C(Z), C(UTC) or C(+01:00), and the C(date) command's C(Tue Dec  1 03:15:00 UTC 2026)).
    A time without a zone is the managed host's local time. A log without any timestamp is judged by its
    modification time.
  - The schedule is O(schedule) when given, else the cron lines that run O(script) in O(schedule_files). The
    longest time between two runs of the schedule plus O(slack) is how long the log may stay silent.
  - Cron expressions supported are the five standard fields (numbers, names, ranges, lists, steps) and the
    shortcuts C(@hourly), C(@daily), C(@midnight), C(@weekly), C(@monthly), C(@yearly), C(@annually). C(@reboot),
    a seconds or year field, C(L)/C(W)/C(#)/C(?), C(CRON_TZ), systemd timers and anacron's C(/etc/cron.daily)
    are not; an unsupported schedule is a warning finding and the silence is not judged.
  - Reads only; runs C(crontab -l -u <user>) for the O(schedule_files) items C(crontab:<user>), when C(crontab)
    is installed.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: The module only reads files and crontabs, so it runs the same way in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  log_file:
    description: The backup script's log. Empty means no log is read.
    type: path
  script:
    description: The app's backup script. Empty means the script and its cron lines are not checked.
    type: path
  schedule_files:
    description:
      - Where to look for the cron lines that run O(script). Paths may be shell globs. Files under a directory
        named C(cron.d) and C(/etc/crontab) are system crontabs (a user field after the schedule); cron skips
        files in C(cron.d) whose names hold a dot or characters other than letters, digits, C(_) and C(-), and so
        does this module (a C(cron_file_ignored) finding).
      - An item C(crontab:<user>) is that user's crontab, read with C(crontab -l -u <user>) when C(crontab)
        exists on the host. Any other path is read as a user's crontab (no user field).
    type: list
    elements: str
    default: [/etc/crontab, /etc/cron.d/*, "crontab:root"]
  schedule:
    description:
      - The cron expression the script runs on, when it is not scheduled by a crontab line this module can find
        (another scheduler). Given, the schedule files are not searched and C(script_not_scheduled) is not reported.
    type: str
  slack:
    description: Time allowed beyond the schedule's interval before a silent log means a missed run (for example V(2h)).
    type: str
    default: 2h
  log_tail_bytes:
    description: How much of the end of the log is read.
    type: int
    default: 1048576
  tail_lines:
    description: Last lines of the log returned in C(tail) of RV(log) (passwords removed).
    type: int
    default: 10
  log_start_regex:
    description: A line where a run starts (Python regular expression).
    type: str
    default: '(?i)\bbackup\s+(start|started|starting|begin|begins)\b'
  log_ok_regex:
    description: A line where a run ends well. The first path-like word after it is the backup file, a number before C(bytes) its size.
    type: str
    default: '(?i)\bbackup\s+(ok|done|complete|completed|succeeded|success|successful|finished)\b'
  log_failed_regex:
    description: A line where a run ends badly.
    type: str
    default: '(?i)(\bbackup\s+(failed|failure|error|aborted)\b|^\S*\s*FAILED\b)'
  log_error_regex:
    description: The lines of a failed run that tell why (the first one is reported).
    type: str
    default: '(?i)(error|fatal|failed|failure|denied|refused|no space|not found|cannot|could not|timed? ?out)'
notes:
  - Findings (RV(findings)) have the codes C(last_run_failed), C(run_unfinished), C(run_missing), C(log_missing),
    C(log_unreadable), C(log_unrecognised), C(script_missing), C(script_not_executable), C(script_not_scheduled),
    C(cron_file_ignored), C(cron_line_invalid), C(schedule_unsupported), C(schedule_file_unreadable),
    C(schedule_unknown).
seealso:
  - module: sre.runbooks.backup_verify
"""

EXAMPLES = r"""
- name: Read Ferreteria's backup log and cron schedule
  sre.runbooks.backup_schedule:
    log_file: /var/log/ferreteria_backup.log
    script: /root/ferreteria/infra/backups/backup_db.sh
  register: backup_schedule_state

- name: A script run by another scheduler, nightly at 03:15
  sre.runbooks.backup_schedule:
    log_file: /var/log/app_backup.log
    script: /opt/app/bin/backup.sh
    schedule: "15 3 * * *"
    slack: 1h
"""

RETURN = r"""
status:
  description: The worst severity of the findings (C(ok), C(warning), C(critical)).
  returned: always
  type: str
  sample: critical
findings:
  description: What looks wrong, worst first.
  returned: always
  type: list
  elements: dict
  sample:
    - {severity: critical, code: last_run_failed, message: "the last backup run (2026-12-01T03:15:01Z) failed: pg_dump: error: ..."}
log:
  description: The log read (C(last_activity) in epoch seconds, C(silence_s) since then; C(tail) without passwords).
  returned: always
  type: dict
  sample: {path: /var/log/ferreteria_backup.log, exists: true, size_bytes: 4096, last_activity: 1796094901,
           last_activity_iso: "2026-12-01T03:15:01Z", silence_s: 3600, timestamps: true, tail: ["..."]}
last_run:
  description:
    - The last run in the log (C(status) C(ok), C(failed), C(running) or C(none)), its start and end (ISO, UTC),
      the backup file and size it logged, and C(error)/C(errors) without passwords.
  returned: always
  type: dict
  sample: {status: failed, started: "2026-12-01T03:15:00Z", ended: "2026-12-01T03:15:01Z", file: null, bytes: null,
           error: "pg_dump: error: connection to server at \"db\" failed", errors: ["..."]}
schedule:
  description:
    - The schedule used (C(expression), C(interval_s) the longest time between two runs, C(source) C(option) or
      C(cron)), the cron lines found running the script (C(entries)) and the places searched (C(searched)).
  returned: always
  type: dict
  sample: {expression: "15 3 * * *", interval_s: 86400, source: cron, searched: [/etc/crontab, /etc/cron.d/ferreteria],
           entries: [{file: /etc/cron.d/ferreteria, line: 2, schedule: "15 3 * * *", user: root, match: path,
                      command: /root/ferreteria/infra/backups/backup_db.sh}]}
script:
  description: The script checked.
  returned: always
  type: dict
  sample: {path: /root/ferreteria/infra/backups/backup_db.sh, exists: true, executable: true}
"""

import calendar
import glob
import os
import re
import stat
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.sre.runbooks.plugins.module_utils._common import Findings, parse_duration
from ansible_collections.sre.runbooks.plugins.module_utils._cron import (
    CronError, cron_d_name_ignored, interval_seconds, parse_crontab, runs_script, through_interpreter)
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import scrub

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_ISO_TS = re.compile(r"^\[?(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,]\d+)?\s*(Z|UTC|GMT|[+-]\d{2}:?\d{2})?\]?")
_DATE_TS = re.compile(r"^\[?(?:[A-Z][a-z]{2},?\s+)?([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\s+(?:([A-Z]{3,5})\s+)?(\d{4})\]?")
_BYTES = re.compile(r"(\d+)\s*bytes\b", re.IGNORECASE)
_PATH_WORD = re.compile(r"(?:^|\s)(/\S+)")
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def _epoch(fields, zone):
    """Epoch seconds of (Y, M, D, h, m, s) in zone (None: the host's local time)."""
    if zone in (None, ""):
        return time.mktime(tuple(fields) + (0, 0, -1))
    base = calendar.timegm(tuple(fields) + (0, 0, 0))
    if zone in ("Z", "UTC", "GMT"):
        return base
    if zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:4]) * 60
        return base - offset if zone[0] == "+" else base + offset
    return time.mktime(tuple(fields) + (0, 0, -1))  # a named zone other than UTC: taken as local time


def line_time(line):
    """Epoch seconds of the timestamp a log line starts with, or None."""
    match = _ISO_TS.match(line)
    if match:
        values = [int(v) for v in match.groups()[:6]]
        try:
            return _epoch(values, match.group(7))
        except (ValueError, OverflowError):
            return None
    match = _DATE_TS.match(line)
    if match and match.group(1).lower() in _MONTHS:
        values = [int(match.group(7)), _MONTHS.index(match.group(1).lower()) + 1, int(match.group(2)),
                  int(match.group(3)), int(match.group(4)), int(match.group(5))]
        try:
            return _epoch(values, match.group(6))
        except (ValueError, OverflowError):
            return None
    return None


def iso(epoch):
    return None if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def human(seconds):
    seconds = int(seconds)
    if seconds >= 86400 and seconds % 3600 == 0:
        return "%dd%s" % (seconds // 86400, ("%dh" % (seconds % 86400 // 3600)) if seconds % 86400 else "")
    if seconds >= 3600:
        return "%dh%s" % (seconds // 3600, ("%dm" % (seconds % 3600 // 60)) if seconds % 3600 // 60 else "")
    if seconds >= 60:
        return "%dm" % (seconds // 60)
    return "%ds" % seconds


def read_tail(path, size):
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        handle.seek(max(0, end - size))
        data = handle.read()
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if end > size and lines:
        lines = lines[1:]  # the first line read is probably cut
    return lines


def _clean(text, limit=300):
    text = scrub(text.strip())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _no_run():
    return {"status": "none", "started": None, "ended": None, "file": None, "bytes": None, "error": None, "errors": []}


def last_run(lines, regexes):
    """The last run in the log lines: {status, started, ended, file, bytes, error, errors}."""
    start_re, ok_re, failed_re, error_re = regexes
    run = None
    for line in lines:
        stamp = line_time(line)
        if start_re.search(line):
            run = {"status": "running", "started": stamp, "ended": None, "output": [], "end_line": None}
        elif failed_re.search(line) or ok_re.search(line):
            if run is None or run["status"] != "running":
                run = {"status": None, "started": None, "output": []}
            run.update(status="failed" if failed_re.search(line) else "ok", ended=stamp, end_line=line)
        elif run is not None and run["status"] == "running":
            run["output"].append(line)
    if run is None:
        return _no_run()
    errors = [_clean(line) for line in run["output"] if error_re.search(line)]
    end_line = run.get("end_line") or ""
    result = {"status": run["status"], "started": iso(run["started"]), "ended": iso(run["ended"]),
              "started_epoch": run["started"], "ended_epoch": run["ended"], "file": None, "bytes": None,
              "errors": errors[:5]}
    if run["status"] == "failed":
        result["error"] = errors[0] if errors else _clean(end_line)
    else:
        result["error"] = errors[0] if errors else None
    if run["status"] == "ok":
        path = _PATH_WORD.search(end_line)
        size = _BYTES.search(end_line)
        result["file"] = path.group(1) if path else None
        result["bytes"] = int(size.group(1)) if size else None
    return result


class ScheduleReader:
    def __init__(self, module, findings):
        self.module = module
        self.findings = findings
        self.searched = []

    def crontab_of(self, user):
        binary = self.module.get_bin_path("crontab")
        if not binary:
            return None
        rc, out, err = self.module.run_command([binary, "-l", "-u", user], environ_update={"LC_ALL": "C"})
        self.searched.append("crontab of %s" % user)
        if rc != 0:
            if "no crontab" not in (err + out).lower():
                self.findings.add("info", "schedule_file_unreadable",
                                  "crontab -l -u %s failed: %s" % (user, _clean(err or out, 200)))
            return None
        return out

    def sources(self, items):
        """(name, text, system, cron_d) for every schedule file and crontab that can be read."""
        for item in items:
            if item.startswith("crontab:"):
                text = self.crontab_of(item.split(":", 1)[1])
                if text is not None:
                    yield "crontab of %s" % item.split(":", 1)[1], text, False, False
                continue
            paths = sorted(glob.glob(item)) if glob.has_magic(item) else ([item] if os.path.exists(item) else [])
            for path in paths:
                if not os.path.isfile(path):
                    continue
                cron_d = os.path.basename(os.path.dirname(path)) == "cron.d"
                system = cron_d or os.path.basename(path) == "crontab"
                try:
                    with open(path, "rb") as handle:
                        text = handle.read(1048576).decode("utf-8", errors="replace")
                except (IOError, OSError) as exc:
                    self.findings.add("info", "schedule_file_unreadable", "%s: %s" % (path, to_native(exc.strerror or exc)))
                    continue
                self.searched.append(path)
                yield path, text, system, cron_d

    def entries_for(self, script, items):
        """Cron lines that run the script: (live, commented, ignored) lists of entries with file and match."""
        live, commented, ignored = [], [], []
        for name, text, system, cron_d in self.sources(items):
            for entry in parse_crontab(text, system):
                # a system line without user field has the script where the user should be
                match = runs_script(entry["command"], script) or (system and runs_script(entry["user"], script))
                if not match:
                    continue
                entry = dict(entry, file=name, match=match)
                if entry["commented"]:
                    commented.append(entry)
                elif cron_d and cron_d_name_ignored(os.path.basename(name)):
                    ignored.append(entry)
                else:
                    live.append(entry)
        return live, commented, ignored


def check_script(p, findings, entries):
    info = {"path": p["script"], "exists": False, "executable": False}
    if not p["script"]:
        return info
    try:
        st = os.stat(p["script"])
    except OSError:
        findings.add("critical", "script_missing", "the backup script %s does not exist" % p["script"])
        return info
    info["exists"] = True
    if not stat.S_ISREG(st.st_mode):
        findings.add("critical", "script_missing", "the backup script %s is not a file" % p["script"])
        return info
    info["executable"] = bool(st.st_mode & 0o111) and os.access(p["script"], os.X_OK)
    if not info["executable"]:
        if entries and all(through_interpreter(e["command"], p["script"]) for e in entries):
            findings.add("info", "script_not_executable",
                         "the backup script %s is not executable (mode %s); cron runs it through a shell, so it still runs"
                         % (p["script"], oct(st.st_mode & 0o777)))
        else:
            findings.add("critical", "script_not_executable",
                         "the backup script %s is not executable (mode %s): cron cannot run it (chmod +x)"
                         % (p["script"], oct(st.st_mode & 0o777)))
    return info


def read_schedule(module, p, findings):
    schedule = {"expression": None, "interval_s": None, "source": None, "entries": [], "searched": []}
    live = []
    if p["schedule"]:
        try:
            schedule.update(expression=" ".join(p["schedule"].split()), interval_s=interval_seconds(p["schedule"]),
                            source="option")
        except CronError as exc:
            module.fail_json(msg="Checking the options: schedule %r: %s" % (p["schedule"], exc), changed=False)
        return schedule, live
    if not p["script"]:
        return schedule, live
    reader = ScheduleReader(module, findings)
    live, commented, ignored = reader.entries_for(p["script"], p["schedule_files"])
    schedule["searched"] = reader.searched
    for entry in ignored:
        findings.add("critical", "cron_file_ignored",
                     "%s line %d runs %s, but cron never reads %s: names in cron.d may hold only letters, digits, "
                     "_ and - (rename it)" % (entry["file"], entry["line"], p["script"], os.path.basename(entry["file"])))
    valid = []
    for entry in live:
        if entry["user"] is not None and entry["user"].startswith(("/", ".", "~")):
            findings.add("critical", "cron_line_invalid",
                         "%s line %d has no user field (a system crontab needs one after the schedule): cron takes %s "
                         "for the user and does not run the script" % (entry["file"], entry["line"], entry["user"]))
            continue
        valid.append(entry)
    schedule["entries"] = [{k: e[k] for k in ("file", "line", "schedule", "user", "command", "match")} for e in valid]
    if not valid:
        where = ", ".join(p["schedule_files"]) or "no file"
        note = ""
        if commented:
            note = " (commented out at %s line %d)" % (commented[0]["file"], commented[0]["line"])
        if not ignored and len(live) == len(valid):  # else a finding above already says why it does not run
            findings.add("critical", "script_not_scheduled",
                         "the backup script %s is not scheduled in %s%s: nothing runs the nightly backup"
                         % (p["script"], where, note))
        return schedule, valid
    intervals = []
    for entry in valid:
        try:
            intervals.append((interval_seconds(entry["schedule"]), entry["schedule"]))
        except CronError as exc:
            findings.add("warning", "schedule_unsupported",
                         "%s line %d: %s; the log's silence is not judged by it" % (entry["file"], entry["line"], exc))
    if intervals:  # several lines run the script: the most frequent one says how long the log may be silent
        best = min(intervals)
        schedule.update(expression=best[1], interval_s=best[0], source="cron")
    return schedule, valid


def read_log(p, findings, schedule, slack, now):
    log = {"path": p["log_file"], "exists": False, "size_bytes": None, "mtime": None, "last_activity": None,
           "last_activity_iso": None, "silence_s": None, "timestamps": False, "tail": []}
    run = _no_run()
    if not p["log_file"]:
        return log, run
    try:
        st = os.stat(p["log_file"])
    except OSError:
        findings.add("critical", "log_missing",
                     "the backup log %s does not exist: the script never ran, or it logs elsewhere" % p["log_file"])
        return log, run
    log.update(exists=True, size_bytes=st.st_size, mtime=int(st.st_mtime))
    try:
        lines = read_tail(p["log_file"], p["log_tail_bytes"])
    except (IOError, OSError) as exc:
        findings.add("critical", "log_unreadable", "the backup log %s cannot be read: %s"
                     % (p["log_file"], to_native(exc.strerror or exc)))
        return log, run
    log["tail"] = [_clean(line, 500) for line in lines[-p["tail_lines"]:]] if p["tail_lines"] > 0 else []
    stamps = [s for s in (line_time(line) for line in lines) if s is not None]
    log["timestamps"] = bool(stamps)
    last = max(stamps) if stamps else st.st_mtime
    log.update(last_activity=int(last), last_activity_iso=iso(last), silence_s=max(0, int(now - last)))

    regexes = tuple(re.compile(p[k]) for k in ("log_start_regex", "log_ok_regex", "log_failed_regex", "log_error_regex"))
    run = last_run(lines, regexes)
    when = run.get("ended") or run.get("started")
    if run["status"] == "failed":
        findings.add("critical", "last_run_failed", "the last backup run%s failed: %s"
                     % ((" (" + when + ")") if when else "", run["error"]))
    elif run["status"] == "running":
        started = run.get("started_epoch")
        if started is None or now - started > slack:
            findings.add("warning", "run_unfinished",
                         "the last backup run%s started and never logged an end (ok or failed): it was killed, or hangs%s"
                         % ((" (" + when + ")") if when else "",
                            (": " + run["errors"][0]) if run["errors"] else ""))
    elif run["status"] == "none" and lines:
        findings.add("info", "log_unrecognised",
                     "no line of the last %d in %s marks a backup run's start, success or failure (log_*_regex)"
                     % (len(lines), p["log_file"]))

    what = "the log's timestamps" if stamps else "the log's modification time"
    if schedule["interval_s"] is not None:
        allowed = schedule["interval_s"] + slack
        if now - last > allowed:
            findings.add("critical", "run_missing",
                         "the backup log %s says nothing since %s (%s ago, by %s), longer than the schedule %r "
                         "(every %s) + %s slack: the last scheduled run did not happen or did not log"
                         % (p["log_file"], iso(last), human(now - last), what, schedule["expression"],
                            human(schedule["interval_s"]), human(slack)))
    elif p["script"] or p["schedule"]:
        findings.add("info", "schedule_unknown",
                     "no schedule to judge the log's silence by (%s ago): set the schedule" % human(now - last))
    for key in ("started_epoch", "ended_epoch"):
        run.pop(key, None)
    return log, run


def main():
    module = AnsibleModule(
        argument_spec=dict(
            log_file=dict(type="path"),
            script=dict(type="path"),
            schedule_files=dict(type="list", elements="str", default=["/etc/crontab", "/etc/cron.d/*", "crontab:root"]),
            schedule=dict(type="str"),
            slack=dict(type="str", default="2h"),
            log_tail_bytes=dict(type="int", default=1048576),
            tail_lines=dict(type="int", default=10),
            log_start_regex=dict(type="str", default=r"(?i)\bbackup\s+(start|started|starting|begin|begins)\b"),
            log_ok_regex=dict(type="str",
                              default=r"(?i)\bbackup\s+(ok|done|complete|completed|succeeded|success|successful|finished)\b"),
            log_failed_regex=dict(type="str", default=r"(?i)(\bbackup\s+(failed|failure|error|aborted)\b|^\S*\s*FAILED\b)"),
            log_error_regex=dict(
                type="str",
                default=r"(?i)(error|fatal|failed|failure|denied|refused|no space|not found|cannot|could not|timed? ?out)"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    p["log_file"] = p["log_file"] or ""
    p["script"] = p["script"] or ""
    try:
        slack = parse_duration(p["slack"])
    except ValueError as exc:
        module.fail_json(msg="Checking the options: slack: %s" % exc, changed=False)
    if p["log_tail_bytes"] < 1024:
        module.fail_json(msg="Checking the options: log_tail_bytes must be at least 1024", changed=False)
    for key in ("log_start_regex", "log_ok_regex", "log_failed_regex", "log_error_regex"):
        try:
            re.compile(p[key])
        except re.error as exc:
            module.fail_json(msg="Checking the options: %s is not a regular expression: %s" % (key, exc), changed=False)

    findings = Findings()
    now = time.time()
    schedule, entries = read_schedule(module, p, findings)
    script = check_script(p, findings, entries)
    log, run = read_log(p, findings, schedule, slack, now)

    items = sorted(findings.as_list(), key=lambda f: _SEVERITY_ORDER.get(f["severity"], 3))
    module.exit_json(changed=False, status=findings.status(), findings=items, log=log, last_run=run,
                     schedule=schedule, script=script)


if __name__ == "__main__":
    main()
