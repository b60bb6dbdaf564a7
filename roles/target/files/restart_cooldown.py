# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The restart cooldown of sre.runbooks.target, run on the host that restarts (ansible.builtin.script from
tasks/_cooldown_check.yml; Python 3 standard library only). Private to the role.

    restart_cooldown.py --dir DIR --key KEY [--runbook R] [--max N] [--window-s S] [--min-interval-s S]
                        [--legacy-path FILE] [--job WHO] [--claim]

Reads the cooldown record of one app (DIR/KEY.json) and decides whether a restart may run now; with --claim it
records the restart in the same step. Prints one JSON object: {allowed, reason (ok, limit, interval), recent
(epochs of the runbook's restarts in the window), last ({at, runbook, job} of the app's newest restart), path,
now, claimed} or {failed: true, msg}.

- The decision and the write happen under an exclusive flock of DIR/KEY.lock, so two runs started at once cannot
  both be allowed: the second sees the first's stamp and the minimum interval refuses it. The lock is the
  kernel's: a killed run never leaves it held.
- The record is replaced atomically (a temporary file in the same directory, fsynced, renamed over the record,
  the directory fsynced): a reader sees the old or the new record, never a half-written one.
- The old per-host record (--legacy-path, {"<runbook>": [epoch, ...]}) is read and counted, never written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import errno
import fcntl
import json
import os
import re
import sys
import tempfile
import time


def record_path(directory, key):
    return os.path.join(directory, re.sub(r"[^A-Za-z0-9._-]", "_", key) + ".json")


def read_json(path):
    """The JSON document at path, None when there is none; ValueError when it is not JSON."""
    try:
        with open(path, "r") as handle:
            text = handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    return json.loads(text) if text.strip() else None


def entries_of(doc, legacy):
    """[{at, runbook, job}] from the record and the legacy per-host record."""
    out = []
    for item in (doc or {}).get("restarts", []):
        if isinstance(item, dict) and str(item.get("at", "")).lstrip("-").isdigit():
            out.append({"at": int(item["at"]), "runbook": str(item.get("runbook", "")), "job": str(item.get("job", ""))})
    for runbook, stamps in (legacy or {}).items():
        for stamp in stamps if isinstance(stamps, list) else []:
            if str(stamp).lstrip("-").isdigit():
                out.append({"at": int(stamp), "runbook": str(runbook), "job": "legacy cooldown.json"})
    return sorted(out, key=lambda e: e["at"])


def decide(entries, now, runbook, max_restarts, window_s, min_interval_s):
    """(allowed, reason, recent epochs of runbook, last entry)."""
    recent = [e["at"] for e in entries if e["runbook"] == runbook and e["at"] > now - window_s]
    last = entries[-1] if entries else {}
    if max_restarts > 0 and len(recent) >= max_restarts:
        return False, "limit", recent, last
    if min_interval_s > 0 and last and now - last["at"] < min_interval_s:
        return False, "interval", recent, last
    return True, "ok", recent, last


def write_atomically(path, doc):
    """Write doc next to path (same directory, same filesystem), fsync, rename over path, fsync the directory."""
    directory = os.path.dirname(path)
    handle, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
            out.flush()
            os.fchmod(out.fileno(), 0o640)
            os.fsync(out.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def run(p):
    """The result document for the parsed arguments p."""
    path = record_path(p.dir, p.key)
    lock = None
    try:
        if p.claim:
            if not os.path.isdir(p.dir):
                os.makedirs(p.dir, 0o750)
            lock = os.open(path[:-len(".json")] + ".lock", os.O_RDWR | os.O_CREAT, 0o640)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            doc = read_json(path)
            legacy = read_json(p.legacy_path) if p.legacy_path else None
        except ValueError as exc:
            return {"failed": True, "allowed": False, "path": path,
                    "msg": "The restart cooldown record %s is not JSON (%s): not restarting. Look at it, then remove it "
                           "once understood." % (path, exc)}
        now = int(time.time())
        entries = entries_of(doc, legacy if isinstance(legacy, dict) else None)
        allowed, reason, recent, last = decide(entries, now, p.runbook, p.max, p.window_s, p.min_interval_s)
        claimed = False
        if p.claim and allowed:
            keep = max(p.window_s, p.min_interval_s)
            kept = [e for e in entries_of(doc, None) if e["at"] > now - keep]
            kept.append({"at": now, "runbook": p.runbook, "job": p.job})
            write_atomically(path, {"format": 1, "key": p.key, "restarts": kept, "updated_at": now})
            claimed = True
    except (IOError, OSError) as exc:
        return {"failed": True, "allowed": False, "path": path,
                "msg": "Cannot use the restart cooldown record %s: %s" % (path, exc)}
    finally:
        if lock is not None:
            os.close(lock)  # releases the flock
    return {"allowed": allowed, "reason": reason, "recent": recent, "last": last, "path": path, "now": now,
            "claimed": claimed}


def main(argv=None):
    parser = argparse.ArgumentParser(description="The restart cooldown of sre.runbooks.target.")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--runbook", default="manual")
    parser.add_argument("--max", type=int, default=3)
    parser.add_argument("--window-s", type=int, default=3600)
    parser.add_argument("--min-interval-s", type=int, default=300)
    parser.add_argument("--legacy-path", default="")
    parser.add_argument("--job", default="")
    parser.add_argument("--claim", action="store_true")
    result = run(parser.parse_args(argv))
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
