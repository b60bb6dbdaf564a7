# SPDX-License-Identifier: GPL-3.0-or-later
"""Print what an incident record says: findings and actions, per run (used by `make demo`).

Usage: incident_summary.py DIR   (reads the newest JSON record of each incident id in DIR)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def newest_records(directory: Path) -> list[dict]:
    by_id: dict[str, tuple[str, dict]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            print("skipping %s: %s" % (path.name, err), file=sys.stderr)
            continue
        if record.get("format", "").startswith("sre.runbooks.incident/"):
            by_id[record["id"]] = (path.name, record)  # sorted by UTC stamp: the last one wins
    return [pair[1] for pair in by_id.values()]


def _state_line(state) -> str:
    """The target status in a few words: state, health, release."""
    if not isinstance(state, dict):
        return "not read"
    health = state.get("health") or {}
    words = ["%s %s" % (state.get("kind", "?"), state.get("state", "?"))]
    if health.get("url"):
        words.append("health %s" % (health.get("status") if health.get("ok") else "failing"))
    release = (state.get("release") or {}).get("id")
    if release:
        words.append("release %s" % release)
    return ", ".join(words)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    directory = Path(argv[1])
    if not directory.is_dir():
        print("no incident records: %s is not a directory" % directory, file=sys.stderr)
        return 1
    records = newest_records(directory)
    if not records:
        print("no incident records in %s" % directory, file=sys.stderr)
        return 1
    for record in records:
        print("Incident %s  severity %s  hosts %s" % (record["id"], record["severity"], ", ".join(record["hosts"])))
        for run in record.get("runs", []):
            print("  run: %-16s %-10s outcome=%-11s %s -> %s%s" % (
                run["runbook"], run["phase"], run["outcome"], run["started"], run["ended"],
                "  (check mode)" if run.get("check_mode") else ""))
        findings = [e for e in record["timeline"] if e["kind"] == "finding" and e.get("severity") != "info"]
        print("  findings (%d):" % len(findings))
        for event in findings:
            print("    [%s] %-8s %-26s %s" % (event["time"][11:19], event["severity"], event["code"], event["message"][:110]))
        actions = [e for e in record["timeline"] if e["kind"] == "action"]
        print("  actions taken (%d):" % len(actions))
        for event in actions:
            print("    [%s] %-12s %s" % (event["time"][11:19], event["host"], event["task"][:100]))
        failures = [e for e in record["timeline"] if e["kind"] in ("failure", "unreachable") and not e.get("ignored")]
        if failures:
            print("  failures (%d):" % len(failures))
            for event in failures:
                print("    [%s] %-12s %s: %s" % (event["time"][11:19], event["host"], event["task"][:60], event["message"][:100]))
        for host, state in sorted((record.get("state") or {}).items()):
            print("  state of %s: before %s; after %s" % (host, _state_line(state.get("before")),
                                                         _state_line(state.get("after"))))
        print("  full record: %s/*-%s.md" % (directory, record["id"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
